"""``xai-fer explain``: load a model and data once, run the chosen explainers on a shared context, and write
all results into a directory that appears complete or not at all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic, reference, registry
from ..data import load_dataset
from ..errors import PluginError, UserError, reason
from ..models.adapt import InputAdapter, resolve_scaling
from ..models.introspect import inspect_model
from ..models.loading import load_model
from .artifact import Artifact
from .context import ExplainContext
from .html import render_index
from .manifest import build_manifest
from .plan import check_against_context, plan_explainers, validate_against_model


@dataclass
class ExplainRun:
    out_dir: Path | None
    manifest: dict
    artifacts: dict[str, Artifact] = field(default_factory=dict)


def build_context(model, dataset, preprocess: str = "auto", seed: int = 0, batch_size: int = 128):
    """The shared context for a loaded model and dataset (the Python API's entry point). A ``Dataset`` made in
    Python gets its pixels put on the 0-255 scale, as ``load_dataset`` does (``Dataset.put_on_255_scale``)."""
    dataset.put_on_255_scale()
    info = inspect_model(model)
    scaling = resolve_scaling(preprocess, info.scales_its_input)
    adapter = InputAdapter.for_model(scaling, tuple(dataset.images.shape[1:]), info.input_shape)
    if None in info.input_shape and len(dataset):
        _check_open_size(model, info, adapter, dataset)
    return ExplainContext(model=model, info=info, dataset=dataset, adapter=adapter, seed=seed,
                          batch_size=batch_size)


def _check_open_size(model, info, adapter, dataset) -> None:
    """A model of any image size (``(None, None, C)``) still needs images large enough for its convolutions and
    pooling: one image through it says so before any work, in one line."""
    import keras

    try:
        # The shapes every layer computes (no new nodes are added to the model), then one real image.
        model.compute_output_spec(keras.KerasTensor((None, *(adapter.model_input or adapter.model_shape))))
        model(adapter(dataset.images[:1].astype("float32")), training=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types; the user needs the reason
        height, width = adapter.data_shape[:2]
        raise UserError(f"model {info.name!r} cannot take the data's {height}x{width} images: {type(exc).__name__}: "
                        f"{reason(exc)}", "use larger images, or the size the model was trained on") from None


def run_explainers(model, dataset, explainers=None, options=None, preprocess="auto", seed=0, progress=None):
    """Run explainers in memory (nothing is written); returns ``(artifacts, planned, context, timings)``:
    {name: Artifact} with matplotlib figures, the planned explainers with their parsed options, the shared
    ``ExplainContext`` and {name: seconds}.

    ``options`` maps explainer name -> {key: value as string}, e.g. {"saliency": {"per_class": "2"}}.
    """
    import keras

    check_seed(seed)
    planned = plan_explainers(explainers, options)
    context = build_context(model, dataset, preprocess, seed)
    if not explainers:
        # "All" means all that apply: activation-max has nothing to show on a model without conv layers, nor
        # confusion on unlabelled data. An explainer given options was asked for, and is never skipped.
        planned = _applicable(planned, context, asked=set(options or {}))  # each one checked, as below
    else:
        validate_against_model(planned, context.info)
        check_against_context(planned, context)
    artifacts, timings = {}, {}
    for item in planned:
        if progress:
            progress(item.name)
        keras.utils.set_random_seed(seed)  # each explainer sees the same seeded state, whatever ran before
        started = time.perf_counter()
        artifact = registry.guarded("explainers", item.name, "explain", item.explainer.explain, context,
                                    item.options)
        if not isinstance(artifact, Artifact):
            raise UserError(f"explainer {item.name!r} returned {type(artifact).__name__}, not an Artifact",
                            registry.BROKEN_PLUGIN_HINT)
        # Names, arrays and the summary as they are now (they may change after the Artifact was made).
        registry.guarded("explainers", item.name, "its result", artifact.check_contents)
        artifacts[item.name] = artifact
        timings[item.name] = round(time.perf_counter() - started, 3)
    return artifacts, planned, context, timings


def _applicable(planned, context, asked: set[str]) -> list:
    kept = []
    for item in planned:
        try:
            validate_against_model([item], context.info)
            check_against_context([item], context)
        except PluginError:  # the explainer itself failed: that is no reason to skip it quietly
            raise
        except UserError as exc:
            if item.name in asked:  # options were given for it: the user meant it to run
                raise UserError(exc.message, f"{exc.hint + '; ' if exc.hint else ''}it ran because options were "
                                             f"given for it (-o {item.name}.KEY=VALUE)") from None
            if len(planned) == 1:
                raise
            context.skipped[item.name] = exc.message.removeprefix(f"{item.name}: ")  # the name is shown with it
            continue
        kept.append(item)
    if not kept:
        raise UserError("no explainer applies to this model and data: "
                        + "; ".join(f"{name}: {reason}" for name, reason in context.skipped.items()))
    return kept


def check_seed(seed: int) -> None:
    if not 0 <= seed < 2**32:  # what every random generator behind the explainers accepts
        raise UserError(f"--seed {seed} is out of range", "use a whole number from 0 to 4294967295")


def prepare_output(out_dir: Path, overwrite: bool, inputs: tuple = ()) -> Path:
    """Refuse before any work: an existing result (unless overwrite), a directory that is not a previous
    report, one that holds the run's own ``inputs`` (model, data), or a place we cannot write. Returns where
    the report will go: ``out_dir`` with symbolic links resolved, so a linked ``--out`` is filled, not replaced.

    Nothing is created here: missing parent directories are made only once the results are ready to be
    written (see :func:`_make_parents`), so a run that fails leaves no trace.
    """
    out_dir = Path(out_dir)
    target = out_dir.resolve()
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise UserError(f"--out {out_dir} is the current directory or above it", "pick a new folder for --out")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a directory", "pick another --out")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out_dir} already exists", "pass --overwrite to replace it, or pick another --out")
        # --overwrite replaces a previous report, never a folder of other things (a training run, a dataset).
        for path in inputs:
            resolved = Path(path).resolve()
            if resolved == target or target in resolved.parents:
                raise UserError(f"--out {out_dir} holds {path}, an input of this run", "pick another --out")
        if not _is_report(target):
            raise UserError(f"--out {out_dir} is not an xai-fer report (no manifest.json from explain); "
                            "--overwrite only replaces a previous report", "pick another --out")
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"cannot create --out {out_dir}: {ancestor} is a file, not a directory", "pick another --out")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"cannot write in {ancestor}", "pick a writable --out")
    return target


def _is_report(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "explainers" in manifest and "model" in manifest


def _make_parents(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; returns the ones created, deepest first."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    try:
        for folder in reversed(missing):
            folder.mkdir()
    except OSError as exc:
        _remove_empty(missing)
        raise UserError(f"cannot create {exc.filename}: {exc.strerror}", "pick a writable --out") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; a folder something else wrote into stays
        try:
            folder.rmdir()
        except OSError:
            pass


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM behaves like Ctrl-C, so the staging directory is removed on either."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_explain(
    model_path: str | Path | None = None,
    data: str | Path | None = None,
    out_dir: str | Path = "xai-fer-out",
    explainers: list[str] | None = None,
    options: dict[str, dict[str, str]] | None = None,
    split: str | None = None,
    preprocess: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
    unsafe: bool = False,
    data_format: str | None = None,
    progress=None,
) -> ExplainRun:
    """Everything ``xai-fer explain`` does. With no model/data, the bundled reference CNN and sample."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    check_seed(seed)
    plan_explainers(explainers, options)  # names and option values fail fast, before anything loads
    model_path = Path(model_path) if model_path else reference.model_path("cnn")
    data = data if data else reference.sample_path()
    target = prepare_output(out_dir, overwrite, inputs=(model_path, data))
    model = load_model(model_path, unsafe=unsafe)
    dataset = load_dataset(data, split=split, format=data_format)
    with _terminate_as_interrupt():
        # Explainers keep their results in memory: nothing touches the disk until every one has finished,
        # so an interruption while they run (most of a run's time) leaves nothing to clean up.
        artifacts, planned, context, timings = run_explainers(model, dataset, explainers, options, preprocess, seed,
                                                              progress)
        parents = _make_parents(target.parent)
        staging = atomic.temp_directory_sibling(target)
        try:
            sections = []
            for name, artifact in artifacts.items():
                figures = artifact.write(staging / name)
                sections.append((name, figures, artifact.summary))
                artifact.close()
            manifest = build_manifest(model_path, context.info, dataset, context.adapter, planned, seed, timings,
                                      context.skipped)
            atomic.write_json(staging / "manifest.json", manifest)
            (staging / "index.html").write_text(render_index(manifest, sections), encoding="utf-8")
            atomic.replace_directory(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            _remove_empty(parents)
            raise
    return ExplainRun(out_dir=out_dir, manifest=manifest, artifacts=artifacts)
