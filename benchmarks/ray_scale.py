"""Whole-split throughput on Ray against the local engine: the same ``run_explain(all_images=True)`` run with
``engine="local"`` (TensorFlow in this process, all its cores) and with ``engine="ray"`` at 1 and 2 workers of
one CPU each, on the first ``--limit`` PrivateTest images of FER2013.

Ray runs on this machine (``ray.init(num_cpus=CPUs)``, started once before the Ray runs, so worker start-up,
model loading and the per-worker compilation are inside each Ray run's time but Ray's own start is not).
Methods: saliency, Grad-CAM and SmoothGrad (``--samples`` noisy copies), seed 0, chunks of ``--chunk-size``.
Each run's maps are compared with the local engine's (they must be equal, bit for bit).

Prints one row per run: seconds of the whole-split stage (computing every chunk, saving them, writing
``maps.h5``: ``manifest["whole_split"]["seconds"]``), images per second of that stage, the ratio to the local
engine, and whether the maps equal the local engine's.

    .venv/bin/python benchmarks/ray_scale.py [--limit 2000] [--chunk-size 256] [--samples 16]

Model: the bundled reference CNN (xai_fer/reference). Data: ``../shared/data/fer2013.h5``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fer2013.h5"
METHODS = ["saliency", "grad-cam", "smoothgrad"]
RUNS = (("local", 0, 1), ("ray", 1, 1), ("ray", 2, 1))  # engine, workers, CPUs per worker


def private_test_slice(data: Path, limit: int, workdir: Path) -> Path:
    """The first ``limit`` PrivateTest images with their labels, as an .npz the run reads."""
    import numpy as np

    from xai_fer.data import load_dataset

    dataset = load_dataset(data, split="PrivateTest")
    path = workdir / "privatetest.npz"
    np.savez(path, images=dataset.images[:limit], labels=np.asarray(dataset.labels)[:limit],
             class_names=np.array(dataset.class_names, dtype=str))
    return path


def maps_of(out: Path) -> dict:
    import h5py

    with h5py.File(out / "maps.h5", "r") as handle:
        return {name: handle[f"maps/{name}"][:] for name in METHODS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--samples", type=int, default=16, help="SmoothGrad's noisy copies per image")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to Ray on this machine")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data} not found (the real FER2013 lives in ../shared/data)")

    import numpy as np
    import ray

    from xai_fer import reference
    from xai_fer.explain.pipeline import run_explain

    options = {name: {"grid_rows": "4"} for name in METHODS}
    options["smoothgrad"]["samples"] = str(args.samples)
    rows, local_maps = [], None
    with tempfile.TemporaryDirectory() as tmp:
        data = private_test_slice(args.data, args.limit, Path(tmp))
        for engine, workers, cpus in RUNS:
            if engine == "ray" and not ray.is_initialized():
                ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="warning")
            out = Path(tmp) / f"{engine}-{workers}-{cpus}"
            run = run_explain(reference.model_path("cnn"), data, out, METHODS, options, all_images=True,
                              chunk_size=args.chunk_size, engine=engine, workers=workers, worker_cpus=cpus)
            maps = maps_of(out)
            local_maps = local_maps or maps
            equal = all(np.array_equal(maps[name], local_maps[name]) for name in METHODS)
            whole = run.manifest["whole_split"]
            label = "local engine (this process)" if engine == "local" else \
                f"ray, {workers} worker{'s' if workers > 1 else ''} x {cpus} CPU{'s' if cpus > 1 else ''}"
            rows.append((label, whole["seconds"], whole["chunks"], equal))
            print(f"{label}: {whole['seconds']:.1f} s", flush=True)
        ray.shutdown()
    local_seconds = rows[0][1]
    print(f"\n{args.limit:,} PrivateTest images, saliency + grad-cam + smoothgrad ({args.samples} samples), "
          f"chunks of {args.chunk_size} ({rows[0][2]} chunks), Ray on {args.cpus} CPUs of this machine")
    print("| run | seconds | images/s | vs local | maps equal local |\n|---|---:|---:|---:|---|")
    for label, seconds, _, equal in rows:
        print(f"| {label} | {seconds:.1f} | {args.limit / seconds:.1f} | {local_seconds / seconds:.2f}x | "
              f"{'yes' if equal else 'NO'} |")


if __name__ == "__main__":
    main()
