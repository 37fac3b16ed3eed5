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
included) after the whole-split run, before the bare calls (target < 2 GB). How memory grows with the number of
images shows in a trace of the resident memory as the run goes (after the first and the last chunk, after each
explainer, after the report): read from ``/proc/self/status`` at each step the run reports to its ``progress``.

    .venv/bin/python benchmarks/explain_scale.py [--limit 2000] [--chunk-size 1024] [--views] [--bare 2048]
        [--methods saliency,grad-cam]

``--bare N`` times the bare calls on the first N images only (their images per second are compared): on the whole
of FER2013 they would take as long again as the run. ``--interleaved N`` times both on the same chunks alternately,
the fairer comparison on a busy machine.

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


class MemoryTrace:
    """A ``progress`` for ``run_explain`` that notes the resident memory at each step the run reports: every
    chunk of the whole-split stage (its task advances) and the end of every explainer. Linux only (elsewhere
    it notes nothing)."""

    def __init__(self):
        self.steps: list[tuple[str, float, float]] = []  # (step, resident MiB now, peak MiB so far)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def note(self, step: str) -> None:
        try:
            fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
                          if line.startswith(("VmRSS", "VmHWM")))
        except OSError:
            return
        self.steps.append((step, int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024))

    def task(self, description: str, total: float | None = None):
        return _TracedTask(self, description, total)

    def report(self) -> str:
        chunks = [step for step in self.steps if ": chunk " in step[0]]
        shown = [*chunks[:1], *chunks[len(chunks) // 2:len(chunks) // 2 + 1], *chunks[-1:],
                 *[step for step in self.steps if ": chunk " not in step[0]]]
        return "\n".join(f"  {name[:60]:60} resident {now:7,.0f} MiB   peak so far {peak:7,.0f} MiB"
                         for name, now, peak in dict.fromkeys(shown))


class _TracedTask:
    """One task of a :class:`MemoryTrace`: a note per advance of a task with a total (the chunks), one at the end
    of the others (the explainers)."""

    def __init__(self, trace: MemoryTrace, description: str, total: float | None):
        self.trace, self.description, self.total, self.done = trace, description, total, 0

    def advance(self, n: float = 1) -> None:
        self.done += n
        if n and self.total and self.description.endswith("in chunks"):  # the stage's chunks, not a method's batches
            self.trace.note(f"{self.description.split(':')[0]}: chunk {int(self.done)}/{int(self.total)}")

    def close(self) -> None:
        if not self.total:  # an explainer (a task without a total) has finished
            self.trace.note(f"after {self.description}")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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


def bare_calls(model_file: Path, data: Path, scaling: str, batch_size: int, methods, limit: int = 0):
    """Seconds for the engine's compiled calls alone on every image (the first ``limit``), batch by batch, once
    traced, and the number of images."""
    from xai_fer.data import load_dataset
    from xai_fer.explain.pipeline import build_context
    from xai_fer.models.loading import load_model

    dataset = load_dataset(data)
    dataset = dataset.subset(slice(0, limit)) if limit else dataset
    context = build_context(load_model(model_file), dataset, scaling, batch_size=batch_size)
    bare = BareCalls(context, methods)
    bare(0, batch_size)  # traced before timing (the whole-split stage's time includes its tracing: a fair start)
    started = time.perf_counter()
    for start in range(0, len(context.dataset), batch_size):
        bare(start, start + batch_size)
    return time.perf_counter() - started, len(context.dataset)


class BareCalls:
    """The engine's compiled calls for rows ``start..stop-1``, nothing else: per method what its maps need (one
    input gradient for saliency, one conv-layer gradient for Grad-CAM, SAMPLES input gradients of noisy copies
    for SmoothGrad)."""

    def __init__(self, context, methods):
        import numpy as np

        from xai_fer.explain.cam import default_layer

        self.context, self.methods = context, methods
        self.engine = context.attribution_engine("logit")
        self.layer = default_layer(context.model, context.info) if "grad-cam" in methods else None
        self.rng = np.random.default_rng(0)

    def __call__(self, start: int, stop: int) -> None:
        import numpy as np

        images, targets = self.context.images(slice(start, stop)), self.context.predictions[start:stop]
        if "saliency" in self.methods:
            self.engine.gradients(images, targets)
        if "grad-cam" in self.methods:
            self.engine.layer_gradients(self.layer, images, targets)
        if "smoothgrad" in self.methods:
            for _ in range(SAMPLES):
                noise = self.rng.normal(0, 0.15 * 255, images.shape).astype(np.float32)
                self.engine.gradients(images + noise, targets)


def interleaved(model_file: Path, data: Path, scaling: str, images: int, chunk: int, methods=METHODS):
    """Seconds of the local engine's chunks and of the bare calls on the same chunks, run alternately (which goes
    first alternates too), so that a change in the machine's load falls on both alike."""
    from xai_fer.data import load_dataset
    from xai_fer.explain import wholesplit
    from xai_fer.explain.pipeline import build_context
    from xai_fer.explain.plan import plan_explainers
    from xai_fer.models.loading import load_model

    dataset = load_dataset(data)
    context = build_context(load_model(model_file), dataset.subset(slice(0, images)), scaling)
    planned = plan_explainers(list(methods), method_options(methods, grid_rows=False))
    job = wholesplit.make_job(context, planned, wholesplit.WholeSplit(Path("unused"), chunk_size=chunk), {})
    bare = BareCalls(context, methods)

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


def method_options(methods, grid_rows: bool = True) -> dict:
    options = {m: {"grid_rows": "8"} if grid_rows else {} for m in methods}
    if "smoothgrad" in options:
        options["smoothgrad"]["samples"] = str(SAMPLES)
    return options


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=0, help="only the first N images (0 = all)")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"attribution methods, comma-separated, among {', '.join(METHODS)} (default all)")
    parser.add_argument("--views", action="store_true", help="also run the dataset views on the maps")
    parser.add_argument("--bare", type=int, default=0, metavar="N",
                        help="time the bare calls on the first N images only (0 = every image)")
    parser.add_argument("--interleaved", type=int, default=0, metavar="N",
                        help="also time the engine's chunks and the bare calls alternately on the first N images")
    parser.add_argument("--out", type=Path, help="keep the report here (default: a temporary folder)")
    parser.add_argument("--interleaved-only", action="store_true", help="only the interleaved timing")
    args = parser.parse_args()
    args.methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    if not args.methods or set(args.methods) - set(METHODS):
        parser.error(f"--methods takes names among {', '.join(METHODS)}")
    if not args.data.exists():
        sys.exit(f"{args.data} not found (the real FER2013 lives in ../shared/data)")
    return args


def main() -> None:
    args = arguments()
    if args.interleaved_only:
        from xai_fer import reference

        count = args.interleaved or 512
        ours, theirs = interleaved(reference.MODELS["cnn"], args.data, "auto", count, 128, args.methods)
        print(f"interleaved on {count:,} images, chunks of 128, alternating: engine chunks "
              f"{ours:.1f} s, bare calls {theirs:.1f} s: {theirs / ours:.2f}x")
        return

    import keras  # noqa: F401  (TensorFlow's start-up memory belongs to the baseline, not to the run)
    import tensorflow as tf  # noqa: F401

    from xai_fer.explain.pipeline import run_explain

    print(f"uptime before: {os.getloadavg()[0]:.2f} (1-minute load average) on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model, model_note = model_path(workdir)
        data, n = data_slice(args.data, args.limit, workdir)
        out = args.out or workdir / "report"
        baseline, trace = peak_rss_mb(), MemoryTrace()
        started = time.perf_counter()
        run = run_explain(model, data, out, args.methods + (VIEWS if args.views else []), method_options(args.methods),
                          overwrite=True, all_images=True, chunk_size=args.chunk_size, progress=trace)
        elapsed = time.perf_counter() - started
        peak = peak_rss_mb()
        trace.note("after the report")
        whole = run.manifest["whole_split"]
        per_method = {m: run.manifest["explainers"][m]["seconds"] for m in args.methods}
        print(f"model: {model_note}; data: {args.data.name}, {n:,} images; methods: {', '.join(args.methods)}"
              f"{f' ({SAMPLES} samples)' if 'smoothgrad' in args.methods else ''}; views: "
              f"{'all four' if args.views else 'none'}; chunks of {whole['chunk_size']}: {whole['chunks']}")
        print(f"maps.h5: {(out / 'maps.h5').stat().st_size / 2**20:,.0f} MiB; seconds per method (its chunks and its "
              f"section): {json.dumps(per_method)}")
        print(f"resident memory as the run went:\n{trace.report()}")
        print(f"peak RSS: {peak:,.0f} MiB after the whole-split run (after importing TensorFlow, before it: "
              f"{baseline:,.0f} MiB; target < 2048 MiB: {'met' if peak < 2048 else 'MISSED'})", flush=True)
        scaling = run.manifest["preprocessing"]["scaling"]
        bare, bare_images = bare_calls(model, data, scaling, 128, args.methods, args.bare)
    if bare_images < n:
        print(f"(bare calls timed on the first {bare_images:,} images, {bare:.1f} s; their row: that rate on {n:,})")
    print_throughput(bare / bare_images, whole["seconds"], elapsed, n)
    if args.interleaved:
        ours, theirs = interleaved(model, args.data if not args.limit else DATA, scaling, args.interleaved, 128,
                                   args.methods)
        print(f"interleaved on {args.interleaved:,} images, chunks of 128, alternating: engine chunks {ours:.1f} s, "
              f"bare calls {theirs:.1f} s: {theirs / ours:.2f}x", flush=True)
    print(f"uptime after: {os.getloadavg()[0]:.2f} (1-minute load average)")


def print_throughput(bare_per_image: float, stage: float, elapsed: float, n: int) -> None:
    """Images per second of the bare calls (timed on all or the first ``--bare`` images), of the whole-split stage
    and of the whole run, and their ratio to the bare calls."""
    print(f"{'':36}{'seconds':>10}{'images/s':>10}{'vs bare':>9}")
    for label, seconds in (("bare compiled calls", bare_per_image * n), ("whole-split stage (chunks, maps.h5)", stage),
                           ("whole run (load, predict, report)", elapsed)):
        print(f"{label:36}{seconds:10.1f}{n / seconds:10.1f}{bare_per_image * n / seconds:8.2f}x")
    ratio = bare_per_image * n / stage
    print(f"throughput of the whole-split stage: {ratio:.2f}x the bare calls (target >= 0.9x: "
          f"{'met' if ratio >= 0.9 else 'MISSED'})")


if __name__ == "__main__":
    main()
