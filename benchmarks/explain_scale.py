"""Explaining a whole split: saliency, Grad-CAM and SmoothGrad (16 samples) on every image of FER2013 (35,887 by
default; ``--limit N`` takes the first N) with ``--all-images``, through ``run_explain`` exactly as ``xai-fer
explain --all-images`` runs it, next to the same compiled calls run bare.

Whole-split run: the maps of every image streamed in chunks into the report's ``maps.h5`` (resumable work folder,
HDF5 assembly, a grid figure per method). Bare: the engine's compiled calls on the same images, batch by batch,
with nothing else (no map post-processing, no files): one input gradient per image (saliency), one conv-layer
gradient (Grad-CAM), 16 input gradients of noisy copies (SmoothGrad).

Prints, side by side: images per second of the whole-split stage (chunks, their files, ``maps.h5``), of the whole
run (loading, the scaling choice, predictions, figures, report) and of the bare calls, their ratio (target: the
stage at >= 0.9x the bare calls), and the process's peak resident memory (``getrusage`` ``ru_maxrss``, TensorFlow
included) after the whole-split run, before the bare calls (target < 2 GB).

    .venv/bin/python benchmarks/explain_scale.py [--limit 2000] [--chunk-size 1024] [--views]

Model: the bundled reference CNN when installed, else the study CNN of ``plugins/cnn.py`` built untrained.
Data: ``../shared/data/fer2013.h5`` (all three splits: 35,887 images).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fer2013.h5"
METHODS = ["saliency", "grad-cam", "smoothgrad"]
VIEWS = ["class-maps", "confusion-maps", "confidence-extremes", "method-disagreement"]
SAMPLES = 16


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


def data_slice(data: Path, limit: int | None, workdir: Path) -> tuple[Path, int]:
    """The data file itself, or its first ``limit`` images saved as an .npz (read the same way by the run)."""
    import h5py
    import numpy as np

    with h5py.File(data, "r") as handle:  # read the slice alone: the peak memory is the run's, not the file's
        total = len(handle["images"])
        if not limit or limit >= total:
            return data, total
        images, labels = handle["images"][:limit], handle["labels"][:limit]
        names = [str(n) for n in handle.attrs["class_names"]]
    path = workdir / "slice.npz"
    np.savez(path, images=images, labels=labels, class_names=np.array(names))
    return path, limit


def bare_calls(model_file: Path, data: Path, scaling: str, batch_size: int) -> float:
    """Seconds for the engine's compiled calls alone on every image, batch by batch."""
    import numpy as np

    from xai_fer.data import load_dataset
    from xai_fer.explain.cam import default_layer
    from xai_fer.explain.pipeline import build_context
    from xai_fer.models.loading import load_model

    context = build_context(load_model(model_file), load_dataset(data), scaling, batch_size=batch_size)
    engine = context.attribution_engine("logit")
    layer = default_layer(context.model, context.info)
    classes = context.predictions
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for start in range(0, len(context.dataset), batch_size):
        images = context.images(slice(start, start + batch_size))
        targets = classes[start:start + batch_size]
        engine.gradients(images, targets)
        engine.layer_gradients(layer, images, targets)
        for _ in range(SAMPLES):
            engine.gradients(images + rng.normal(0, 0.15 * 255, images.shape).astype(np.float32), targets)
    return time.perf_counter() - started


def interleaved(model_file: Path, data: Path, scaling: str, images: int, chunk: int) -> tuple[float, float]:
    """Seconds of the local engine's chunks and of the bare calls on the same chunks, run alternately (which goes
    first alternates too), so that a change in the machine's load falls on both alike."""
    import numpy as np

    from xai_fer.data import load_dataset
    from xai_fer.explain import wholesplit
    from xai_fer.explain.cam import default_layer
    from xai_fer.explain.pipeline import build_context
    from xai_fer.explain.plan import plan_explainers
    from xai_fer.models.loading import load_model

    dataset = load_dataset(data)
    context = build_context(load_model(model_file), dataset.subset(slice(0, images)), scaling)
    planned = plan_explainers(METHODS, {"smoothgrad": {"samples": str(SAMPLES)}})
    job = wholesplit.make_job(context, planned, wholesplit.WholeSplit(Path("unused"), chunk_size=chunk), {})
    engine, layer = context.attribution_engine("logit"), default_layer(context.model, context.info)
    rng = np.random.default_rng(0)

    def bare(start, stop):
        batch, targets = context.images(slice(start, stop)), context.predictions[start:stop]
        engine.gradients(batch, targets)
        engine.layer_gradients(layer, batch, targets)
        for _ in range(SAMPLES):
            engine.gradients(batch + rng.normal(0, 0.15 * 255, batch.shape).astype(np.float32), targets)

    ours, theirs = 0.0, 0.0
    bare(0, min(chunk, images))  # both traced before timing
    wholesplit.chunk_maps(context, job, 0, min(chunk, images))
    for k, (_, start, stop) in enumerate(job.chunk_ranges()):
        for which in ((0, 1) if k % 2 == 0 else (1, 0)):
            began = time.perf_counter()
            bare(start, stop) if which else wholesplit.chunk_maps(context, job, start, stop)
            if which:
                theirs += time.perf_counter() - began
            else:
                ours += time.perf_counter() - began
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=0, help="only the first N images (0 = all)")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--views", action="store_true", help="also run the dataset views on the maps")
    parser.add_argument("--interleaved", type=int, default=0, metavar="N",
                        help="also time the engine's chunks and the bare calls alternately on the first N images")
    parser.add_argument("--out", type=Path, help="keep the report here (default: a temporary folder)")
    parser.add_argument("--interleaved-only", action="store_true", help="only the interleaved timing")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data} not found (the real FER2013 lives in ../shared/data)")
    if args.interleaved_only:
        from xai_fer import reference

        ours, theirs = interleaved(reference.MODELS["cnn"], args.data, "auto", args.interleaved or 512, 128)
        print(f"interleaved on {args.interleaved or 512:,} images, chunks of 128, alternating: engine chunks "
              f"{ours:.1f} s, bare calls {theirs:.1f} s: {theirs / ours:.2f}x")
        return

    import keras  # noqa: F401  (TensorFlow's start-up memory belongs to the baseline, not to the run)
    import tensorflow as tf  # noqa: F401

    from xai_fer.explain.pipeline import run_explain

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model, model_note = model_path(workdir)
        data, n = data_slice(args.data, args.limit, workdir)
        out = args.out or workdir / "report"
        options = {m: {"grid_rows": "8"} for m in METHODS}
        options["smoothgrad"]["samples"] = str(SAMPLES)
        baseline = peak_rss_mb()
        started = time.perf_counter()
        run = run_explain(model, data, out, METHODS + (VIEWS if args.views else []), options, overwrite=True,
                          all_images=True, chunk_size=args.chunk_size)
        elapsed = time.perf_counter() - started
        peak = peak_rss_mb()
        size = (out / "maps.h5").stat().st_size / 2**20
        whole = run.manifest["whole_split"]
        stage = whole["seconds"]
        per_method = {m: run.manifest["explainers"][m]["seconds"] for m in METHODS}
        print(f"model: {model_note}; data: {args.data.name}, {n:,} images; methods: saliency, grad-cam, smoothgrad "
              f"({SAMPLES} samples); chunks of {whole['chunk_size']}: {whole['chunks']}")
        print(f"maps.h5: {size:,.0f} MiB; seconds per method (its chunks and its section): {json.dumps(per_method)}")
        print(f"peak RSS: {peak:,.0f} MiB after the whole-split run (after importing TensorFlow, before it: "
              f"{baseline:,.0f} MiB; target < 2048 MiB: {'met' if peak < 2048 else 'MISSED'})", flush=True)
        scaling = run.manifest["preprocessing"]["scaling"]
        bare = bare_calls(model, data, scaling, 128)

    print(f"{'':36}{'seconds':>10}{'images/s':>10}{'vs bare':>9}")
    for label, seconds in (("bare compiled calls", bare), ("whole-split stage (chunks, maps.h5)", stage),
                           ("whole run (load, predict, report)", elapsed)):
        print(f"{label:36}{seconds:10.1f}{n / seconds:10.1f}{bare / seconds:8.2f}x")
    if args.interleaved:
        ours, theirs = interleaved(model, args.data if not args.limit else DATA, scaling, args.interleaved, 128)
        print(f"interleaved on {args.interleaved:,} images, chunks of 128, alternating: engine chunks {ours:.1f} s, "
              f"bare calls {theirs:.1f} s: {theirs / ours:.2f}x", flush=True)
    ratio = bare / stage
    print(f"throughput of the whole-split stage: {ratio:.2f}x the bare calls (target >= 0.9x: "
          f"{'met' if ratio >= 0.9 else 'MISSED'})")


if __name__ == "__main__":
    main()
