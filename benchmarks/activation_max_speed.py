"""How fast is activation-max? 16 filters x 200 steps on a conv layer of the study CNN, compared with

(a) a minimal compiled batched gradient-ascent loop on the same layer (target: ours <= 1.3x its time; ours is
    faster, as it folds batch norm into the convolutions and computes only the picked filter of the layer), and
(b) tf-keras-vis' ``ActivationMaximization`` on the same filters and steps (target: ours >= 5x faster).

Each side runs in its own subprocess, because ``TF_ENABLE_ONEDNN_OPTS`` must be set before TensorFlow is
imported. tf-keras-vis takes its gradients eagerly, and eager backward passes through strided 1x1 convs corrupt
memory in oneDNN's CPU kernels (TF 2.21), so it is run with oneDNN off (safe) and, on this CNN, which has no
strided 1x1 conv, also with oneDNN on. Ours and the minimal loop run interleaved in one process, under both
settings, so their ratio compares like with like.

Every time is given as wall-clock seconds and as CPU seconds of the worker process (all its threads): on a
shared, loaded machine the CPU time is the steadier measure of the work done.

"cold" = the first call, including building and tracing the compiled functions (what one ``explain`` pays);
"warm" = the best of ``--repeats`` later calls.

Usage: ``python benchmarks/activation_max_speed.py [--steps 200] [--filters 16] [--repeats 3]``.
tf-keras-vis is a benchmark-only dependency: ``pip install tf-keras-vis`` (or ``pip install -e .[bench]``).
The CNN has random weights: the speed does not depend on what it learned.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

LAYER = "block2_conv2"  # activation-max's default layer on the study CNN (middle 3x3 conv); see --layer


def _timed(function) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def _build(layer_name: str):
    import keras
    from xai_fer_plugins.cnn import Cnn, CnnOptions

    from xai_fer.explain.filter_head import feature_model
    from xai_fer.models.introspect import inspect_model

    keras.utils.set_random_seed(0)
    model = Cnn().build((48, 48, 1), 7, CnnOptions())
    return model, inspect_model(model), feature_model(model, layer_name)


def _minimal_loop(features):
    """The least one can do: one tf.function, tf.range loop, batched loss, normalised gradient step."""
    import tensorflow as tf

    @tf.function
    def run(x, onehot, steps, lr):
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                tape.watch(x)
                score = tf.reduce_sum(tf.reduce_mean(features(x, training=False), axis=[1, 2]) * onehot)
            grad = tape.gradient(score, x)
            x = x + lr * grad / (tf.sqrt(tf.reduce_mean(tf.square(grad), axis=[1, 2, 3], keepdims=True)) + 1e-12)
        return x

    return run


def worker_ours_vs_minimal(layer_name: str, steps: int, count: int, repeats: int) -> dict:
    import numpy as np
    import tensorflow as tf
    from xai_fer_plugins.activation_max import ActivationMax, ActivationMaxOptions

    from xai_fer.explain.ascent import AscentOptimiser, ascent_optimiser, optimise
    from xai_fer.explain.filter_head import filter_head
    from xai_fer.models.adapt import InputAdapter

    model, info, features = _build(layer_name)
    layer = model.get_layer(layer_name)
    adapter = InputAdapter("raw", (48, 48, 1), info.input_shape)  # the CNN rescales its own input
    filters = list(range(count))
    recipe = ActivationMax().recipe(ActivationMaxOptions(steps=steps))  # the default pieces and weights
    rng = np.random.default_rng(0)
    start = np.clip(0.5 + 0.1 * rng.standard_normal((48, 48, 1)), 0, 1).astype(np.float32)

    def ours(optimiser=None):
        """What the explainer runs: build and trace the optimiser (when new), measure, ascend, measure."""
        optimiser = optimiser or ascent_optimiser(model, layer_name, features, adapter)
        optimise(start, filters, recipe, 0, optimiser)

    minimal = _minimal_loop(features)
    x0 = tf.constant(np.broadcast_to(start * 255.0, (count, 48, 48, 1)).copy())
    onehot = tf.constant(np.eye(int(features.outputs[0].shape[-1]), dtype=np.float32)[filters])

    def base():
        minimal(x0, onehot, tf.constant(steps), tf.constant(1.0)).numpy()

    result = {"cold_ours": _timed(ours), "cold_minimal": _timed(base)}
    explainer = ascent_optimiser(model, layer_name, features, adapter)
    # Ablations: without folding batch norm (one-filter head only), and with neither (full layer output).
    unfolded = AscentOptimiser(features, adapter, filter_head(model, layer))
    full_layer = AscentOptimiser(features, adapter, None)
    variants = {"ours": explainer, "ours_unfolded": unfolded, "ours_full_layer": full_layer}
    for optimiser in variants.values():
        ours(optimiser)  # trace each once
    runs = {**{name: [] for name in variants}, "minimal": []}
    for _ in range(repeats):  # interleaved, so background load hits all alike
        for name, optimiser in variants.items():
            runs[name].append(_timed(lambda optimiser=optimiser: ours(optimiser)))
        runs["minimal"].append(_timed(base))
    result.update({f"warm_{name}": [min(t[0] for t in times), min(t[1] for t in times)]
                   for name, times in runs.items()})
    result["all_warm_wall"] = {name: [round(t[0], 2) for t in times] for name, times in runs.items()}
    return result


def worker_tf_keras_vis(layer_name: str, steps: int, count: int) -> dict:
    import numpy as np
    import tensorflow as tf
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.input_modifiers import Jitter
    from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D

    _, _, features = _build(layer_name)
    onehot = tf.constant(np.eye(int(features.outputs[0].shape[-1]), dtype=np.float32)[:count])

    def score(output):  # one value per image: image i maximises filter i
        return tf.reduce_sum(tf.reduce_mean(output, axis=[1, 2]) * onehot, axis=-1)

    rng = np.random.default_rng(0)
    start = np.clip(127.5 + 25.0 * rng.standard_normal((count, 48, 48, 1)), 0, 255).astype(np.float32)
    visualiser = ActivationMaximization(features, clone=False)
    shape = []

    def run():
        images = visualiser(score, seed_input=start, input_range=(0, 255), steps=steps,
                            input_modifiers=[Jitter(jitter=2)],
                            regularizers=[TotalVariation2D(weight=1.0), Norm(weight=0.3, p=2)])
        shape.extend(np.asarray(images).shape)

    return {"time": _timed(run), "shape": shape,
            "settings": "Jitter(2): shifts -2..1 px, TotalVariation2D(1.0), Norm(0.3, p=2), default RMSprop(1.0)"}


def _spawn(side: str, env_extra: dict, args) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", **env_extra)
    command = [sys.executable, __file__, "--worker", side, "--layer", args.layer, "--steps", str(args.steps),
               "--filters", str(args.filters), "--repeats", str(args.repeats)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def _settings(env_extra: dict) -> str:
    import importlib.metadata as md

    onednn = env_extra.get("TF_ENABLE_ONEDNN_OPTS", os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"))
    versions = ", ".join(f"{p} {md.version(p)}" for p in ("tensorflow", "keras"))
    return f"TF_ENABLE_ONEDNN_OPTS={onednn}; {versions}; {os.cpu_count()} CPU cores"


def _fmt(t) -> str:
    return f"{t[0]:.2f} s wall / {t[1]:.2f} s CPU"


def _ratio(a, b) -> str:
    return f"{a[0] / b[0]:.2f} wall / {a[1] / b[1]:.2f} CPU"


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default=LAYER, help="conv layer of the study CNN")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=["ours", "tf-keras-vis"], help=argparse.SUPPRESS)
    parser.add_argument("--skip-tf-keras-vis", action="store_true")
    args = parser.parse_args()

    if args.worker == "ours":
        print(json.dumps(worker_ours_vs_minimal(args.layer, args.steps, args.filters, args.repeats)))
        return
    if args.worker == "tf-keras-vis":
        print(json.dumps(worker_tf_keras_vis(args.layer, args.steps, args.filters)))
        return

    print(f"activation-max speed: study CNN 48x48x1, layer {args.layer}, {args.filters} filters x {args.steps} steps; "
          f"{_load()}")
    ours_by_env = {}
    for env_extra in ({}, {"TF_ENABLE_ONEDNN_OPTS": "0"}):
        result = ours_by_env[env_extra.get("TF_ENABLE_ONEDNN_OPTS", "on")] = _spawn("ours", env_extra, args)
        print(f"\n(a) ours vs a minimal compiled loop  [{_settings(env_extra)}]")
        if "error" in result:
            print(f"    failed: {result['error']}")
            continue
        ours, base, full = result["warm_ours"], result["warm_minimal"], result["warm_ours_full_layer"]
        print(f"    warm (best of {args.repeats}): ours {_fmt(ours)}; minimal {_fmt(base)}")
        print(f"        ratio ours/minimal {_ratio(ours, base)}  (target <= 1.3)")
        print(f"    cold (incl. tracing): ours {_fmt(result['cold_ours'])}; minimal {_fmt(result['cold_minimal'])}")
        print(f"        ratio ours/minimal {_ratio(result['cold_ours'], result['cold_minimal'])}")
        unfolded = result["warm_ours_unfolded"]
        print(f"    ours without folding batch norm (one-filter head only): {_fmt(unfolded)}, "
              f"ratio {_ratio(unfolded, base)}")
        print(f"    ours with neither (objective from the full layer, the minimal loop's work): "
              f"{_fmt(full)}, ratio {_ratio(full, base)}")
        print(f"    all warm wall times: {result['all_warm_wall']}")

    if args.skip_tf_keras_vis:
        return
    import importlib.metadata as md

    try:
        version = md.version("tf-keras-vis")
    except md.PackageNotFoundError:
        print("\n(b) tf-keras-vis is not installed: pip install tf-keras-vis")
        return
    # oneDNN off first: the setting under which tf-keras-vis' eager gradients are safe on every model. Then
    # oneDNN on (TensorFlow's default), which its eager backward passes survive on this CNN, not everywhere.
    for env_extra in ({"TF_ENABLE_ONEDNN_OPTS": "0"}, {}):
        key = env_extra.get("TF_ENABLE_ONEDNN_OPTS", "on")
        print(f"\n(b) ours vs tf-keras-vis {version} ActivationMaximization  [{_settings(env_extra)}; {_load()}]")
        theirs = _spawn("tf-keras-vis", env_extra, args)
        if "error" in theirs:
            print(f"    tf-keras-vis failed: {theirs['error']}")
            continue
        t = theirs["time"]
        print(f"    tf-keras-vis: {_fmt(t)}  ({theirs['settings']}; eager: one Python iteration per step)")
        result = ours_by_env.get(key, {})
        if "warm_ours" in result:
            for label in ("cold", "warm"):
                mine = result[f"{label}_ours"]
                print(f"    ours {label}, same filters and steps: {_fmt(mine)} -> {t[0] / mine[0]:.1f}x faster wall, "
                      f"{t[1] / mine[1]:.1f}x less CPU  (target >= 5x)")
        if key == "0" and "warm_ours" in ours_by_env.get("on", {}):
            for label in ("cold", "warm"):
                mine = ours_by_env["on"][f"{label}_ours"]
                print(f"    ours {label} with oneDNN on (our default; safe since compiled): {_fmt(mine)} -> "
                      f"{t[0] / mine[0]:.1f}x faster wall, {t[1] / mine[1]:.1f}x less CPU")


if __name__ == "__main__":
    main()
