"""MkDocs hook: pages hold ``<!-- xai-fer:NAME -->`` markers that are replaced at build time by text generated
from the code and from generated files, so nothing below can drift from what the package does:

* ``cli``: the help of every command, from the Typer app (``typer``'s own Markdown generator);
* ``builtin-plugins``: every built-in plugin, what it registers and every option, from the registry and
  :func:`xai_fer.options.describe_options`;
* ``training-settings``: every ``xai-fer train --set`` setting, its type, help and value in each preset, from
  ``TrainConfig`` and ``PRESETS``;
* ``reference-numbers``: the shipped reference models' measured accuracy, from ``xai_fer/reference/*_metrics.json``,
  next to the study's published numbers (``STUDY_ACCURACY`` in ``xai_fer/reference/__init__.py``);
* ``gallery``, ``hero``, ``figure PATH``: figures made by ``scripts/build_gallery.py`` (``docs/gallery/``);
* ``faithfulness MODEL``, ``faithfulness-run MODEL``, ``faithfulness-verdicts MODEL``: a shipped model's
  faithfulness ranking table (with each method's sentence), what was run and how long it took, and which maps beat
  the random and Sobel maps, all from the data the gallery script recorded in ``docs/gallery/gallery.json``.
  The gallery's own snippet uses them too: markers in it are expanded like those of a page.

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


def render_gallery(page_src: str) -> str:
    snippet = GALLERY / "gallery.md"
    if not snippet.exists():
        return _gallery_missing("The gallery")
    return expand(snippet.read_text(), page_src, inside_gallery=True)


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


# --- faithfulness, from the gallery's recorded data ---------------------------------------------------------

_MODELS = ("cnn", "dnn")


def faithfulness_record(model: str | None, page_src: str, gallery: Path = GALLERY) -> dict | None:
    """The model's ``faithfulness`` entry in gallery.json; None when the gallery has none (not built yet, or
    built before the section existed)."""
    if model not in _MODELS:
        raise PluginError(f"{page_src}: faithfulness markers name a model: one of {', '.join(_MODELS)}")
    index = gallery / "gallery.json"
    if not index.exists():
        return None
    record = json.loads(index.read_text())
    entry = record.get(model, {}).get("faithfulness")
    if entry is not None:
        entry = {**entry, "data": record["data"], "model": record["models"][model]}
    return entry


def _auc_cell(curve: dict, is_random: bool) -> str:
    text = f"{curve['auc']:.3f}" + (f" ± {curve['se']:.3f}" if curve["se"] is not None else "")
    if not is_random and curve["ratio_to_random"] is not None:
        text += f" ({curve['ratio_to_random']:.2f}×)"
    return text


def _versus_cell(curve: dict, name: str) -> str:
    return " / ".join("-" if name == baseline else curve[f"vs_{key}"]["verdict"]
                      for key, baseline in (("random", "random map"), ("sobel", "Sobel edge map")))


def _randomization_cell(result: dict | None) -> str:
    if result is None:
        return "-"
    if result["verdict"] in ("passes", "flagged"):
        word = "**flagged**" if result["verdict"] == "flagged" else "passes"
        return f"{word} (rho {result['rho_all_layers']:.2f})"
    return _text(result["verdict"])


def render_faithfulness(model: str | None, page_src: str, gallery: Path = GALLERY) -> str:
    """The ranking table: per map its deletion and insertion AUC (mean ± standard error over images, and the
    ratio to the random map's), how it compares with the random and the Sobel map (paired difference within two
    standard errors: not distinguishable), and the randomisation check; then each method's sentence."""
    entry = faithfulness_record(model, page_src, gallery)
    if entry is None:
        return _gallery_missing(f"The {model.upper()} faithfulness table")
    lines = ["| rank | map | deletion AUC ↓ ± SE (× random) | vs random / Sobel | insertion AUC ↑ ± SE (× random) | "
             "vs random / Sobel | randomisation (rho, all layers random) |", "|---|---|---|---|---|---|---|"]
    for row in entry["table"]:
        name = row["map"]
        cells = [str(row["rank"]), _text(name) if row["kind"] == "method" else f"*{_text(name)}*",
                 _auc_cell(row["deletion"], name == "random map"), _versus_cell(row["deletion"], name),
                 _auc_cell(row["insertion"], name == "random map"), _versus_cell(row["insertion"], name),
                 _randomization_cell(row["randomization"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Ranked by {_text(entry['ranked_by'])}; baselines in italics. \"Better\", \"worse\" and \"not "
              "distinguishable\" compare the paired per-image difference with two standard errors."]
    if entry["skipped"]:
        lines += ["", "Not run on this model: " + "; ".join(f"{name} ({_text(why)})"
                                                            for name, why in entry["skipped"].items()) + "."]
    said = [row for row in entry["table"] if row["sentence"]]
    if said:
        lines += ["", f'??? note "{model.upper()}: the report\'s sentence for each method"', ""]
        lines += [f"    - {_text(row['sentence'])}" for row in said]
    return "\n".join(lines) + "\n"


def _option_value(value) -> str:
    """An option's value as ``-o NAME.KEY=VALUE`` takes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def render_faithfulness_run(model: str | None, page_src: str, gallery: Path = GALLERY) -> str:
    """What the gallery ran for the table and how long it took, as recorded."""
    entry = faithfulness_record(model, page_src, gallery)
    if entry is None:
        return ""  # the table's marker says that the record is missing
    first, last = entry["rows"]
    changed = ", ".join(f"`{name}.{key}={_option_value(value)}`" for name, options in entry["changed_settings"].items()
                        for key, value in options.items())
    settings = (f"settings that differ from the defaults: {changed}" if changed else "every setting at its default") \
        + " (besides fewer figures; `gallery.json` records every setting)"
    slowest = sorted(entry["seconds"].items(), key=lambda item: -item[1])[:3]
    shared = entry["shared_options"]
    methods = ", ".join(f"`{name}`" for name in entry["methods"])
    return (f"Measured by `scripts/build_gallery.py` on the shipped {model.upper()} (`{entry['model']['path']}`): "
            f"{methods} each explain the first {entry['images']} {entry['data']['split']} images "
            f"of `{entry['data']['path']}` (rows {first}-{last}; target {shared['target']}, {shared['score']} score, "
            f"seed {entry['seed']}), then `faithfulness` scores their maps; {settings}. The run took "
            f"{_minutes(entry['wall_seconds'])} on a machine with {entry['cpus']} CPUs (load average "
            f"{entry['load_average_before']:g} when it started); the slowest steps: "
            + ", ".join(f"{name} {_minutes(seconds)}" for name, seconds in slowest) + ".\n")


def _names(rows: list[dict]) -> str:
    return ", ".join(row["map"] for row in rows) if rows else "none"


def render_faithfulness_verdicts(model: str | None, page_src: str, gallery: Path = GALLERY) -> str:
    """Which methods beat the random map on each curve, which beat the Sobel map on both, which the randomisation
    check flags, and the best: sentences made from the recorded table, so they say what the data says."""
    entry = faithfulness_record(model, page_src, gallery)
    if entry is None:
        return ""  # the table's marker says that the record is missing
    methods = [row for row in entry["table"] if row["kind"] == "method"]
    out = []
    for curve in ("deletion", "insertion"):
        groups = {verdict: [row for row in methods if row[curve]["vs_random"]["verdict"] == verdict]
                  for verdict in ("better", "not distinguishable", "worse", "too few images")}
        parts = [f"better than the random map: {_names(groups['better'])}"]
        parts += [f"{label}: {_names(groups[verdict])}" for verdict, label in
                  (("not distinguishable", "not distinguishable from it"), ("worse", "worse"),
                   ("too few images", "too few images to tell")) if groups[verdict]]
        out.append(f"On {curve}, " + "; ".join(parts) + ".")
    both = [row for row in methods if all(row[c]["vs_sobel"]["verdict"] == "better" for c in ("deletion", "insertion"))]
    out.append(f"Better than the Sobel edge map on both curves: {_names(both)}.")
    checked = [row for row in methods if row["randomization"] and "rho_all_layers" in row["randomization"]]
    if checked:
        flagged = [row for row in checked if row["randomization"]["verdict"] == "flagged"]
        layers = checked[0]["randomization"]["layers"]
        out.append(f"Flagged by the randomisation check (maps that survive the re-initialisation of all {layers} "
                   f"layers): {_names(flagged)}.")
    else:
        out.append("The randomisation check did not run on this model.")
    if entry["best"]:
        out.append(f"Best by {_text(entry['ranked_by'])}: {entry['best']}.")
    return " ".join(out) + "\n"


# --- the hook ------------------------------------------------------------------------------------------


def render_marker(name: str, argument: str | None, page_src: str, inside_gallery: bool = False) -> str:
    if name == "cli":
        return render_cli()
    if name == "builtin-plugins":
        return render_builtin_plugins()
    if name == "reference-numbers":
        return render_reference_numbers()
    if name == "training-settings":
        return render_training_settings()
    if name == "gallery" and not inside_gallery:
        return render_gallery(page_src)
    if name == "hero":
        return render_figure(None, page_src)
    if name == "figure":
        return render_figure(argument, page_src)
    if name == "faithfulness":
        return render_faithfulness(argument, page_src)
    if name == "faithfulness-run":
        return render_faithfulness_run(argument, page_src)
    if name == "faithfulness-verdicts":
        return render_faithfulness_verdicts(argument, page_src)
    where = "docs/gallery/gallery.md (included by " + page_src + ")" if inside_gallery else page_src
    raise PluginError(f"{where}: unknown marker <!-- xai-fer:{name} -->")


def expand(markdown: str, page_src: str, inside_gallery: bool = False) -> str:
    return MARKER.sub(lambda match: render_marker(match.group(1), match.group(2), page_src, inside_gallery), markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return expand(markdown, page.file.src_uri)
