"""xai-fer's SmoothGrad, Integrated Gradients and Grad-CAM vs xplique 2.x's, on the shipped CNN: agreement and speed.

xplique 2.0.2 pins ``tensorflow[and-cuda]<=2.20`` on Linux (gigabytes of CUDA wheels), so it stays out of the
project's extras and runs in its own virtual environment, by default ``../xplique-venv`` beside the repository
(``--xplique-python`` or ``$XPLIQUE_PYTHON`` name another interpreter). Built by ``--setup`` (CPU-only, about
2.5 GB; xplique itself without its dependencies, so that pip does not pull the CUDA wheels; the dependencies it
imports, pinned as it pins them: TensorFlow 2.20 with tf-keras 2.20 for TensorFlow Probability, OpenCV headless
instead of opencv-python, no ruff)::

    python3 -m venv ../xplique-venv
    ../xplique-venv/bin/pip install "tensorflow==2.20.*" "tf-keras==2.20.*" "tensorflow-probability==0.25.*" \
        "scipy<=1.15.3" "scikit-learn<=1.7.2" "scikit-image<=0.25.2" matplotlib opencv-python-headless \
        deprecated einops numpy
    ../xplique-venv/bin/pip install --no-deps xplique==2.0.2

Where that interpreter cannot import xplique, the benchmark says why, prints these commands and skips (exit 0).

How it runs: this script (the project's venv) computes xai-fer's maps through the attribution core
(``Attribution.compute``) and starts itself under the xplique interpreter as a worker (``--worker DIR``); the two
exchange the images, targets, noise and maps as ``.npz`` files in a temporary folder under /tmp, and the worker
answers one JSON line per request, so both sides stay warm and are timed in interleaved rounds.

Settings, identical on both sides: the first ``--images`` PrivateTest images (``../shared/data/fer2013.h5``, else
the bundled sample), 0-255 (the CNN rescales its own input), target the predicted class, the logit score (on
xplique's side an explicit logit model: the CNN with its softmax layer removed; xplique's ``output_layer`` is not
used), one gradient call per 128 images where xplique's batching allows it:

* SmoothGrad: 16 samples (``--samples``), sigma = 0.15 x 255, the mean gradient, shown as |mean| (xai-fer's
  ``saliency_maps`` applied to both). Agreement with the same noise draw (xplique's ``_perturb_samples`` is
  replaced by one that adds xai-fer's seeded noise) and with xplique's own draw (``tf.random``, seed 0), next to
  two xai-fer runs of different seeds: how far two independent draws can agree at all. xplique
  ``batch_size=128`` (8 images x 16 samples per call; all of an image's samples in one call).
* Integrated Gradients: black baseline; xai-fer 64 intervals (65 gradients, uniform trapezoid, and the default
  adaptive schedule) vs xplique ``steps=65`` points (its trapezoid over 64 intervals); signed maps.
  xplique ``batch_size=130`` (2 images x 65 points per call).
* Grad-CAM: the last conv layer with a spatial output (``block3_conv3``, 12x12); xai-fer upsamples bilinearly,
  xplique bicubically, so the maps are also compared at the layer's resolution, before upsampling.

Printed: per method the per-image Pearson correlation (min, median, share >= 0.99; target >= 0.99 per image) and
the median wall and CPU times of ``--repeats`` interleaved rounds, xplique's time over xai-fer's (target: xai-fer
>= 2x faster). Timing uses xai-fer's defaults (adaptive Integrated Gradients) and xplique as it ships (its own
noise). Note that the two sides run different TensorFlow builds (2.21 here, 2.20 there).

    nice -n 10 .venv/bin/python benchmarks/xplique_agreement.py [--images 32] [--repeats 3] [--samples 16]
        [--setup] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
FER2013_H5 = ROOT.parent / "shared" / "data" / "fer2013.h5"
DEFAULT_VENV = ROOT.parent / "xplique-venv"
XPLIQUE_VERSION = "2.0.2"
DEPENDENCIES = ["tensorflow==2.20.*", "tf-keras==2.20.*", "tensorflow-probability==0.25.*", "scipy<=1.15.3",
                "scikit-learn<=1.7.2", "scikit-image<=0.25.2", "matplotlib", "opencv-python-headless", "deprecated",
                "einops", "numpy"]
NOISE, STEPS, BATCH = 0.15, 64, 128
CORRELATION_TARGET, SPEEDUP_TARGET = 0.99, 2.0


def setup_commands(venv: Path) -> list[list[str]]:
    pip = str(venv / "bin" / "pip")
    return [[sys.executable, "-m", "venv", str(venv)], [pip, "install", *DEPENDENCIES],
            [pip, "install", "--no-deps", f"xplique=={XPLIQUE_VERSION}"]]


def shell(command: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(part) for part in command)


# ---------------------------------------------------------------------------------------------------------
# The xplique side (runs under the xplique interpreter: numpy, TensorFlow, Keras and xplique only).


def logit_model(model):
    """The model without its final softmax: its input when it is a softmax Activation layer, else the last
    layer rebuilt with a linear activation on the same weights."""
    import keras

    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if getattr(activation, "__name__", "") != "softmax":
        return model
    if isinstance(last, keras.layers.Activation):
        return keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
    twin = type(last).from_config(last.get_config() | {"activation": "linear"})
    outputs = twin(last.input)
    twin.set_weights(last.get_weights())
    return keras.Model(model.inputs, outputs, name=f"{model.name}_logits")


class XpliqueSide:
    def __init__(self, exchange: Path):
        import keras
        import numpy as np
        import tensorflow as tf

        tf.random.set_seed(0)
        self.exchange = exchange
        data = np.load(exchange / "inputs.npz")
        self.settings = json.loads(str(data["settings"]))
        self.images = data["images"]
        self.noise = data["noise"]  # (samples, N, H, W, C): xai-fer's SmoothGrad draw
        self.model = logit_model(keras.models.load_model(self.settings["model"]))
        classes = int(self.model.outputs[0].shape[-1])
        self.targets = np.eye(classes, dtype=np.float32)[data["targets"]]
        self.explainers = {}

    def explainer(self, method: str):
        if method not in self.explainers:
            from xplique.attributions import GradCAM, IntegratedGradients, SmoothGrad

            s = self.settings
            if method == "smoothgrad":
                # All of an image's samples in one batch (the same-noise replacement relies on it).
                made = SmoothGrad(self.model, batch_size=s["samples"] * max(1, BATCH // s["samples"]),
                                  nb_samples=s["samples"], noise=s["sigma"])
            elif method == "integrated-gradients":
                points = s["steps"] + 1
                made = IntegratedGradients(self.model, batch_size=points * max(1, BATCH // points), steps=points,
                                           baseline_value=0.0)
            else:
                made = GradCAM(self.model, batch_size=BATCH, conv_layer=s["layer"])
            self.explainers[method] = made
        return self.explainers[method]

    def explain(self, method: str, same_noise: bool = False):
        import numpy as np

        explainer = self.explainer(method)
        if not same_noise:
            return np.asarray(explainer.explain(self.images, self.targets))
        from xplique.attributions.gradient_statistics.gradient_statistic import GradientStatistic

        original = GradientStatistic.__dict__["_perturb_samples"]
        noise, cursor = self.noise, [0]

        def xai_fer_noise(inputs, nb_perturbations, _sigma):
            """xplique's layout (each input repeated nb_perturbations times, in order) with xai-fer's draw."""
            import tensorflow as tf

            count, start = int(inputs.shape[0]), cursor[0]
            if nb_perturbations != noise.shape[0]:
                raise ValueError(f"expected all {noise.shape[0]} samples in one batch, got {nb_perturbations}")
            cursor[0] += count
            drawn = np.swapaxes(noise[:, start:start + count], 0, 1).reshape(-1, *noise.shape[2:])
            return tf.repeat(inputs, nb_perturbations, axis=0) + drawn

        GradientStatistic._perturb_samples = staticmethod(xai_fer_noise)
        try:
            return np.asarray(explainer.explain(self.images, self.targets))
        finally:
            GradientStatistic._perturb_samples = original

    def layer_cams(self):
        """Grad-CAM before xplique's bicubic resize, from its own steps (gradient, weights, weighted sum)."""
        import numpy as np
        import tensorflow as tf

        explainer = self.explainer("grad-cam")
        cams = []
        for start in range(0, len(self.images), BATCH):
            x = tf.constant(self.images[start:start + BATCH])
            y = tf.constant(self.targets[start:start + BATCH])
            feature_maps, gradients = explainer._gradient(x, y)
            weights = explainer._compute_weights(gradients, feature_maps)
            cams.append(explainer._apply_weights(weights, feature_maps).numpy())
        return np.concatenate(cams)

    def handle(self, request: dict) -> dict:
        import numpy as np

        kind, method = request["kind"], request.get("method")
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        if kind == "maps":
            maps = self.explain(method, same_noise=request.get("same_noise", False))
        elif kind == "layer_cams":
            maps = self.layer_cams()
        else:
            raise ValueError(f"unknown request {kind!r}")
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        answer = {"ok": True, "wall": wall, "cpu": cpu}
        if request.get("save"):
            path = self.exchange / f"{request['save']}.npz"
            np.savez(path, maps=maps)
            answer["file"] = str(path)
        return answer


def worker(exchange: Path) -> None:
    """Answer one JSON line per request on stdin, on the original stdout (library prints go to stderr)."""
    import traceback

    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    try:
        import keras
        import tensorflow as tf
        import xplique

        side = XpliqueSide(exchange)
        replies.write(json.dumps({"ok": True, "xplique": xplique.__version__, "tensorflow": tf.__version__,
                                  "keras": keras.__version__}) + "\n")
    except Exception as exc:  # noqa: BLE001 - the main side reports whatever stopped the worker
        replies.write(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                  "where": traceback.format_exc(limit=-3)}) + "\n")
        return
    for line in sys.stdin:
        request = json.loads(line)
        if request["kind"] == "quit":
            break
        try:
            answer = side.handle(request)
        except Exception as exc:  # noqa: BLE001 - reported per method: one failing method does not stop the rest
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "where": traceback.format_exc(limit=-4)}
        replies.write(json.dumps(answer) + "\n")


# ---------------------------------------------------------------------------------------------------------
# The xai-fer side.


class Worker:
    """The xplique worker process, one request at a time."""

    def __init__(self, python: str, exchange: Path):
        self.log = open(exchange / "worker.log", "w")  # noqa: SIM115 - lives as long as the worker
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        self.process = subprocess.Popen([python, __file__, "--worker", str(exchange)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True, env=env,
                                        cwd=tempfile.gettempdir())
        self.hello = self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            return {"ok": False, "error": f"the worker exited with status {self.process.returncode} (log: "
                                          f"{self.log.name})"}
        return json.loads(line)

    def ask(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write(json.dumps({"kind": "quit"}) + "\n")
            self.process.stdin.flush()
            self.process.wait(timeout=60)
        self.log.close()


def find_xplique(python: str) -> tuple[bool, str]:
    """Whether ``python`` imports xplique (and which versions), or why not."""
    if not Path(python).exists():
        return False, f"no interpreter at {python}"
    probe = ("import json, xplique, tensorflow, keras; print(json.dumps([xplique.__version__, tensorflow.__version__, "
             "keras.__version__]))")
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=600,
                          cwd=tempfile.gettempdir())
    if done.returncode != 0:
        last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:]
        return False, f"{python} cannot import xplique: {last[0] if last else f'exit {done.returncode}'}"
    xplique, tensorflow, keras = json.loads(done.stdout.strip().splitlines()[-1])
    return True, f"xplique {xplique}, TensorFlow {tensorflow}, Keras {keras} ({python})"


def smoothgrad_noise(context, rows, options):
    """xai-fer's SmoothGrad noise for ``rows``, drawn as the method draws it: per chunk of the batch size, a
    fresh seeded generator, one (chunk, H, W, C) draw per sample. (samples, N, H, W, C)."""
    import numpy as np

    engine = context.attribution_engine(options.score)
    sigma = options.noise * (engine.data_range[1] - engine.data_range[0])
    parts = []
    for start in range(0, len(rows), engine.batch_size):
        shape = context.images(rows[start:start + engine.batch_size]).shape
        rng = engine.rng(salt=1)
        parts.append(np.stack([rng.normal(0.0, sigma, shape).astype(np.float32) for _ in range(options.samples)]))
    return np.concatenate(parts, axis=1)


def pearson(a, b):
    """Per-image Pearson correlation of two (N, H, W) map stacks; NaN where either map is constant."""
    import numpy as np

    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, np.nan)


def describe(ref, got) -> str:
    """Per-image correlations summarised; images whose maps are constant on both sides (e.g. a Grad-CAM that the
    ReLU zeroes everywhere) agree but have no correlation, and are counted apart."""
    import numpy as np

    r = pearson(ref, got)
    flat = [m.reshape(len(m), -1) for m in (ref, got)]
    both_constant = int(np.sum((flat[0].max(axis=1) == flat[0].min(axis=1))
                               & (flat[1].max(axis=1) == flat[1].min(axis=1))))
    finite = r[np.isfinite(r)]
    if not len(finite):
        return f"undefined: constant maps ({both_constant} of {len(r)} constant on both sides)"
    met = int((finite >= CORRELATION_TARGET).sum())
    constant = (f", {both_constant} constant on both sides (no correlation)" if both_constant else "") + (
        f", {len(r) - len(finite) - both_constant} constant on one side only"
        if len(r) - len(finite) > both_constant else "")
    return (f"min {finite.min():.4f}, median {np.median(finite):.4f}, mean {finite.mean():.4f}; "
            f">= {CORRELATION_TARGET}: {met}/{len(r) - both_constant}{constant}")


def xai_fer_side(args):
    """The context, the methods with their options, and the inputs file for the worker."""
    import keras
    import numpy as np

    from xai_fer import reference, registry
    from xai_fer.explain.attribution import target_classes
    from xai_fer.explain.cam import default_layer
    from xai_fer.explain.pipeline import build_context

    model_file = reference.model_path("cnn")
    from attribution_speed import load_data  # the images the speed benchmark measures (same folder)

    dataset = load_data(args.images)
    context = build_context(keras.models.load_model(model_file), dataset)
    explainers = registry.explainers()
    rows = np.arange(len(dataset))
    layer = default_layer(context.model, context.info)
    options = {
        "smoothgrad": explainers["smoothgrad"].Options(samples=args.samples, noise=NOISE),
        "integrated-gradients": explainers["integrated-gradients"].Options(steps=STEPS, baseline="black"),
        "grad-cam": explainers["grad-cam"].Options(layer=layer),
    }
    targets = target_classes(context, options["grad-cam"], rows, "benchmark")
    settings = {"model": str(model_file), "samples": args.samples, "sigma": NOISE * 255.0, "steps": STEPS,
                "layer": layer}
    np.savez(args.exchange / "inputs.npz", images=context.images(rows), targets=targets,
             noise=smoothgrad_noise(context, rows, options["smoothgrad"]), settings=json.dumps(settings))
    return context, explainers, rows, targets, options, layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=16, help="SmoothGrad's samples on both sides")
    parser.add_argument("--xplique-python", default=os.environ.get("XPLIQUE_PYTHON",
                                                                   str(DEFAULT_VENV / "bin" / "python")))
    parser.add_argument("--setup", action="store_true", help=f"build the xplique environment at {DEFAULT_VENV}")
    parser.add_argument("--keep", action="store_true", help="keep the exchange folder (inputs and maps)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.images, args.repeats, args.samples) < 1:
        parser.error("--images, --repeats and --samples must be at least 1")
    if args.worker:
        worker(args.worker)
        return
    args.xplique_python = os.path.abspath(args.xplique_python)  # not resolved: a venv's python is a symlink
    venv = Path(args.xplique_python).parent.parent
    # xplique's TensorFlow 2.20 would replace the project's own: never build it into the running environment.
    own = Path(sys.prefix).resolve() == venv.resolve()
    if args.setup:
        if own:
            raise SystemExit(f"refusing to install xplique into this environment ({sys.prefix}): it would replace "
                             f"its TensorFlow; use --xplique-python {DEFAULT_VENV / 'bin' / 'python'}")
        for command in setup_commands(venv):
            print(f"$ {shell(command)}", flush=True)
            subprocess.run(command, check=True)
    found, about = find_xplique(args.xplique_python)
    if not found:
        venv = DEFAULT_VENV if own else venv
        where = "" if venv == DEFAULT_VENV else f" --xplique-python {shell([args.xplique_python])}"
        print(f"SKIPPED: {about}\nbuild the xplique environment with:\n  {sys.executable} {__file__} --setup{where}"
              "\nor:")
        for command in setup_commands(venv):
            print(f"  {shell(command)}")
        return
    args.exchange = Path(tempfile.mkdtemp(prefix="xai-fer-xplique-"))
    try:
        compare(args, about)
    finally:
        if args.keep:
            print(f"exchange folder kept: {args.exchange}")
        else:
            shutil.rmtree(args.exchange, ignore_errors=True)


def compare(args, about: str) -> None:
    import numpy as np

    from xai_fer.explain.cam import class_activation_maps
    from xai_fer.explain.gradients import saliency_maps

    context, explainers, rows, targets, options, layer = xai_fer_side(args)
    print(f"xai-fer (this venv) vs {about}; shipped CNN, {context.dataset.source}, target predicted, logit score; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    worker_process = Worker(args.xplique_python, args.exchange)
    try:
        if not worker_process.hello["ok"]:
            print(f"SKIPPED: the xplique worker failed to start: {worker_process.hello['error']}\n"
                  f"{worker_process.hello.get('where', '')}")
            return
        ours = {name: explainers[name].compute(context, rows, targets, opts).values for name, opts in options.items()}
        uniform = explainers["integrated-gradients"].compute(
            context, rows, targets, type(options["integrated-gradients"])(steps=STEPS, baseline="black",
                                                                         schedule="uniform")).values
        failed = {}

        def theirs(save: str, **request):
            answer = worker_process.ask(kind=request.pop("kind", "maps"), save=save, **request)
            if not answer["ok"]:
                failed.setdefault(request.get("method", save), answer)
                return None
            return np.load(answer["file"])["maps"]

        print("\nagreement, per-image Pearson correlation (target >= 0.99 per image):")
        for label, ref, got in agreement_rows(theirs, ours, uniform, context, targets, layer, options, saliency_maps,
                                              class_activation_maps):
            print(f"  {label:<62} {describe(ref, got) if got is not None else 'FAILED (below)'}")
        for method, answer in failed.items():
            print(f"xplique FAILED on {method}: {answer['error']}\n{answer.get('where', '')}")
        timings(worker_process, explainers, context, rows, targets, options, args.repeats, failed)
    finally:
        worker_process.close()


def agreement_rows(theirs, ours, uniform, context, targets, layer, options, saliency_maps, class_activation_maps):
    """(label, xai-fer maps, xplique maps or None) for every comparison."""
    import numpy as np

    same = theirs("smoothgrad_same_noise", method="smoothgrad", same_noise=True)
    own = theirs("smoothgrad_own_noise", method="smoothgrad")
    yield ("SmoothGrad |mean grad|, same noise draw", ours["smoothgrad"],
           None if same is None else saliency_maps(same))
    yield ("SmoothGrad |mean grad|, xplique's own noise", ours["smoothgrad"],
           None if own is None else saliency_maps(own))
    yield ("SmoothGrad |mean grad|, xai-fer seed 0 vs seed 1 (no xplique)", ours["smoothgrad"],
           reseeded_smoothgrad(context, targets, options["smoothgrad"]))
    ig = theirs("integrated_gradients", method="integrated-gradients")
    ig = None if ig is None else ig[..., 0]
    yield ("Integrated Gradients, xai-fer uniform schedule (same path)", uniform, ig)
    yield ("Integrated Gradients, xai-fer adaptive schedule (default)", ours["integrated-gradients"], ig)
    cam = theirs("grad_cam", method="grad-cam")
    yield (f"Grad-CAM {layer}, upsampled (bilinear vs bicubic)", ours["grad-cam"], None if cam is None else cam[..., 0])
    cams = theirs("grad_cam_layer", kind="layer_cams", method="grad-cam (layer resolution)")
    engine = context.attribution_engine("logit")
    activations, gradients = engine.layer_gradients(layer, context.images(np.arange(len(targets))), targets)
    at_layer = class_activation_maps(activations, gradients.mean(axis=(1, 2)), *activations.shape[1:3])
    yield (f"Grad-CAM {layer}, at the layer's {activations.shape[1]}x{activations.shape[2]}", at_layer, cams)


def reseeded_smoothgrad(context, targets, options):
    """xai-fer's SmoothGrad with another seed: how far two independent noise draws of one method agree."""
    import numpy as np

    from xai_fer import registry

    method = registry.explainers()["smoothgrad"]
    seed = context.seed
    context.seed = seed + 1
    try:
        return method.compute(context, np.arange(len(targets)), targets, options).values
    finally:
        context.seed = seed


def timings(worker_process, explainers, context, rows, targets, options, repeats: int, failed: dict) -> None:
    """Interleaved rounds: xai-fer's compute and xplique's explain back to back, order alternating."""
    timed = {name: {"xai-fer": [], "xplique": []} for name in options if name not in failed}
    for repeat in range(repeats):
        for name in timed:
            def ours(name=name):
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                explainers[name].compute(context, rows, targets, options[name])
                return time.perf_counter() - start_wall, time.process_time() - start_cpu

            def theirs(name=name):
                answer = worker_process.ask(kind="maps", method=name)
                if not answer["ok"]:
                    raise RuntimeError(f"xplique {name}: {answer['error']}")
                return answer["wall"], answer["cpu"]

            sides = [("xai-fer", ours), ("xplique", theirs)]
            for side, fn in sides if repeat % 2 == 0 else sides[::-1]:
                timed[name][side].append(fn())
        print(f"  timing round {repeat + 1}/{repeats} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\nspeed, {len(rows)} images, median of {repeats} interleaved rounds (target: xplique / xai-fer >= "
          f"{SPEEDUP_TARGET}):")
    print(f"  {'method':<22} {'xai-fer wall':>12} {'xplique wall':>12} {'ratio':>6}   {'xai-fer cpu':>11} "
          f"{'xplique cpu':>11} {'ratio':>6}")
    for name, sides in timed.items():
        ours_wall, theirs_wall = (statistics.median(t[0] for t in sides[s]) for s in ("xai-fer", "xplique"))
        ours_cpu, theirs_cpu = (statistics.median(t[1] for t in sides[s]) for s in ("xai-fer", "xplique"))
        print(f"  {name:<22} {ours_wall:>11.2f}s {theirs_wall:>11.2f}s {theirs_wall / ours_wall:>6.2f}   "
              f"{ours_cpu:>10.2f}s {theirs_cpu:>10.2f}s {theirs_cpu / ours_cpu:>6.2f}")


if __name__ == "__main__":
    main()
