"""The documentation site: it builds with ``mkdocs build --strict``, covers every hook, plugin, option, command
and public API name, shows the reference numbers and gallery made from the shipped models, and its pages (and
a run's ``index.html``) show every picture in a real headless Chromium."""

import ast
import dataclasses
import html
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xai_fer import hookspecs, registry
from xai_fer.options import describe_options

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TESTS = Path(__file__).resolve().parent
REFERENCE = ROOT / "xai_fer" / "reference"
GALLERY = DOCS / "gallery"
EXAMPLE = ROOT / "examples" / "xai-fer-blur-ig"
HOOKSPECS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
                   if name.startswith("register_"))


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _text(page: Path) -> str:
    """A built page's visible text: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built from this checkout with ``mkdocs build --strict``; any warning fails it."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                             str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    return out


# --- the build -----------------------------------------------------------------------------------------


def test_site_builds_strict_with_every_page(site):
    for page in ("index.html", "tutorial/index.html", "gallery/index.html", "plugin-guide/index.html",
                 "plugins/index.html", "cli/index.html", "api/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    assert not (site / "_hooks").exists(), "the build hook must not be published"


def test_docs_tools_are_in_the_test_and_docs_extras():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in ("test", "docs"):
        names = {re.split(r"[<>=\[ ]", requirement)[0].lower() for requirement in extras[extra]}
        assert {"mkdocs", "mkdocs-material", "mkdocstrings"} <= names, extra
        assert any(r.replace(" ", "").startswith("mkdocstrings[python]") for r in extras[extra]), extra


def test_home_page_has_the_readme_commands():
    readme_commands = re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert len(readme_commands) >= 2
    home = (DOCS / "index.md").read_text()
    for command in readme_commands:
        assert command in home, f"docs/index.md lacks the README command: {command}"


# --- plugins: hookspecs, the guide, built-in plugins ---------------------------------------------------


def _hook_tests() -> dict[str, list[str]]:
    """{hook: ["test_x.py::test_hook_<hook>", ...]} for each test function named after a hook (as datasette
    names its hook tests) that itself defines an ``@hookimpl`` implementation of that hook."""
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.glob("test_*.py")):
        for test in ast.parse(path.read_text()).body:
            if not (isinstance(test, ast.FunctionDef) and test.name.startswith("test_hook_")):
                continue
            hook = test.name.removeprefix("test_hook_")
            implemented = any(isinstance(node, ast.FunctionDef) and node.name == hook and any(
                "hookimpl" in ast.unparse(decorator) for decorator in node.decorator_list) for node in ast.walk(test))
            if implemented:
                found.setdefault(hook, []).append(f"{path.name}::{test.name}")
    return found


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_every_hookspec_has_a_test(hook):
    """A test that registers a plugin implementing the hook (and checks what it registered is used); a test
    that only mentions the hook's name does not count."""
    assert _hook_tests().get(hook), f"no test_hook_{hook} that implements {hook} with @hookimpl"


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_every_hookspec_is_documented_in_the_plugin_guide(hook, site):
    source = (DOCS / "plugin-guide.md").read_text()
    assert f"### `{hook}`" in source, f"docs/plugin-guide.md has no section for {hook}"
    assert f'id="{hook}"' in (site / "plugin-guide" / "index.html").read_text()


def test_plugin_guide_explains_discovery_and_the_switch(site):
    text = _text(site / "plugin-guide" / "index.html")
    assert registry.ENTRY_POINT_GROUP == "xai_fer" and "[project.entry-points.xai_fer]" in text
    assert f"{registry.DISABLE_ENV}=1" in text


def test_plugin_guide_includes_the_whole_example(site):
    """The guide shows the example's real files (pymdownx.snippets), so it cannot drift from them."""
    text = _text(site / "plugin-guide" / "index.html")
    for path in (EXAMPLE / "pyproject.toml", EXAMPLE / "xai_fer_blur_ig.py"):
        for line in path.read_text().splitlines():
            assert line.strip() in text, f"{path.name}: line missing from the plugin guide: {line!r}"


def test_plugin_guide_names_only_real_context_members():
    from xai_fer.explain.context import ExplainContext

    guide = (DOCS / "plugin-guide.md").read_text()
    named = set(re.findall(r"`context\.(\w+)", guide))
    assert {"images", "data_model", "probabilities", "predictions"} <= named
    fields = {f.name for f in dataclasses.fields(ExplainContext)}
    for name in named:
        assert name in fields or hasattr(ExplainContext, name), f"plugin guide: ExplainContext has no {name}"


def _builtin():
    infos = [info for info in registry.plugin_infos() if info.package == registry.OWN_DISTRIBUTION]
    tables = {"models": registry.models(), "explainers": registry.explainers(), "datasets": registry.datasets()}
    return infos, tables


def test_every_builtin_plugin_and_name_has_a_docs_entry(site):
    page = (site / "plugins" / "index.html").read_text()
    text = _text(site / "plugins" / "index.html")
    infos, tables = _builtin()
    assert infos
    for info in infos:
        assert info.name in text, f"plugin {info.name} is not on the built-in plugins page"
        for kind, names in info.registers.items():
            for name in names:
                assert f'id="{kind}-{name}"' in page, f"{kind[:-1]} {name} has no entry on the plugins page"
                obj = tables[kind][name]
                assert html.escape(obj.description, quote=False) in page or obj.description in text
                options = describe_options(obj.Options) if hasattr(obj, "Options") else []
                for row in options:
                    assert f"{row['name']}" in text, f"option {name}.{row['name']} is not documented"


def test_core_explainers_are_documented(site):
    text = _text(site / "plugins" / "index.html")
    for name in ("cnn", "dnn", "confusion", "saliency", "activation-max", "hdf5", "npz"):
        assert name in text


# --- CLI and API reference -----------------------------------------------------------------------------


def test_cli_reference_has_every_command_and_option(site):
    import typer

    from xai_fer.cli import app

    text = _text(site / "cli" / "index.html")
    group = typer.main.get_command(app)
    assert group.commands
    for name, command in group.commands.items():
        assert f"xai-fer {name}" in text, f"command {name} missing from the CLI reference"
        for param in command.params:
            for flag in param.opts:
                if flag.startswith("--"):
                    assert flag in text, f"xai-fer {name} {flag} missing from the CLI reference"


def test_api_reference_documents_every_public_name(site):
    import xai_fer

    page = (site / "api" / "index.html").read_text()
    for name, module in xai_fer._LAZY.items():
        assert f'id="{module}.{name}"' in page, f"xai_fer.{name} ({module}) is not in the API reference"
    for name in ("xai_fer.registry.plugin_infos", "xai_fer.options.option", "xai_fer.explain.base.Explainer",
                 "xai_fer.explain.context.ExplainContext", "xai_fer.data.dataset.DatasetFormat"):
        assert f'id="{name}"' in page, name


def test_python_examples_in_the_docs_use_existing_names():
    import xai_fer

    for page in DOCS.glob("*.md"):
        for block in re.findall(r"```python\n(.+?)```", page.read_text(), re.S):
            for name in re.findall(r"\bxai_fer\.([A-Za-z_]\w*)\(", block):
                assert hasattr(xai_fer, name), f"{page.name}: xai_fer.{name} does not exist"


# --- numbers and gallery from the shipped models -------------------------------------------------------


@pytest.fixture(scope="module")
def docs_hook():
    return _load(DOCS / "_hooks" / "xai_fer_docs.py", "xai_fer_docs_hook")


def test_reference_numbers_are_read_from_the_metrics_files(docs_hook, tmp_path):
    def metrics(accuracy, flip, averaging=None):
        per_class = {"Angry": {"n": 491, "accuracy": 0.5}, "Happy": {"n": 879, "accuracy": 0.875}}
        splits = {"PrivateTest": {"plain": {"n": 3589, "accuracy": accuracy, "per_class": per_class},
                                  "tta_flip": {"n": 3589, "accuracy": flip, "per_class": per_class}}}
        return {"parameters": 786983, "epochs": 30, "best_epoch": 27, "splits": splits, "command": "xai-fer train",
                "weight_averaging": averaging}

    (tmp_path / "cnn_metrics.json").write_text(json.dumps(metrics(0.701234, 0.712345)))
    averaged = {"kept": True, "first_epoch": 17, "last_epoch": 30}
    (tmp_path / "dnn_metrics.json").write_text(json.dumps(metrics(0.456789, 0.4601, averaged)))
    table = docs_hook.render_reference_numbers(tmp_path)
    for expected in ("70.12%", "71.23%", "45.68%", "46.01%", "68.793%", "37.77%", "786,983", "30 (best epoch 27)",
                     "30 (average of epochs 17-30)", "87.50%"):
        assert expected in table, expected
    assert "not built yet" in docs_hook.render_reference_numbers(tmp_path / "nothing-here")

    # A model trained in a chain of runs (--init-from): every step's command, and the epochs marked as the last run's.
    chained = metrics(0.70, 0.71) | {"command": "xai-fer train cnn --epochs 30 --init-from runs/a/model.keras",
                                     "resume_commands": ["xai-fer train cnn --resume"],
                                     "initialisation": {"path": "runs/a/model.keras", "command": "xai-fer train cnn "
                                                        "--epochs 24", "initialisation": None}}
    (tmp_path / "cnn_metrics.json").write_text(json.dumps(chained))
    table = docs_hook.render_reference_numbers(tmp_path)
    assert "30 of its last run† (best epoch 27)" in table and "CNN, in 2 runs" in table
    for command in ("1. `xai-fer train cnn --epochs 24`", "2. `xai-fer train cnn --epochs 30 --init-from",
                    "then continued with `xai-fer train cnn --resume`"):
        assert command in table, command

    # A distilled model: the table says it was taught and where its teachers are listed.
    distilled = metrics(0.70, 0.71) | {"distillation": {"teachers": [{"path": "/a.keras", "sha256": "0" * 64}] * 3,
                                                        "teacher_weight": 0.5}}
    (tmp_path / "cnn_metrics.json").write_text(json.dumps(distilled))
    table = docs_hook.render_reference_numbers(tmp_path)
    assert "taught by 3 earlier model(s) (knowledge distillation, teacher weight 0.5)" in table
    assert "`xai_fer/reference/README.md` names each" in table

    # A CNN chosen among several runs: the candidates side by side, from cnn_selection.json.
    runs = [{"name": "kd05", "chosen": True, "validation_loss": 1.1045, "accuracy": {"PublicTest tta_flip": 0.6949}},
            {"name": "kd08", "chosen": False, "validation_loss": None, "accuracy": {}}]
    (tmp_path / "cnn_selection.json").write_text(json.dumps({"rule": "the best validation accuracy", "runs": runs}))
    table = docs_hook.render_reference_numbers(tmp_path)
    assert "The CNN was chosen among 2 runs by the best validation accuracy:" in table
    assert "| `kd05` (chosen) | 1.1045 | - | 69.49% | - | - |" in table and "| `kd08` | - | - |" in table


def test_study_numbers_come_from_the_reference_builder(docs_hook):
    assert docs_hook.study_numbers() == {"cnn": 0.68793, "dnn": 0.3777}


def test_tutorial_shows_the_shipped_models_numbers(site):
    text = _text(site / "tutorial" / "index.html")
    assert "68.793%" in text and "37.77%" in text
    found = sorted(REFERENCE.glob("*_metrics.json"))
    if not found:
        assert "Reference models not built yet" in text
        pytest.skip("no xai_fer/reference/*_metrics.json yet: the tutorial says so instead of showing numbers")
    for path in found:
        accuracy = json.loads(path.read_text())["splits"]["PrivateTest"]["plain"]["accuracy"]
        assert f"{100 * accuracy:.2f}%" in text, f"{path.name}: PrivateTest accuracy missing from the tutorial"


def test_gallery_was_made_from_the_shipped_models():
    """Once the reference models ship, the gallery must be regenerated from exactly those files."""
    if not (REFERENCE / "cnn.keras").exists():
        pytest.skip("no xai_fer/reference/cnn.keras yet: the gallery is generated once the reference models exist")
    index = GALLERY / "gallery.json"
    assert index.exists(), "no gallery: run `python scripts/build_gallery.py`"
    record = json.loads(index.read_text())
    for name in ("cnn", "dnn"):
        model = REFERENCE / f"{name}.keras"
        assert record["models"][name]["path"] == f"xai_fer/reference/{name}.keras"
        assert record["models"][name]["sha256"] == docs_hook_sha256(model), \
            f"docs/gallery was made from another {name}.keras: rerun `python scripts/build_gallery.py`"
    snippet = (GALLERY / "gallery.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(gallery/([^)]+)\)", snippet)
    assert len(figures) >= 10
    for figure in figures:
        assert (GALLERY / figure).is_file(), figure
    for needed in ("cnn/confusion/", "cnn/saliency/grid.png", "cnn-filters-early-noise/", "cnn-filters-early-image/",
                   "cnn-filters-deep-noise/", "cnn-filters-deep-image/", "dnn/confusion/"):
        assert any(f.startswith(needed) for f in figures), needed


def docs_hook_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- a real browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def check_pages():
    module = _load(ROOT / "scripts" / "check_pages.py", "xai_fer_check_pages")
    if module.missing():
        pytest.skip(f"{module.missing()}; the browser check needs it")
    return module


@pytest.fixture(scope="module")
def explain_run(tmp_path_factory) -> Path:
    """An ``xai-fer explain`` report of a tiny model, as a user gets it."""
    import tiny_models

    from xai_fer.explain.pipeline import run_explain

    root = tmp_path_factory.mktemp("run")
    tiny_models.sequential_fused_softmax().save(root / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(root / "data.npz", images=rng.integers(0, 256, size=(14, 48, 48), dtype=np.uint8),
             labels=np.arange(14) % 7)
    run_explain(root / "model.keras", root / "data.npz", root / "run", ["confusion", "saliency"],
                {"saliency": {"per_class": "1"}})
    return root / "run"


def test_the_browser_check_detects_a_broken_image(check_pages, tmp_path):
    """The check itself: a missing file and a file that is not an image both count as broken."""
    (tmp_path / "fine.png").write_bytes(_png())
    (tmp_path / "corrupt.png").write_bytes(b"not a picture")
    page = tmp_path / "page.html"
    page.write_text('<img src="fine.png"><div style="height:4000px"></div><img src="fine.png" loading="lazy">'
                    '<img src="corrupt.png"><img src="missing.png">')
    (report,) = check_pages.check_pages([page], tmp_path / "shots")
    assert len(report.images) == 4 and {image["kind"] for image in report.images} == {"img"}
    assert sorted(Path(src).name for src in report.broken) == ["corrupt.png", "missing.png"]
    assert report.static_missing == ["missing.png"]
    assert not report.ok


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pages_show_every_image_in_chromium(check_pages, site, explain_run, tmp_path):
    pages = [site / "index.html", site / "gallery" / "index.html", site / "tutorial" / "index.html",
             site / "plugin-guide" / "index.html", explain_run / "index.html"]
    reports = check_pages.check_pages(pages, tmp_path / "screenshots")
    for report in reports:
        assert report.ok, f"{report.page}: not loaded {report.broken}, no such file {report.static_missing}"
        shot = Path(report.screenshot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    run_report = reports[-1]
    figures = [image for image in run_report.images if image["kind"] == "img"]
    assert len(figures) == len([p for p in explain_run.glob("*/*.png") if p.parent.name != "_browser"]) >= 5
    assert all(image["width"] > 100 for image in figures)
    sheets = {Path(image["src"]).name for image in run_report.images if image["kind"] == "background"}
    assert sheets == {p.name for p in (explain_run / "_browser").glob("*.png")}  # the browser's thumbnails
    if (GALLERY / "gallery.md").exists():
        assert len(reports[1].images) >= 10 and len(reports[0].images) >= 1


def test_every_training_setting_is_in_the_tutorials_table(docs_hook, site):
    import dataclasses

    from xai_fer.training.config import PRESETS, TrainConfig

    table = docs_hook.render_training_settings()
    for field in dataclasses.fields(TrainConfig):
        row = next(line for line in table.splitlines() if line.startswith(f"| `{field.name}` |"))
        assert all(f"`{getattr(preset, field.name)!r}`" in row for preset in PRESETS.values()), row
    assert "average_last_epochs" in _text(site / "tutorial" / "index.html")


# --- faithfulness: the gallery's recorded table, rendered into the gallery and the tutorial -------------


def _faithfulness_entries() -> dict:
    """Each model's faithfulness record in docs/gallery/gallery.json ({} before the gallery has one)."""
    index = GALLERY / "gallery.json"
    record = json.loads(index.read_text()) if index.exists() else {}
    return {name: record[name]["faithfulness"] for name in ("cnn", "dnn") if "faithfulness" in record.get(name, {})}


def _faithfulness_tables(page: Path) -> list[list[list[str]]]:
    """The body rows (cell texts) of every faithfulness table on a built page, in page order."""
    tables = []
    for table in re.findall(r"<table>(.*?)</table>", page.read_text(encoding="utf-8"), re.S):
        if "deletion AUC" not in table:
            continue
        body = re.search(r"<tbody>(.*?)</tbody>", table, re.S).group(1)
        tables.append([[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
                        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
                       for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)])
    return tables


def _expected_cells(row: dict) -> list[str]:
    """A recorded ranking row as the table must show it: AUC ± SE (ratio to random), the verdicts against the
    random and the Sobel map, the randomisation result."""
    def auc(curve):
        c = row[curve]
        ratio = "" if row["map"] == "random map" else f" ({c['ratio_to_random']:.2f}×)"
        return f"{c['auc']:.3f} ± {c['se']:.3f}{ratio}"

    def versus(curve):
        return " / ".join("-" if row["map"] == own else row[curve][f"vs_{key}"]["verdict"]
                          for key, own in (("random", "random map"), ("sobel", "Sobel edge map")))

    check = row["randomization"]
    randomization = "-" if check is None else (f"{check['verdict']} (rho {check['rho_all_layers']:.2f})"
                                               if "rho_all_layers" in check else check["verdict"])
    return [str(row["rank"]), row["map"], auc("deletion"), versus("deletion"), auc("insertion"), versus("insertion"),
            randomization]


def test_faithfulness_markers_render_the_recorded_data(docs_hook, tmp_path):
    from mkdocs.exceptions import PluginError

    def curve(auc, ratio, random, sobel):
        return {"auc": auc, "se": 0.0123, "ratio_to_random": ratio,
                "vs_random": {"difference": -0.05, "se": 0.01, "verdict": random},
                "vs_sobel": {"difference": -0.02, "se": 0.01, "verdict": sobel}}

    table = [
        {"rank": 1, "map": "rise", "kind": "method", "images": 9, "score": 0.4, "deletion": curve(0.1875, 0.75,
         "better", "better"), "insertion": curve(0.6543, 2.1, "better", "better"), "sentence": "rise did well.",
         "randomization": {"verdict": "passes", "rho_all_layers": 0.1234, "threshold": 0.5, "layers": 23}},
        {"rank": 2, "map": "saliency", "kind": "method", "images": 9, "score": 0.1, "deletion": curve(
         0.2612, 1.04, "not distinguishable", "worse"), "insertion": curve(0.3333, 1.3, "better", "worse"),
         "sentence": "saliency did not.", "randomization": {"verdict": "flagged", "rho_all_layers": 0.6789,
                                                            "threshold": 0.5, "layers": 23}},
        {"rank": 3, "map": "random map", "kind": "baseline", "images": 9, "score": 0.0, "deletion": curve(
         0.25, 1.0, "not distinguishable", "better"), "insertion": curve(0.25, 1.0, "not distinguishable", "worse"),
         "sentence": None, "randomization": None},
    ]
    entry = {"rows": [0, 8], "images": 9, "methods": ["rise", "saliency"], "skipped": {"grad-cam": "no conv layers"},
             "seed": 0, "shared_options": {"target": "predicted", "score": "logit"},
             "settings": {"rise": {"masks": 250, "cells": 7}, "saliency": {}, "faithfulness": {"steps": 32}},
             "changed_settings": {"rise": {"masks": 250}},
             "ranked_by": "insertion AUC - deletion AUC", "best": "rise", "table": table,
             "seconds": {"rise": 90.0, "saliency": 6.0, "faithfulness": 300.0}, "wall_seconds": 450.0, "cpus": 2,
             "load_average_before": 1.5}
    record = {"data": {"path": "fer2013.h5", "split": "PrivateTest"}, "models": {"cnn": {"path": "cnn.keras"}},
              "cnn": {"faithfulness": entry}}
    (tmp_path / "gallery.json").write_text(json.dumps(record))

    rendered = docs_hook.render_faithfulness("cnn", "page.md", tmp_path)
    lines = rendered.splitlines()
    assert "| 1 | rise | 0.188 ± 0.012 (0.75×) | better / better | 0.654 ± 0.012 (2.10×) | better / better | " \
           "passes (rho 0.12) |" in lines
    assert "| 2 | saliency | 0.261 ± 0.012 (1.04×) | not distinguishable / worse | 0.333 ± 0.012 (1.30×) | " \
           "better / worse | **flagged** (rho 0.68) |" in lines
    assert "| 3 | *random map* | 0.250 ± 0.012 | - / better | 0.250 ± 0.012 | - / worse | - |" in lines
    assert "grad-cam (no conv layers)" in rendered and "    - rise did well." in lines

    verdicts = docs_hook.render_faithfulness_verdicts("cnn", "page.md", tmp_path)
    assert "On deletion, better than the random map: rise; not distinguishable from it: saliency." in verdicts
    assert "On insertion, better than the random map: rise, saliency." in verdicts
    assert "Better than the Sobel edge map on both curves: rise." in verdicts
    assert "all 23 layers): saliency." in verdicts
    run = docs_hook.render_faithfulness_run("cnn", "page.md", tmp_path)
    assert "first 9 PrivateTest images" in run and "7.5 min" in run
    assert "differ from the defaults: `rise.masks=250` (" in run and "cells" not in run
    assert "faithfulness 5.0 min, rise 1.5 min, saliency 6 s." in run

    assert "not generated yet" in docs_hook.render_faithfulness("dnn", "page.md", tmp_path)
    assert "not generated yet" in docs_hook.render_faithfulness("cnn", "page.md", tmp_path / "nothing")
    with pytest.raises(PluginError, match="name a model"):
        docs_hook.render_faithfulness(None, "page.md", tmp_path)


def test_gallery_faithfulness_tables_equal_the_recorded_data(site):
    entries = _faithfulness_entries()
    tables = _faithfulness_tables(site / "gallery" / "index.html")
    if not entries:
        assert not tables
        pytest.skip("docs/gallery/gallery.json has no faithfulness record yet: run scripts/build_gallery.py")
    assert len(tables) == len(entries)
    for (name, entry), shown in zip(entries.items(), tables, strict=True):
        assert shown == [_expected_cells(row) for row in entry["table"]], name
        assert {row["map"] for row in entry["table"]} == {*entry["methods"], "random map", "Sobel edge map"}
        for key in ("side_by_side", "curves"):
            assert (GALLERY / entry["figures"][key]).is_file(), (name, key)
    text = _text(site / "gallery" / "index.html")
    for entry in entries.values():
        for row in entry["table"]:
            if row["sentence"]:
                assert row["sentence"] in text


def _which_map_section() -> str:
    source = (DOCS / "tutorial.md").read_text()
    start = source.index("## Which map to trust")
    end = source.find("\n## ", start + 1)
    return source[start:end if end > 0 else None]


def test_tutorial_has_no_hand_typed_faithfulness_numbers(site):
    """Measured numbers in "Which map to trust" come from the gallery's record through the docs hook's markers;
    the page source holds none (no decimal number, ± error, ratio or duration), and the built page shows the
    recorded table."""
    section = _which_map_section()
    for marker in ("faithfulness-run cnn", "faithfulness cnn", "faithfulness-verdicts cnn"):
        assert f"<!-- xai-fer:{marker} -->" in section, marker
    typed = re.findall(r"\d+\.\d+|±|\d\s*×|\d+\s*(?:minutes|min\b|s\b)", section)
    assert not typed, f"docs/tutorial.md 'Which map to trust' has numbers typed in by hand: {typed}"
    entries = _faithfulness_entries()
    tables = _faithfulness_tables(site / "tutorial" / "index.html")
    if "cnn" not in entries:
        assert not tables
        pytest.skip("docs/gallery/gallery.json has no faithfulness record yet: run scripts/build_gallery.py")
    assert tables == [[_expected_cells(row) for row in entries["cnn"]["table"]]]
