"""Saliency's gradient computation on 256 images vs ONE minimal compiled forward+backward pass.

Model: the study CNN (plugins/cnn.py) at 48x48x1, untrained. The baseline is the least any gradient explainer
can do: one ``tf.function`` that runs the pre-softmax network on the whole 256-image batch and takes the
gradient of each image's class score. The saliency side is what the explainer runs: ``input_gradients``
through the data model (input adaptation + logits twin), in the explainer's default batches, plus turning
gradients into normalized maps and percentile masks. Warm-up first, then the best of several repeats.

    .venv/bin/python benchmarks/saliency_speed.py [--repeats 7] [--images 256]

Target: ratio <= 1.15.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def measure(functions: dict, repeats: int) -> dict:
    """Warm each function up, then time them in interleaved rounds (so that background load hits all of them
    alike); per function the best wall time and the best process CPU time over the rounds."""
    for fn in functions.values():
        fn()  # warm-up: tracing, oneDNN primitive caches
    wall = {name: [] for name in functions}
    cpu = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (min(wall[name]), min(cpu[name])) for name in functions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf
    from xai_fer_plugins.cnn import Cnn, CnnOptions
    from xai_fer_plugins.saliency import SaliencyOptions

    from xai_fer.data import FER2013_CLASSES, Dataset
    from xai_fer.explain.context import ExplainContext
    from xai_fer.explain.gradients import input_gradients, saliency_maps, threshold_masks
    from xai_fer.models.adapt import InputAdapter, resolve_scaling
    from xai_fer.models.introspect import inspect_model, logits_model

    keras.utils.set_random_seed(0)
    model = Cnn().build((48, 48, 1), 7, CnnOptions())
    info = inspect_model(model)
    rng = np.random.default_rng(0)
    n = args.images
    dataset = Dataset(images=rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8), labels=np.arange(n) % 7,
                      class_names=FER2013_CLASSES, source="random")
    scaling = resolve_scaling("auto", info.scales_its_input)
    context = ExplainContext(model, info, dataset, InputAdapter(scaling, (48, 48, 1), info.input_shape))
    images = context.images()
    classes = context.predictions.astype(np.int32)
    options = SaliencyOptions()
    batch_size = options.batch_size or context.batch_size

    # Baseline: one compiled forward+backward pass over the whole batch, bare pre-softmax network.
    bare = logits_model(model, info)
    x, c = tf.constant(images), tf.constant(classes)

    @tf.function
    def forward_backward(x, c):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(tf.gather(bare(x, training=False), c, axis=1, batch_dims=1))
        return tape.gradient(total, x)

    data_model = context.data_model(logits=True)

    def saliency_gradients():
        return input_gradients(data_model, images, classes, batch_size=batch_size)

    def saliency_full():
        maps = saliency_maps(saliency_gradients())
        return threshold_masks(maps, options.threshold_percentile)

    times = measure({"baseline": lambda: forward_backward(x, c).numpy(), "gradients": saliency_gradients,
                     "full": saliency_full}, args.repeats)

    reference = forward_backward(x, c).numpy()
    assert np.allclose(saliency_gradients(), reference, rtol=1e-4, atol=1e-6 * np.abs(reference).max())

    print(f"model: study CNN 48x48x1, {info.parameters} parameters; {n} images; saliency batch_size "
          f"{batch_size}; best of {args.repeats} interleaved rounds; {os.cpu_count()} CPUs")
    base_wall, base_cpu = times["baseline"]
    rows = [("baseline", f"single compiled forward+backward, {n} images in one call"),
            ("gradients", f"saliency input_gradients (data model, batches of {batch_size})"),
            ("full", "saliency gradients + maps + masks")]
    for key, label in rows:
        wall, cpu = times[key]
        print(f"{label:<62} wall {wall * 1000:8.1f} ms (ratio {wall / base_wall:.3f})   "
              f"cpu {cpu * 1000:8.1f} ms (ratio {cpu / base_cpu:.3f})")
    print(f"saliency/baseline ratio (gradients + maps + masks): wall {times['full'][0] / base_wall:.3f}, "
          f"cpu {times['full'][1] / base_cpu:.3f} (target <= 1.15; on a loaded machine the CPU-time ratio is the "
          "steadier one)")


if __name__ == "__main__":
    main()
