"""Integrated Gradients' completeness error and time per image on the shipped CNN, schedule against schedule.

Model: the shipped CNN (``xai_fer.reference.model_path("cnn")``), logit score, target the predicted class, black
baseline (the defaults but ``--steps``). Data: the first ``--images`` PrivateTest images of
``../shared/data/fer2013.h5`` when present, else of the bundled sample. Per image, the completeness error is
|sum of attributions - (f(image) - f(baseline))| / |f(image) - f(baseline)|, as the method reports it.

Schedules: ``uniform`` and ``adaptive`` (the default) of the plugin as it is, and with ``--compare-with FILE``
another version of the plugin module, for a before/after in one run, e.g.::

    git show a693ea6:plugins/integrated_gradients.py > /tmp/ig_before.py

Each schedule computes steps + 1 gradients per image in batches of the run's batch size, so they cost the same
passes; the time per image is the median of ``--repeats`` interleaved rounds (wall and process CPU time).

With ``--reference-images K``, the first K images also get a dense uniform reference (``--reference-steps``
intervals, 4096 by default) and each schedule's maps are compared with it pixel by pixel (relative L2 error
||maps - reference|| / ||reference||): a schedule that only made the sum add up, without making the
attributions themselves more accurate, would show there.

    nice -n 19 .venv/bin/python benchmarks/ig_completeness.py [--images 128] [--steps 128] [--repeats 1]
        [--compare-with /tmp/ig_before.py] [--reference-images 8]

Target (issue 16): completeness error <= 1% at 128 steps.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGET = 0.01


def plugin_from_file(path: str):
    """The ``IntegratedGradients`` class of another version of the plugin module."""
    spec = importlib.util.spec_from_file_location("integrated_gradients_compared", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module.IntegratedGradients


def describe(errors) -> str:
    import numpy as np

    finite = errors[np.isfinite(errors)]
    percent = lambda q: 100 * float(np.percentile(finite, q))  # noqa: E731
    return (f"median {percent(50):6.3f}%  p90 {percent(90):6.3f}%  max {100 * float(finite.max()):7.3f}%  "
            f"over 1%: {int((finite > TARGET).sum()):3d}/{len(errors)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--compare-with", default="", help="another version of plugins/integrated_gradients.py")
    parser.add_argument("--reference-images", type=int, default=0)
    parser.add_argument("--reference-steps", type=int, default=4096)
    args = parser.parse_args()
    if min(args.images, args.steps, args.repeats) < 1:
        parser.error("--images, --steps and --repeats must be at least 1")

    import keras
    import numpy as np
    from attribution_speed import load_data  # the images the speed benchmark measures (same folder)
    from xai_fer_plugins.integrated_gradients import IntegratedGradients

    from xai_fer import reference
    from xai_fer.explain.pipeline import build_context

    dataset = load_data(args.images)
    context = build_context(keras.models.load_model(reference.model_path("cnn")), dataset)
    rows = np.arange(len(dataset))
    targets = context.predictions[rows]
    options = IntegratedGradients.Options(steps=args.steps)
    runs = {"uniform": (IntegratedGradients(), options.__class__(steps=args.steps, schedule="uniform")),
            "adaptive": (IntegratedGradients(), options)}
    if args.compare_with:
        other = plugin_from_file(args.compare_with)
        runs[f"adaptive ({Path(args.compare_with).name})"] = (other(), other.Options(steps=args.steps))
    print(f"model: shipped CNN; data: {dataset.source}; {args.steps} steps ({args.steps + 1} gradients per image), "
          f"black baseline, logit score, batch size {context.batch_size}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start", flush=True)
    results = {name: {"times": []} for name in runs}
    for repeat in range(args.repeats):
        for name, (method, chosen) in list(runs.items())[::1 if repeat % 2 == 0 else -1]:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            maps = method.compute(context, rows, targets, chosen)
            results[name]["times"].append((time.perf_counter() - start_wall, time.process_time() - start_cpu))
            results[name]["maps"] = maps
            print(f"  round {repeat + 1}: {name} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\n{'schedule':<40} completeness error over {len(rows)} images{'':<22} wall/image  cpu/image")
    for name, entry in results.items():
        wall = statistics.median(t[0] for t in entry["times"]) / len(rows)
        cpu = statistics.median(t[1] for t in entry["times"]) / len(rows)
        print(f"{name:<40} {describe(entry['maps'].per_image['completeness_error'])}  {wall:8.3f}s  {cpu:8.3f}s")
    if args.reference_images:
        compare_with_reference(context, targets, results, args)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def compare_with_reference(context, targets, results, args) -> None:
    """Each schedule's maps on the first images vs a dense uniform run, pixel by pixel."""
    import numpy as np
    from xai_fer_plugins.integrated_gradients import IntegratedGradients

    count = min(args.reference_images, len(targets))
    rows = np.arange(count)
    dense = IntegratedGradients().compute(context, rows, targets[rows], IntegratedGradients.Options(
        steps=args.reference_steps, schedule="uniform"))
    print(f"\nreference: uniform, {args.reference_steps} steps, first {count} images: completeness error "
          f"{describe(dense.per_image['completeness_error'])}")
    truth = dense.values.reshape(count, -1)
    for name, entry in results.items():
        got = entry["maps"].values[:count].reshape(count, -1)
        relative = np.linalg.norm(got - truth, axis=1) / np.linalg.norm(truth, axis=1)
        print(f"{name:<40} ||maps - reference|| / ||reference|| per image: median {np.median(relative):.4f}  "
              f"max {relative.max():.4f}")


if __name__ == "__main__":
    main()
