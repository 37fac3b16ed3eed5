"""Explaining a whole split: ``confusion`` plus ``saliency`` on every misclassified image of FER2013's
PrivateTest (3,589 images), through ``run_explain`` exactly as ``xai-fer explain`` runs it.

Model: the bundled reference CNN (``xai_fer/reference/cnn.keras``) when installed, else the study CNN of
``plugins/cnn.py`` built untrained and saved (an untrained CNN gets most images wrong, so saliency then explains
almost the whole split: the harder case). Data: ``../shared/data/fer2013.h5``. Everything streams in batches:
predictions and saliency gradients are computed batch by batch (float32 copies of one batch at a time, the
gradients of one batch at a time), and per-image figures (``--image-figures``) are built one by one while
being written.

Prints the process's peak resident memory (``getrusage`` ``ru_maxrss``, which includes TensorFlow's own
allocations) before and after the run, Python's traced peak (``--tracemalloc``; slows the run), and images
per second over the whole run and per explainer.

    .venv/bin/python benchmarks/explain_scale.py [--split PrivateTest] [--image-figures] [--count N]

Target: peak RSS < 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fer2013.h5"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def model_path(workdir: Path) -> tuple[Path, str]:
    from xai_fer import reference

    bundled = reference.MODELS["cnn"]
    if bundled.exists():
        return bundled, "bundled reference CNN"
    import keras
    from xai_fer_plugins.cnn import Cnn, CnnOptions

    keras.utils.set_random_seed(0)
    path = workdir / "cnn_untrained.keras"
    Cnn().build((48, 48, 1), 7, CnnOptions()).save(path)
    return path, "study CNN (plugins/cnn.py), untrained"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--split", default="PrivateTest")
    parser.add_argument("--count", type=int, default=1_000_000, help="at most this many misclassified images")
    parser.add_argument("--image-figures", action="store_true", help="also write one figure per explained image")
    parser.add_argument("--tracemalloc", action="store_true", help="trace Python allocations (slower)")
    parser.add_argument("--out", type=Path, help="keep the report here (default: a temporary folder)")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data} not found (the real FER2013 lives in ../shared/data)")

    import keras  # noqa: F401  (TensorFlow's start-up memory belongs to the baseline, not to the run)
    import tensorflow as tf  # noqa: F401

    from xai_fer.explain.pipeline import run_explain

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model, model_note = model_path(workdir)
        out = args.out or workdir / "report"
        options = {"saliency": {"select": "misclassified", "count": str(args.count),
                                "image_figures": str(args.image_figures).lower()}}
        baseline = peak_rss_mb()
        if args.tracemalloc:
            tracemalloc.start()
        started = time.perf_counter()
        run = run_explain(model, args.data, out, ["confusion", "saliency"], options, split=args.split,
                          overwrite=True)
        elapsed = time.perf_counter() - started
        traced = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
        peak = peak_rss_mb()
        manifest = run.manifest
        confusion = json.loads((out / "confusion" / "summary.json").read_text())
        saliency = json.loads((out / "saliency" / "summary.json").read_text())
        files = sum(1 for _ in out.rglob("*") if _.is_file())
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20

    n = confusion["num_images"]
    explained = saliency["num_images"]
    seconds = {name: block["seconds"] for name, block in manifest["explainers"].items()}
    print(f"model: {model_note}; data: {args.data.name} {args.split} ({n:,} images)")
    print(f"confusion: accuracy {confusion['accuracy']:.2%} on {n:,} images in {seconds['confusion']:.1f} s "
          f"({n / seconds['confusion']:,.0f} images/s, includes the shared batched predictions)")
    print(f"saliency: {explained:,} misclassified images in {seconds['saliency']:.1f} s "
          f"({explained / seconds['saliency']:,.1f} images/s; per-image figures: {args.image_figures})")
    print(f"whole run (load, explain, write {files} files, {size:.1f} MiB): {elapsed:.1f} s, "
          f"{n / elapsed:,.1f} split images/s")
    print(f"peak RSS: {peak:,.0f} MiB (after importing TensorFlow, before the run: {baseline:,.0f} MiB; "
          f"target < 2048 MiB: {'met' if peak < 2048 else 'MISSED'})")
    if traced is not None:
        print(f"tracemalloc peak (Python allocations, numpy included): {traced:,.0f} MiB")


if __name__ == "__main__":
    main()
