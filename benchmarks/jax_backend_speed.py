"""Throughput (images per second) of every attribution method and of activation-max under Keras' TensorFlow and
JAX backends, each next to its own backend's compiled floor. One subprocess per backend (Keras' backend is fixed
per process); the JAX one runs with TensorFlow unimportable, as on a JAX-only machine.

Model: the shipped CNN (``xai_fer.reference``). Data: the first ``--images`` PrivateTest images of
``../shared/data/fer2013.h5`` when present, else of the bundled sample (``attribution_speed.load_data``).
Methods run as ``explain`` runs them (``Attribution.compute``: logit score, the predicted class, default options,
batches of 128), after a warm-up call that compiles everything for the same batch shapes, so the rate is the
steady one (compiling is reported apart: the set-up time includes loading and the first predictions).
Occlusion (122 forward passes per image) and RISE (500) run on ``--slow-images`` images only.

The floor is the least any implementation could do on that backend: the same number of passes per image
(gradient methods: forward+backward passes; occlusion and RISE: forward passes) through the backend's compiled
function on the bare pre-softmax network, batches of 128, nothing else, the fastest of 5 rounds. ``floor
images/s = floor passes/s / passes per image``; ``x floor`` = method time / floor time. activation-max: 16
filters of its default layer, 100 steps, data maxima over ``--images`` images; its rate is filters/s, no floor.

    nice -n 10 .venv/bin/python benchmarks/jax_backend_speed.py [--images 512] [--slow-images 8]
        [--backends tensorflow,jax] [--methods saliency,grad-cam] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METHODS = ("saliency", "grad-cam", "grad-cam-plus-plus", "smoothgrad", "integrated-gradients", "gradient-x-input",
           "occlusion", "rise")
SLOW = ("occlusion", "rise")
BATCH = 128
FLOOR_ROUNDS = 5
WARM_UP = {"smoothgrad": {"samples": 1}, "integrated-gradients": {"steps": 1}, "rise": {"masks": BATCH}}


def passes_per_image(name: str, options, height: int, width: int) -> int:
    """Forward+backward passes (gradient methods) or forward passes (occlusion, RISE) one image costs."""
    if name == "smoothgrad":
        return options.samples
    if name == "integrated-gradients":
        return options.steps + 1
    if name == "occlusion":
        from xai_fer_plugins.occlusion import patch_starts

        return len(patch_starts(height, options.patch, options.stride)) * len(
            patch_starts(width, options.patch, options.stride)) + 1
    if name == "rise":
        return options.masks
    return 1


def floor_rates(context, images) -> dict:
    """Passes per second of the backend's compiled gradient and forward functions on the bare network."""
    import numpy as np

    from xai_fer.explain import backends
    from xai_fer.explain.gradients import compiled_for
    from xai_fer.models.introspect import logits_model

    bare = logits_model(context.model, context.info)
    model_images = np.asarray(context.adapter(images)).astype(np.float32)
    classes = np.zeros(len(model_images), np.int32)
    backend = backends.current()
    gradient = compiled_for(bare, ("gradient", False), lambda ref: backend.input_gradient_function(ref, False))
    forward = compiled_for(bare, "forward", backend.forward_function)
    rates = {}
    for kind, call in (("gradient", lambda b: gradient(b, classes[:len(b)])), ("forward", forward)):
        call(model_images[:BATCH])  # compile
        rounds = []
        for _ in range(FLOOR_ROUNDS):
            start = time.perf_counter()
            for s in range(0, len(model_images), BATCH):
                call(model_images[s:s + BATCH])
            rounds.append(time.perf_counter() - start)
        rates[kind] = len(model_images) / min(rounds)  # the least it takes: other jobs only slow a round down
    return rates


def time_method(context, name: str, rows, passes_rate: float) -> dict:
    from xai_fer import registry

    method = registry.explainers()[name]
    options = method.Options()
    targets = context.predictions[rows]
    # Compile first, for the batch shapes the timed call uses (a full batch; occlusion's 122 and RISE's 512
    # copies per call fill full batches too), on cheap options: the compiled functions do not depend on them.
    warm = min(len(rows), 1 if name in SLOW else BATCH)
    method.compute(context, rows[:warm], targets[:warm], method.Options(**WARM_UP.get(name, {})))
    start = time.perf_counter()
    method.compute(context, rows, targets, options)
    seconds = time.perf_counter() - start
    passes = passes_per_image(name, options, *context.dataset.images.shape[1:3])
    floor_seconds = len(rows) * passes / passes_rate
    return {"method": name, "images": len(rows), "passes_per_image": passes, "seconds": seconds,
            "images_per_s": len(rows) / seconds, "floor_images_per_s": len(rows) / floor_seconds,
            "x_floor": seconds / floor_seconds}


def time_activation_max(context, images: int) -> dict:
    from xai_fer_plugins.activation_max import ActivationMax, ActivationMaxOptions

    explainer = ActivationMax()
    explainer.explain(context, ActivationMaxOptions(first=16, steps=2, data_images=8)).close()  # compile
    start = time.perf_counter()
    explainer.explain(context, ActivationMaxOptions(first=16, data_images=images)).close()
    seconds = time.perf_counter() - start
    return {"method": "activation-max", "filters": 16, "steps": 100, "data_images": images, "seconds": seconds,
            "filters_per_s": 16 / seconds}


def worker(args) -> None:
    """Runs inside the subprocess of one backend; prints one JSON object."""
    sys.path.insert(0, str(HERE))
    import keras
    import numpy as np
    from attribution_speed import load_data  # same folder: the images the other speed benchmarks measure

    from xai_fer import reference
    from xai_fer.explain.pipeline import build_context
    from xai_fer.models.loading import load_model

    started = time.perf_counter()
    model = load_model(reference.model_path("cnn"))
    context = build_context(model, load_data(args.images), preprocess="auto", batch_size=BATCH)
    context.probabilities  # noqa: B018 - predictions once, outside every timing
    setup = time.perf_counter() - started
    floors = floor_rates(context, context.images())
    rows = np.arange(len(context.dataset))
    results = []
    for name in args.methods.split(","):
        chosen = rows[:args.slow_images] if name in SLOW else rows
        rate = floors["forward" if name in SLOW else "gradient"]
        results.append(time_method(context, name, chosen, rate))
    if args.activation_max:
        results.append(time_activation_max(context, len(rows)))
    print(json.dumps({"backend": keras.backend.backend(), "tensorflow_importable": "tensorflow" in sys.modules,
                      "source": context.dataset.source, "setup_seconds": setup, "floor_passes_per_s": floors,
                      "results": results}))


def run_backend(backend: str, args) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT / "tests")}
    prefix = ["-c", "import without_tensorflow, runpy, sys; sys.argv = sys.argv[1:]; "
                    "runpy.run_path(sys.argv[0], run_name='__main__')"] if backend == "jax" else []
    command = [sys.executable, *prefix, __file__, "--worker", "--images", str(args.images), "--slow-images",
               str(args.slow_images), "--methods", args.methods,
               "--activation-max" if args.activation_max else "--no-activation-max"]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{backend} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(runs: list[dict]) -> str:
    lines = ["| method | backend | images | passes/image | images/s | floor images/s | x floor |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name in [r["method"] for r in runs[0]["results"]]:
        for run in runs:
            row = next(r for r in run["results"] if r["method"] == name)
            if name == "activation-max":
                lines.append(f"| activation-max (16 filters, 100 steps) | {run['backend']} | - | - | "
                             f"{row['filters_per_s']:.2f} filters/s | - | - |")
                continue
            lines.append(f"| {name} | {run['backend']} | {row['images']} | {row['passes_per_image']} | "
                         f"{row['images_per_s']:.1f} | {row['floor_images_per_s']:.1f} | {row['x_floor']:.2f} |")
    for run in runs:
        floors = run["floor_passes_per_s"]
        lines.append(f"\n{run['backend']}: floor {floors['gradient']:.0f} gradient passes/s, {floors['forward']:.0f} "
                     f"forward passes/s; model load and predictions {run['setup_seconds']:.1f} s; "
                     f"TensorFlow imported: {run['tensorflow_importable']}; data: {run['source']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--slow-images", type=int, default=8)
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--activation-max", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    runs = [run_backend(backend, args) for backend in args.backends.split(",")]
    print(table(runs))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
