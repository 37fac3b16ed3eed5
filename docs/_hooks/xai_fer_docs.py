"""MkDocs hook: pages hold ``<!-- xai-fer:NAME -->`` markers that are replaced at build time by text generated
from the code and from generated files, so nothing below can drift from what the package does:

* ``cli``: the help of every command, from the Typer app (``typer``'s own Markdown generator);
* ``builtin-plugins``: every built-in plugin, what it registers and every option, from the registry and
  :func:`xai_fer.options.describe_options`;
* ``training-settings``: every ``xai-fer train --set`` setting, its type, help and value in each preset, from
  ``TrainConfig`` and ``PRESETS``;
* ``reference-numbers``: the shipped reference models' measured accuracy, from ``xai_fer/reference/*_metrics.json``,
  next to the study's published numbers (``STUDY_ACCURACY`` in ``xai_fer/reference/__init__.py``);
* ``gallery``, ``hero``, ``figure PATH``: figures made by ``scripts/build_gallery.py`` (``docs/gallery/``).

An unknown marker stops the build.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

from xai_fer.reference import percent as _pct  # a light import: no Keras

ROOT = Path(__file__).resolve().parents[2]
GALLERY = ROOT / "docs" / "gallery"
GALLERY_COMMAND = "python scripts/build_gallery.py"
MARKER = re.compile(r"<!--\s*xai-fer:([a-z-]+)(?:\s+([^\s>]+))?\s*-->")


def _study_pct(value: float) -> str:
    """The study's numbers as published (68.793%, 37.77%): up to three decimals, no trailing zeros."""
    return f"{100 * value:.3f}".rstrip("0").rstrip(".") + "%"


def _text(value: str) -> str:
    """Plain text (a description, an option's help) made safe for Markdown and for a table cell."""
    value = html.escape(str(value), quote=False)
    return re.sub(r"([\\*_\[\]|])", r"\\\1", value)


# --- CLI ------------------------------------------------------------------------------------------------


def render_cli() -> str:
    import typer
    from typer.cli import get_docs_for_click

    from xai_fer.cli import app

    command = typer.main.get_command(app)
    return get_docs_for_click(obj=command, ctx=typer.Context(command), name="xai-fer", indent=1)


# --- built-in plugins ----------------------------------------------------------------------------------


def _options_table(options_cls) -> str:
    from xai_fer.options import describe_options

    rows = describe_options(options_cls)
    if not rows:
        return "No options.\n"
    lines = ["| option | type | default | meaning |", "|---|---|---|---|"]
    for row in rows:
        cells = [f"`{row['name']}`", f"`{row['type']}`", f"`{row['default']}`", _text(row["help"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_builtin_plugins() -> str:
    os.environ["XAI_FER_DISABLE_PLUGINS"] = "1"  # only what ships with xai-fer, whatever else is installed
    from xai_fer import registry

    registry.reset()
    infos = [info for info in registry.plugin_infos() if info.package == registry.OWN_DISTRIBUTION]
    owner = {name: info.name for info in infos for names in info.registers.values() for name in names}
    out = ["| plugin (entry point) | models | explainers | dataset formats |", "|---|---|---|---|"]
    for info in infos:
        cells = [", ".join(f"[`{n}`](#{kind}-{n})" for n in info.registers.get(kind, [])) or "-"
                 for kind in registry.KINDS]
        out.append(f"| `{info.name}` | " + " | ".join(cells) + " |")
    titles = {"models": "Models", "explainers": "Explainers", "datasets": "Dataset formats"}
    tables = {"models": registry.models(), "explainers": registry.explainers(), "datasets": registry.datasets()}
    for kind in registry.KINDS:
        out += ["", f"## {titles[kind]}", ""]
        if kind == "datasets":
            out += ["Tried in this order when `--format` is not given; the first whose `detect` says yes loads "
                    "the source.", ""]
        for name, obj in tables[kind].items():
            if name not in owner:
                continue
            out += [f"### `{name}` {{ #{kind}-{name} }}", "", _text(obj.description), "",
                    f"Plugin `{owner[name]}`, module `{type(obj).__module__}`.", ""]
            if hasattr(obj, "Options"):
                out.append(_options_table(obj.Options))
    return "\n".join(out) + "\n"


def render_training_settings() -> str:
    from xai_fer.options import describe_options
    from xai_fer.training.config import PRESETS, TrainConfig

    lines = ["| setting | type | " + " | ".join(f"`--preset {name}`" for name in PRESETS) + " | meaning |",
             "|---|---|" + "---|" * len(PRESETS) + "---|"]
    for row in describe_options(TrainConfig):
        values = [f"`{getattr(preset, row['name'])!r}`" for preset in PRESETS.values()]
        lines.append(f"| `{row['name']}` | `{row['type']}` | "
                     + " | ".join(values) + f" | {_text(row['help'])} |")
    return "\n".join(lines) + "\n"


# --- reference numbers ---------------------------------------------------------------------------------


def study_numbers() -> dict[str, float]:
    """``STUDY_ACCURACY`` from xai_fer.reference: the study's Kaggle private-test accuracy per model."""
    from xai_fer.reference import STUDY_ACCURACY

    return dict(STUDY_ACCURACY)


def render_reference_numbers(reference_dir: Path | None = None) -> str:
    if reference_dir is None:
        from xai_fer import reference

        reference_dir = reference.HERE
    from xai_fer.reference import selection
    from xai_fer.training.averaging import weights_from
    from xai_fer.training.initialisation import ancestors

    study = study_numbers()
    metrics = {name: json.loads((reference_dir / f"{name}_metrics.json").read_text())
               for name in study if (reference_dir / f"{name}_metrics.json").exists()}
    lines = ["| model | study (Kaggle private test) | reference: PrivateTest accuracy | with mirrored view | "
             "parameters | epochs (weights of) |", "|---|---|---|---|---|---|"]
    for name, published in study.items():
        m = metrics.get(name)
        if m is None:
            lines.append(f"| {name.upper()} | {_study_pct(published)} | not built yet | - | - | - |")
            continue
        private = m.get("splits", {}).get("PrivateTest", {})
        lines.append(f"| {name.upper()} | {_study_pct(published)} | "
                     f"**{_pct(private.get('plain', {}).get('accuracy'))}** | "
                     f"{_pct(private.get('tta_flip', {}).get('accuracy'))} | {m['parameters']:,} | "
                     f"{m['epochs']}{' of its last run†' if ancestors(m.get('initialisation')) else ''} "
                     f"({weights_from(m)}) |")
    if not metrics:
        return "\n".join(lines) + ('\n\n!!! warning "Reference models not built yet"\n    This checkout has no '
                                    "`xai_fer/reference/*_metrics.json`; `scripts/build_reference.py` writes them.\n")
    classes = list(next(iter(metrics.values()))["splits"].get("PrivateTest", {}).get("plain", {})
                   .get("per_class", {}))
    if classes:
        lines += ["", "Per-class accuracy of the reference models on PrivateTest (recall):", "",
                  "| model | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
        for name, m in metrics.items():
            per_class = m["splits"]["PrivateTest"]["plain"]["per_class"]
            lines.append(f"| {name.upper()} | " + " | ".join(_pct(per_class[c]["accuracy"]) for c in classes) + " |")
    chosen_among = selection.read(reference_dir / selection.SELECTION.name)
    if chosen_among:
        lines += ["", *selection.markdown(chosen_among)]
    if any(ancestors(m.get("initialisation")) for m in metrics.values()):
        lines += ["", "†A run started with `--init-from` from an earlier run's model: its epochs add to that run's "
                  "(every step is listed below)."]
    lines += ["", "The reference models were trained with:", ""]
    for name, m in metrics.items():
        steps = [*(a.get("command") or "command not recorded" for a in ancestors(m.get("initialisation"))),
                 m.get("command") or "unknown command"]
        if len(steps) == 1:
            lines.append(f"- {name.upper()}: `{steps[0]}`")
        else:
            lines.append(f"- {name.upper()}, in {len(steps)} runs, each from the model of the one before:")
            lines += [f"    {number}. `{command}`" for number, command in enumerate(steps, start=1)]
        lines += [f"    then continued with `{resumed}`" for resumed in m.get("resume_commands") or []]
        if m.get("finish_command"):
            lines.append(f"    then written and evaluated with `{m['finish_command']}`")
        if m.get("distillation"):
            teachers = m["distillation"]["teachers"]
            lines.append(f"    taught by {len(teachers)} earlier model(s) (knowledge distillation, teacher weight "
                         f"{m['distillation']['teacher_weight']}); `xai_fer/reference/README.md` names each by its "
                         "sha256 with the commands that made it")
    return "\n".join(lines) + "\n"


# --- gallery -------------------------------------------------------------------------------------------


def _gallery_missing(what: str) -> str:
    return (f'!!! note "{what} not generated yet"\n    `{GALLERY_COMMAND}` makes it from the shipped reference '
            "models and the real FER2013 PrivateTest images.\n")


def render_gallery() -> str:
    snippet = GALLERY / "gallery.md"
    return snippet.read_text() if snippet.exists() else _gallery_missing("The gallery")


def render_figure(path: str | None, page_src: str) -> str:
    """One gallery figure by its path under docs/gallery (``hero``: the one the gallery script picked)."""
    if path is None:
        index = GALLERY / "gallery.json"
        if not index.exists():
            return _gallery_missing("The front-page figure")
        hero = json.loads(index.read_text())["hero"]
        path, caption = hero["path"], hero["caption"]
    else:
        caption = path
    if not (GALLERY / path).exists():
        if (GALLERY / "gallery.json").exists():
            raise PluginError(f"{page_src}: gallery figure {path!r} does not exist; rerun {GALLERY_COMMAND}")
        return _gallery_missing(f"Figure `{path}`")
    prefix = "../" * page_src.count("/")
    return f"![{caption}]({prefix}gallery/{path})\n"


# --- the hook ------------------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        name, argument = match.group(1), match.group(2)
        if name == "cli":
            return render_cli()
        if name == "builtin-plugins":
            return render_builtin_plugins()
        if name == "reference-numbers":
            return render_reference_numbers()
        if name == "training-settings":
            return render_training_settings()
        if name == "gallery":
            return render_gallery()
        if name == "hero":
            return render_figure(None, page.file.src_uri)
        if name == "figure":
            return render_figure(argument, page.file.src_uri)
        raise PluginError(f"{page.file.src_uri}: unknown marker <!-- xai-fer:{name} -->")

    return MARKER.sub(replace, markdown)
