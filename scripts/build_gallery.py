"""Regenerate the documentation gallery from the shipped reference models and real FER2013 PrivateTest images.

    python scripts/build_gallery.py            # defaults: xai_fer/reference/{cnn,dnn}.keras, ../shared/data/fer2013.h5

Runs the ``xai-fer explain`` CLI (each command is printed and written under its figure): for the CNN and the
DNN, ``confusion`` on all PrivateTest images and ``saliency`` on one image per class; for the CNN,
``activation-max`` on its first (early) and last (deep) conv layer, from noise and from a face; for both, every
built-in attribution method on the first ``--faithfulness-images`` PrivateTest images (default 128) followed by
``faithfulness`` (methods that do not apply to a model, e.g. Grad-CAM on the DNN, are left out with the reason
the method gives). The runs go to ``build/gallery-runs/`` (kept, with their ``index.html``); the figures shown
are copied to ``docs/gallery/``, which is replaced as a whole, together with ``gallery.md`` (included by
``docs/gallery.md``) and ``gallery.json`` (what was run on which files, with their sha256, the numbers quoted,
and each model's faithfulness ranking table with its settings and timings, which the docs hook renders).
Nothing in the gallery is made by hand.

The last step explains every PrivateTest image with the CNN (``--all-images``, about 20 minutes on 2 cores) and
publishes that report: ``--only whole-split`` reruns it alone, ``--keep-whole-split`` rebuilds everything else and
keeps the published one.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from xai_fer.fingerprints import file_sha256 as sha256
from xai_fer.reference import percent as pct

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "xai_fer" / "reference"
DEFAULT_H5 = ROOT.parent / "shared" / "data" / "fer2013.h5"
SPLIT = "PrivateTest"
SEED_CLASS = "Happy"  # activation-max "from an image" starts from the first PrivateTest face of this class
# The attribution methods the gallery scores, in the order issue 16 lists them; build() checks that this is
# every built-in attribution method, so a new one cannot be left out of the gallery unnoticed.
METHODS = ("saliency", "grad-cam", "grad-cam-plus-plus", "smoothgrad", "integrated-gradients", "gradient-x-input",
           "occlusion", "rise")
ROWS_VARIABLE = "$ROWS"  # how the commands show the row list (128 numbers), set by the line above them
# Settings that differ from the methods' defaults, so that the faithfulness runs of both models fit in about ten
# minutes on a busy 2-core machine: with every default, the CNN's run alone overran that there, RISE's 500 masks
# per image its largest part after faithfulness. Recorded in gallery.json with every other setting, shown with
# the table.
FAITHFULNESS_SETTINGS = {"rise": {"masks": 250}}
FAITHFULNESS_GRID_ROWS = 7  # the runs' own grids: the gallery shows the side-by-side figure, not 8 grids of 128
FAITHFULNESS_FIGURES = {"side_by_side": "side_by_side.png", "curves": "curves.png",
                        "randomization": "randomization.png"}
FAITHFULNESS_TITLES = {  # heading, alt text
    "side_by_side": ("every map side by side", "every map of the first images, with its mask below"),
    "curves": ("deletion and insertion curves", "mean deletion and insertion curves of every map"),
    "randomization": ("randomisation check", "Spearman rho of each method's maps with the trained model's as the "
                                             "layers are re-initialised from the output down")}
# Options every attribution method shares; the others are the method's own settings, recorded per method.
SHARED_OPTIONS = ("select", "indices", "per_class", "count", "target", "score", "threshold_percentile",
                  "batch_size", "image_figures", "grid_rows")
# The whole split: every PrivateTest image explained by the CNN (--all-images), its report published in the docs.
WHOLE_SPLIT_RUN = "cnn-privatetest-all"
WHOLE_SPLIT_EXPLAINERS = ("confusion", "saliency", "grad-cam", "smoothgrad", "class-maps", "confusion-maps",
                          "confidence-extremes", "method-disagreement")
WHOLE_SPLIT_GRID_ROWS = 8  # rows of each method's grid figure (default 40: 1.5 MB of PNG each)
WHOLE_SPLIT_SNIPPET = "whole-split.md"  # included by docs/gallery.md
# Left out of the published copy, which its page does not read: every map of the split (the report's maps.h5,
# about 100 MB; the image browser has its own thumbnails) and the explainers' arrays (numbers for scripts).
WHOLE_SPLIT_LEFT_OUT = ("maps.h5", "arrays.npz")
# Made by another script and carried over when the gallery is replaced: the image browser's screenshot, taken by
# benchmarks/browser_load.py --screenshot docs/gallery/browser/privatetest.png (a real Chromium is needed there).
MADE_ELSEWHERE = ("browser",)


def shown(path: Path) -> str:
    """A path as the commands show it (and run it): relative to the repository when possible."""
    return os.path.relpath(path, ROOT)


def cli() -> list[str]:
    script = Path(sys.executable).parent / "xai-fer"
    return [str(script)] if script.exists() else [sys.executable, "-m", "xai_fer"]


def command_line(args: list[str], rows: str | None = None) -> str:
    """The command as shown; ``rows`` (a long comma-separated row list) is shown as ``$ROWS``."""
    command = "xai-fer " + " ".join(shlex.quote(a) for a in args)
    return command.replace(f"={rows}", f"={ROWS_VARIABLE}") if rows else command


def run_cli(args: list[str], rows: str | None = None) -> None:
    command = command_line(args, rows)
    print(f"$ {command}", flush=True)
    result = subprocess.run([*cli(), *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {command}\n{result.stdout}{result.stderr}")


def first_row_of_class(h5: Path, class_name: str) -> int:
    """Row, within the PrivateTest split as xai-fer loads it (file order), of the first image of a class."""
    import h5py
    import numpy as np

    with h5py.File(h5, "r") as handle:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in handle.attrs["class_names"]]
        labels = handle["labels"][()][handle["usage"][()] == 2]
    return int(np.flatnonzero(labels == names.index(class_name))[0])


def conv_layers(model: Path) -> list[str]:
    """The model's conv layers in order, as ``xai-fer info`` reports them."""
    from xai_fer.models.introspect import inspect_model
    from xai_fer.models.loading import load_model

    return list(inspect_model(load_model(model)).conv_layers)


def explain(name: str, model: Path | str, h5: Path, runs: Path, extra: list[str], rows: str | None = None) -> dict:
    """Run ``xai-fer explain``; ``model``: a path, or a name as the CLI takes it (``bundled:cnn``); ``rows``: a
    row list given to options, shown as ``$ROWS`` in the command."""
    out = runs / name
    args = ["explain", model if isinstance(model, str) else shown(model), "--data", shown(h5), "--split", SPLIT,
            *extra, "--out", shown(out), "--overwrite"]
    started = time.perf_counter()
    run_cli(args, rows)
    return {"name": name, "out": out, "command": command_line(args, rows),
            "wall_seconds": round(time.perf_counter() - started, 1)}


def summary(run: dict, explainer: str) -> dict:
    return json.loads((run["out"] / explainer / "summary.json").read_text())


def copy_figure(run: dict, relative: str, gallery: Path) -> str:
    """Copy ``<run>/<relative>`` to ``gallery/<run name>/<relative>``; returns the path under the gallery."""
    target = gallery / run["name"] / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run["out"] / relative, target)
    return f"{run['name']}/{relative}"


def image(path: str, alt: str) -> str:
    return f"![{alt}](gallery/{path})"


def command_block(run: dict, preamble: tuple[str, ...] = ()) -> list[str]:
    return ["", "```bash", *preamble, run["command"], "```", ""]


def confusion_section(label: str, run: dict, gallery: Path, record: dict) -> list[str]:
    s = summary(run, "confusion")
    record["confusion"] = {"accuracy": s["accuracy"], "macro_f1": s["macro_f1"], "num_images": s["num_images"],
                           "statement": s["study_pattern"]["statement"]}
    pairs = s["most_confused"]["by_count"][:3]
    lines = [f"### {label}: confusion matrix", "",
             f"All {s['num_images']:,} {SPLIT} images: accuracy **{pct(s['accuracy'])}**, macro F1 "
             f"{s['macro_f1']:.3f}. Against the study's reading, this run's data {s['study_pattern']['statement']}",
             "", "Most confused (true -> predicted): " + "; ".join(
                 f"{p['true']} -> {p['predicted']} ({p['count']}, {pct(p['share_of_true'])} of {p['true']})"
                 for p in pairs) + ".", ""]
    lines.append(image(copy_figure(run, "confusion/confusion_normalized.png", gallery),
                       f"{label} confusion matrix, share of each true class"))
    lines += ["", '??? note "Counts and per-class precision, recall and F1"', ""]
    lines.append("    " + image(copy_figure(run, "confusion/confusion_counts.png", gallery),
                                f"{label} confusion matrix, counts"))
    lines += ["", "    " + image(copy_figure(run, "confusion/per_class_metrics.png", gallery),
                                  f"{label} per-class metrics")]
    return lines + command_block(run)


def saliency_section(label: str, run: dict, gallery: Path, record: dict) -> list[str]:
    s = summary(run, "saliency")
    record["saliency"] = {"images": s["images"]}
    lines = [f"### {label}: saliency | original | masked, one image per class", "",
             f"The first {SPLIT} image of every class. Saliency is |d {s['score']} / d pixel| of the predicted "
             f"class, scaled per image; the mask keeps the pixels above the {s['threshold_percentile']:g}th "
             "percentile.", "", "| row | true | predicted | probability | kept |", "|---|---|---|---|---|"]
    for i in s["images"]:
        lines.append(f"| {i['row']} | {i['true']} | {i['predicted']} | {i['probability']:.2f} | "
                     f"{pct(i['fraction_kept'])} |")
    lines += ["", image(copy_figure(run, "saliency/grid.png", gallery), f"{label} saliency, original, masked")]
    return lines + command_block(run)


def filters_section(run: dict, gallery: Path, record: dict, title: str) -> list[str]:
    s = summary(run, "activation-max")
    record.setdefault("filters", []).append({"run": run["name"], "layer": s["layer"]})
    lines = [f"#### {title}", "", image(copy_figure(run, "activation-max/filters.png", gallery), title)]
    return lines + command_block(run)


# --- faithfulness: every attribution method, scored ------------------------------------------------------


def check_methods() -> None:
    """METHODS must be every built-in attribution method: the gallery shows them all."""
    from xai_fer import registry
    from xai_fer.explain.attribution import Attribution

    builtin = {name for info in registry.plugin_infos() if info.package == registry.OWN_DISTRIBUTION
               for name in info.registers.get("explainers", [])}
    attributions = {name for name, explainer in registry.explainers().items()
                    if name in builtin and isinstance(explainer, Attribution)}
    if attributions != set(METHODS):
        sys.exit(f"scripts/build_gallery.py: METHODS {sorted(METHODS)} differs from the built-in attribution methods "
                 f"{sorted(attributions)}: update METHODS")


def applicable_methods(model: Path) -> tuple[list[str], dict[str, str]]:
    """The methods that apply to the model, and the reason each other one gives (its own check against the
    model, the one ``xai-fer explain`` runs before any work)."""
    from xai_fer import registry
    from xai_fer.errors import UserError
    from xai_fer.models.introspect import inspect_model
    from xai_fer.models.loading import load_model

    info = inspect_model(load_model(model))
    kept, skipped = [], {}
    for name in METHODS:
        method = registry.lookup("explainers", name)
        try:
            method.validate(info, method.Options())
        except UserError as exc:
            skipped[name] = exc.message.removeprefix(f"{name}: ")
            continue
        kept.append(name)
    return kept, skipped


def faithfulness_options(methods: list[str], rows: str) -> list[str]:
    options = []
    for name in methods:
        options += ["-e", name, "-o", f"{name}.indices={rows}", "-o", f"{name}.image_figures=false",
                    "-o", f"{name}.grid_rows={FAITHFULNESS_GRID_ROWS}"]
        for key, value in FAITHFULNESS_SETTINGS.get(name, {}).items():
            options += ["-o", f"{name}.{key}={value}"]
    return [*options, "-e", "faithfulness"]


def faithfulness_rows(report: dict) -> list[dict]:
    """The ranking table as recorded: per map (ranked) its AUCs with SE, ratios to the random map, paired
    differences and verdicts against the random and the Sobel map, the randomisation result and the sentence."""
    sentences = {item["method"]: item["sentence"] for item in report["sentences"]}
    check = report["randomization_check"]
    rows = []
    for entry in report["ranking"]:
        details = report["details"][entry["map"]]
        row = {key: entry[key] for key in ("rank", "map", "kind", "images", "score")}
        for curve in ("deletion", "insertion"):
            row[curve] = {"auc": details[f"{curve}_auc"], "se": details[f"{curve}_se"],
                          "ratio_to_random": details[f"{curve}_ratio"]}
            for other in ("random", "sobel"):
                row[curve][f"vs_{other}"] = {"difference": details[f"{curve}_vs_{other}"],
                                             "se": details[f"{curve}_vs_{other}_se"],
                                             "verdict": details[f"{curve}_vs_{other}_verdict"]}
        row["randomization"] = randomization_result(check, entry["map"]) if entry["kind"] == "method" else None
        row["sentence"] = sentences.get(entry["map"])
        rows.append(row)
    return rows


def randomization_result(check: dict, name: str) -> dict:
    if check["status"] != "done":
        return {"verdict": "not run", "reason": check.get("reason")}
    method = check["methods"][name]
    if method["error"]:
        return {"verdict": "could not re-run", "reason": method["error"]}
    verdict = "flagged" if method["survives"] else "passes"
    return {"verdict": verdict, "rho_all_layers": method["rho_all_layers"], "threshold": method["threshold"],
            "layers": method["layers"], "images": method["images"]}


def non_default(name: str, options: dict) -> dict:
    """The options (as the manifest records them) whose value differs from the explainer's default."""
    import dataclasses

    from xai_fer import registry

    defaults = json.loads(json.dumps(dataclasses.asdict(registry.lookup("explainers", name).Options())))
    return {key: value for key, value in options.items() if defaults.get(key) != value}


def faithfulness_record(run: dict, methods: list[str], skipped: dict, images: int) -> dict:
    s = summary(run, "faithfulness")
    manifest = json.loads((run["out"] / "manifest.json").read_text())
    explainers = manifest["explainers"]
    first = explainers[methods[0]]["options"]
    check = s["randomization_check"]
    settings = {name: {k: v for k, v in explainers[name]["options"].items() if k not in SHARED_OPTIONS}
                for name in [*methods, "faithfulness"]}
    return {
        "run": run["name"], "command": run["command"], "rows": [0, images - 1], "images": images,
        "methods": methods, "skipped": skipped, "seed": manifest["seed"],
        "shared_options": {key: first[key] for key in ("target", "score")},
        "settings": settings,
        "changed_settings": {name: changed for name in settings if (changed := non_default(name, settings[name]))},
        "ranked_by": s["ranked_by"], "best": s["best"], "steps": s["steps"],
        "randomization": {"status": check["status"], "reason": check.get("reason"), "layers": check.get("layers"),
                          "stages": check.get("stages")},
        "table": faithfulness_rows(s),
        "seconds": {name: entry["seconds"] for name, entry in explainers.items()},
        "wall_seconds": run["wall_seconds"], "cpus": os.cpu_count(), "load_average_before": run["load_before"],
    }


def faithfulness_section(label: str, name: str, model: Path, h5: Path, runs: Path, images: int, gallery: Path,
                         record: dict) -> list[str]:
    methods, skipped = applicable_methods(model)
    rows = ",".join(str(row) for row in range(images))
    load_before = round(os.getloadavg()[0], 2)
    run = explain(f"{name}-faithfulness", model, h5, runs, faithfulness_options(methods, rows), rows=rows)
    run["load_before"] = load_before
    record["faithfulness"] = faithfulness_record(run, methods, skipped, images)
    lines = [f"### {label}", ""] + [f"<!-- xai-fer:{marker} {name} -->\n" for marker in
                                     ("faithfulness-run", "faithfulness", "faithfulness-verdicts")]
    figures = {}
    for key, (heading, alt) in FAITHFULNESS_TITLES.items():
        if (run["out"] / "faithfulness" / FAITHFULNESS_FIGURES[key]).exists():
            figures[key] = copy_figure(run, f"faithfulness/{FAITHFULNESS_FIGURES[key]}", gallery)
            lines += [f"#### {label}: {heading}", "", image(figures[key], f"{label}: {alt}"), ""]
    record["faithfulness"]["figures"] = figures
    preamble = (f"ROWS=$(seq -s, 0 {images - 1})  # the first {images} {SPLIT} rows",)
    return lines + command_block(run, preamble)


# --- the whole split: every PrivateTest image, the report itself published ------------------------------


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def publish_report(run: dict, target: Path) -> dict:
    """Copy the run's report to ``target`` in a compact form: without WHOLE_SPLIT_LEFT_OUT, its figures in 256
    colours, its image browser as :func:`xai_fer.explain.browser.compact_copy` makes it (the faces' sheets as
    JPEG, the maps' at half resolution); returns what the copy holds."""
    from PIL import Image

    from xai_fer.explain.browser import BROWSER_FOLDER, compact_copy

    source = run["out"]
    left_out = [path for path in source.rglob("*") if path.name in WHOLE_SPLIT_LEFT_OUT]
    shutil.copytree(source, target, ignore=lambda folder, names: [
        name for name in names if name in WHOLE_SPLIT_LEFT_OUT or (Path(folder) == source and name == BROWSER_FOLDER)])
    for figure in target.glob("*/*.png"):
        with Image.open(figure) as picture:
            fewer = picture.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        fewer.save(figure, optimize=True)
    compact_copy(source / BROWSER_FOLDER, target / BROWSER_FOLDER)
    return {"files": sum(1 for path in target.rglob("*") if path.is_file()), "kib": round(folder_bytes(target) / 1024),
            "browser_kib": round(folder_bytes(target / BROWSER_FOLDER) / 1024),
            "report_kib": round(folder_bytes(source) / 1024),
            "left_out_mib": round(sum(path.stat().st_size for path in left_out) / 2**20, 1),
            "left_out": sorted({path.name for path in left_out})}


def whole_split_section(args, runs: Path, gallery: Path) -> tuple[list[str], dict]:
    """Run the CNN on every PrivateTest image (``--all-images``), publish its report under ``gallery`` and
    return the snippet's lines and the record."""
    model = "bundled:cnn" if args.cnn == REFERENCE / "cnn.keras" else shown(args.cnn)
    extra = [part for name in WHOLE_SPLIT_EXPLAINERS for part in ("-e", name)] + ["--all-images"]
    extra += [part for name in ("saliency", "grad-cam", "smoothgrad")
              for part in ("-o", f"{name}.grid_rows={WHOLE_SPLIT_GRID_ROWS}")]
    load_before = round(os.getloadavg()[0], 2)
    run = explain(WHOLE_SPLIT_RUN, model, args.h5, runs, extra)
    manifest = json.loads((run["out"] / "manifest.json").read_text())
    whole = manifest["whole_split"]
    published = publish_report(run, gallery / WHOLE_SPLIT_RUN)
    record = {"run": run["name"], "command": run["command"], "images": whole["images"], "whole_split": whole,
              "explainers": list(WHOLE_SPLIT_EXPLAINERS), "wall_seconds": run["wall_seconds"],
              "cpus": os.cpu_count(), "load_average_before": load_before, "published": published}
    accuracy = summary(run, "confusion")["accuracy"]
    lines = [f"Every one of the {whole['images']:,} {SPLIT} images explained by the CNN with "
             f"{', '.join(whole['methods'])}, then the dataset views over all of them (class and confusion-cell "
             f"mean maps, the most and least confident images of each class, where the methods disagree): "
             f"**[open the report](gallery/{WHOLE_SPLIT_RUN}/index.html)** (accuracy {pct(accuracy)}). Its section "
             '"browse the images" is the image browser of the picture above.', "",
             f"The run took {run['wall_seconds'] / 60:.0f} minutes on {os.cpu_count()} CPUs (1-minute load average "
             f"{load_before} when it started; its maps in {whole['chunks']} chunks of {whole['chunk_size']}). "
             f"Published here in a compact form: {published['files']} files, {published['kib'] / 1024:.1f} MB "
             f"(the report as written is {published['report_kib'] / 1024:,.0f} MB): the figures in 256 colours, the "
             "image browser's faces as JPEG and its maps at half resolution, and without "
             + " and ".join(f"`{name}`" for name in published["left_out"])
             + f" ({published['left_out_mib']:,.0f} MB: every map of the split, and the explainers' arrays), which "
             "the page does not read; the command writes them:"]
    return lines + command_block(run), record


def write_whole_split_only(args) -> None:
    """``--only whole-split``: rerun that step alone, replacing its folder, its snippet and its entry in
    gallery.json, and leaving the rest of the gallery as it is."""
    gallery = args.out
    if not (gallery / "gallery.json").exists():
        sys.exit(f"{shown(gallery)}/gallery.json not found: build the whole gallery first")
    staging = Path(tempfile.mkdtemp(prefix=".gallery.tmp-", dir=gallery))
    try:
        lines, record = whole_split_section(args, args.runs.resolve(), staging)
        (staging / WHOLE_SPLIT_SNIPPET).write_text(SNIPPET_HEADER + "\n".join(lines).rstrip() + "\n")
        shutil.rmtree(gallery / WHOLE_SPLIT_RUN, ignore_errors=True)
        (staging / WHOLE_SPLIT_RUN).rename(gallery / WHOLE_SPLIT_RUN)
        (staging / WHOLE_SPLIT_SNIPPET).replace(gallery / WHOLE_SPLIT_SNIPPET)
        index = json.loads((gallery / "gallery.json").read_text())
        index["whole_split"] = record
        (gallery / "gallery.json").write_text(json.dumps(index, indent=2) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {shown(gallery / WHOLE_SPLIT_RUN)}/ ({record['published']['kib'] / 1024:.1f} MB) and "
          f"{WHOLE_SPLIT_SNIPPET}")


def kept_whole_split(gallery: Path, staging: Path) -> dict:
    """``--keep-whole-split``: the published whole-split report, its snippet and its record, copied from the
    gallery being replaced into ``staging`` as they are (that step alone takes about 20 minutes here; it is rerun
    by ``--only whole-split``). Exits with one line when the gallery has none."""
    index = gallery / "gallery.json"
    record = json.loads(index.read_text()).get("whole_split") if index.exists() else None
    if record is None or not (gallery / WHOLE_SPLIT_RUN).is_dir() or not (gallery / WHOLE_SPLIT_SNIPPET).exists():
        sys.exit(f"--keep-whole-split: {shown(gallery)} has no whole-split report to keep; build without the option")
    shutil.copytree(gallery / WHOLE_SPLIT_RUN, staging / WHOLE_SPLIT_RUN)
    shutil.copyfile(gallery / WHOLE_SPLIT_SNIPPET, staging / WHOLE_SPLIT_SNIPPET)
    return record


def carry_over_made_elsewhere(gallery: Path, staging: Path) -> None:
    """Copy the folders of ``MADE_ELSEWHERE`` that the gallery being replaced has into ``staging``."""
    for folder in MADE_ELSEWHERE:
        if (gallery / folder).is_dir():
            shutil.copytree(gallery / folder, staging / folder)


SNIPPET_HEADER = "<!-- generated by scripts/build_gallery.py: do not edit, rerun the script -->\n\n"


def build(args) -> None:
    for path in (args.cnn, args.dnn, args.h5):
        if not path.exists():
            sys.exit(f"missing {path}: build the reference models first (scripts/build_reference.py), or pass "
                     "--cnn/--dnn/--h5")
    if args.faithfulness_images:
        check_methods()
    started = time.perf_counter()
    runs = args.runs.resolve()
    staging = Path(tempfile.mkdtemp(prefix=".gallery.tmp-", dir=args.out.resolve().parent))
    try:
        record: dict = {
            "generated_by": "scripts/build_gallery.py",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "data": {"path": shown(args.h5), "sha256": sha256(args.h5), "split": SPLIT},
            "models": {name: {"path": shown(path), "sha256": sha256(path)}
                       for name, path in (("cnn", args.cnn), ("dnn", args.dnn))},
        }
        lines = SNIPPET_HEADER.splitlines()
        lines += [f"Models: `{shown(args.cnn)}` (sha256 `{record['models']['cnn']['sha256'][:12]}`) and "
                  f"`{shown(args.dnn)}` (`{record['models']['dnn']['sha256'][:12]}`); data: the {SPLIT} split of "
                  f"`{args.h5.name}` (sha256 `{record['data']['sha256'][:12]}`). Generated "
                  f"{record['created'][:10]}; every run's full report is in `{shown(runs)}/<run>/index.html`.", ""]

        main = ["-e", "confusion", "-e", "saliency", "-o", "saliency.per_class=1"]
        for name, path in (("cnn", args.cnn), ("dnn", args.dnn)):
            label = name.upper()
            record[name] = {}
            run = explain(name, path, args.h5, runs, main)
            lines += [f"## {label}", ""]
            lines += confusion_section(label, run, staging, record[name])
            lines += saliency_section(label, run, staging, record[name])
            if name == "cnn":
                hero_row = next(i for i in record[name]["saliency"]["images"] if i["true"] == SEED_CLASS)["row"]
                hero = copy_figure(run, f"saliency/image_{hero_row}.png", staging)
                record["hero"] = {"path": hero, "caption": f"Saliency, original, masked and overlay for a "
                                                           f"{SEED_CLASS} face ({SPLIT} row {hero_row}), CNN"}
            conv = conv_layers(path)
            if not conv:
                lines += [f"The {label} has no conv layers, so it has no filters to visualise.", ""]
                continue
            seed_row = first_row_of_class(args.h5, SEED_CLASS)
            lines += [f"### {label}: filters by activation maximisation", "",
                      f"The first {args.filters} filters of the first conv layer (`{conv[0]}`) and of the last "
                      f"(`{conv[-1]}`), each optimised from grey noise and from a face (the first {SEED_CLASS} "
                      f"image of {SPLIT}, row {seed_row}, shown first). Panels are sorted by the mean activation "
                      "reached.", ""]
            for depth, layer in (("early", conv[0]), ("deep", conv[-1])):
                for start in ("noise", "image"):
                    options = ["-e", "activation-max", "-o", f"activation-max.layer={layer}",
                               "-o", f"activation-max.first={args.filters}", "-o", f"activation-max.seed_from={start}"]
                    if args.steps:
                        options += ["-o", f"activation-max.steps={args.steps}"]
                    if start == "image":
                        options += ["-o", f"activation-max.image_index={seed_row}"]
                    run = explain(f"{name}-filters-{depth}-{start}", path, args.h5, runs, options)
                    where = "grey noise" if start == "noise" else f"a {SEED_CLASS} face"
                    lines += filters_section(run, staging, record[name], f"{depth.capitalize()} layer "
                                             f"`{layer}`, from {where}")
        if args.faithfulness_images:
            lines += ["## Which map to trust", "",
                      f"Every attribution method that applies to the model explains the first "
                      f"{args.faithfulness_images} {SPLIT} images, then `faithfulness` scores their maps next to a "
                      "seeded random map and a Sobel edge map of the same images (the tutorial's \"Which map to "
                      "trust\" explains the protocol). The tables below are rendered from `gallery.json`.", ""]
            for name, path in (("cnn", args.cnn), ("dnn", args.dnn)):
                lines += faithfulness_section(name.upper(), name, path, args.h5, runs, args.faithfulness_images,
                                              staging, record[name])
        if args.keep_whole_split:
            record["whole_split"] = kept_whole_split(args.out, staging)
        else:
            whole_lines, record["whole_split"] = whole_split_section(args, runs, staging)
            (staging / WHOLE_SPLIT_SNIPPET).write_text(SNIPPET_HEADER + "\n".join(whole_lines).rstrip() + "\n")
        curves = [(name, REFERENCE / f"{name}_training_curves.png") for name in ("cnn", "dnn")]
        if args.cnn == REFERENCE / "cnn.keras" and all(path.exists() for _, path in curves):
            lines += ["## Training curves", "", "Loss and accuracy per epoch of every training run behind the "
                      "reference models (`xai-fer train` draws them; `scripts/build_reference.py` redraws a chain "
                      "whose first run's history was not recorded yet). Validation values are before batch-norm "
                      "recalibration.", ""]
            for name, path in curves:
                target = staging / "training" / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                lines += [image(f"training/{path.name}", f"{name.upper()} training curves"), ""]
        (staging / "gallery.md").write_text("\n".join(lines).rstrip() + "\n")
        record["build_seconds"] = round(time.perf_counter() - started, 1)
        (staging / "gallery.json").write_text(json.dumps(record, indent=2) + "\n")
        carry_over_made_elsewhere(args.out, staging)
        if args.out.exists():
            shutil.rmtree(args.out)
        staging.rename(args.out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"wrote {shown(args.out)}/ ({sum(1 for _ in args.out.rglob('*.png'))} figures) and gallery.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cnn", type=Path, default=REFERENCE / "cnn.keras", help="the CNN (default: reference)")
    parser.add_argument("--dnn", type=Path, default=REFERENCE / "dnn.keras", help="the DNN (default: reference)")
    parser.add_argument("--h5", type=Path, default=DEFAULT_H5, help="FER2013 as HDF5 (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery", help="gallery folder (replaced)")
    parser.add_argument("--runs", type=Path, default=ROOT / "build" / "gallery-runs", help="explain outputs")
    parser.add_argument("--filters", type=int, default=16, help="filters per layer to visualise")
    parser.add_argument("--steps", type=int, default=0, help="activation-max steps (0: its default)")
    parser.add_argument("--faithfulness-images", type=int, default=128,
                        help="first N PrivateTest images every attribution method explains for faithfulness (0: "
                             "no faithfulness section)")
    parser.add_argument("--only", choices=["whole-split"],
                        help="rerun one step alone (whole-split: the CNN on every PrivateTest image), keeping the rest")
    parser.add_argument("--keep-whole-split", action="store_true",
                        help="rebuild everything else, keeping the gallery's whole-split report as it is")
    args = parser.parse_args()
    if args.only and args.keep_whole_split:
        parser.error("--only whole-split reruns that step; --keep-whole-split keeps it: give one of them")
    if args.faithfulness_images < 0:
        parser.error("--faithfulness-images must be >= 0 (0: no faithfulness section)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args.cnn, args.dnn, args.h5, args.out = (p.resolve() for p in (args.cnn, args.dnn, args.h5, args.out))
    write_whole_split_only(args) if args.only == "whole-split" else build(args)


if __name__ == "__main__":
    main()
