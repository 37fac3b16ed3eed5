"""Regenerate the documentation gallery from the shipped reference models and real FER2013 PrivateTest images.

    python scripts/build_gallery.py            # defaults: xai_fer/reference/{cnn,dnn}.keras, ../shared/data/fer2013.h5

Runs the ``xai-fer explain`` CLI (each command is printed and written under its figure): for the CNN and the
DNN, ``confusion`` on all PrivateTest images and ``saliency`` on one image per class; for the CNN,
``activation-max`` on its first (early) and last (deep) conv layer, from noise and from a face. The runs go to
``build/gallery-runs/`` (kept, with their ``index.html``); the figures shown are copied to ``docs/gallery/``,
which is replaced as a whole, together with ``gallery.md`` (included by ``docs/gallery.md``) and
``gallery.json`` (what was run on which files, with their sha256, and the numbers quoted). Nothing in the
gallery is made by hand.
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
from datetime import datetime, timezone
from pathlib import Path

from xai_fer.explain.manifest import file_sha256 as sha256
from xai_fer.reference import percent as pct

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "xai_fer" / "reference"
DEFAULT_H5 = ROOT.parent / "shared" / "data" / "fer2013.h5"
SPLIT = "PrivateTest"
SEED_CLASS = "Happy"  # activation-max "from an image" starts from the first PrivateTest face of this class


def shown(path: Path) -> str:
    """A path as the commands show it (and run it): relative to the repository when possible."""
    return os.path.relpath(path, ROOT)


def cli() -> list[str]:
    script = Path(sys.executable).parent / "xai-fer"
    return [str(script)] if script.exists() else [sys.executable, "-m", "xai_fer"]


def run_cli(args: list[str]) -> None:
    command = "xai-fer " + " ".join(shlex.quote(a) for a in args)
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


def explain(name: str, model: Path, h5: Path, runs: Path, extra: list[str]) -> dict:
    out = runs / name
    args = ["explain", shown(model), "--data", shown(h5), "--split", SPLIT, *extra, "--out", shown(out),
            "--overwrite"]
    run_cli(args)
    return {"name": name, "out": out, "command": "xai-fer " + " ".join(shlex.quote(a) for a in args)}


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


def command_block(run: dict) -> list[str]:
    return ["", "```bash", run["command"], "```", ""]


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


def build(args) -> None:
    for path in (args.cnn, args.dnn, args.h5):
        if not path.exists():
            sys.exit(f"missing {path}: build the reference models first (scripts/build_reference.py), or pass "
                     "--cnn/--dnn/--h5")
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
        lines = ["<!-- generated by scripts/build_gallery.py: do not edit, rerun the script -->", ""]
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
        (staging / "gallery.json").write_text(json.dumps(record, indent=2) + "\n")
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
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args.cnn, args.dnn, args.h5, args.out = (p.resolve() for p in (args.cnn, args.dnn, args.h5, args.out))
    build(args)


if __name__ == "__main__":
    main()
