"""``xai-fer explain``: load a model and data once, run the chosen explainers on a shared context, and write
all results into a directory that appears complete or not at all."""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic, reference, registry
from ..data import load_dataset
from ..errors import PluginError, UserError, reason
from ..models.adapt import InputAdapter, resolve_scaling
from ..models.introspect import RENAMED_WHY, inspect_model, make_scope_safe
from ..models.loading import load_model
from ..models.scaling_choice import ScalingWarning, choose_scaling
from .artifact import Artifact
from .browser import BROWSER_FOLDER, context_inputs, write_browser
from .context import ExplainContext
from .face_crops import write_face_crops
from .html import render_index
from .manifest import build_manifest
from .output import MAX_FIGURES, check_max_figures, prepare_output, write_report
from .plan import check_against_context, plan_explainers, report_group, report_order, validate_against_model
from .progress import as_progress


@dataclass
class ExplainRun:
    out_dir: Path | None
    manifest: dict
    artifacts: dict[str, Artifact] = field(default_factory=dict)


def build_context(model, dataset, preprocess: str = "auto", seed: int = 0, batch_size: int = 128):
    """The shared context for a loaded model and dataset (the Python API's entry point). A ``Dataset`` made in
    Python gets its pixels put on the 0-255 scale, as ``load_dataset`` does (``Dataset.put_on_255_scale``)."""
    dataset.put_on_255_scale()
    # Names legal in Keras that TensorFlow refuses as name scopes ("conv a [1]") would fail every compiled
    # gradient: renamed in memory (the context and the manifest say so), in the API as on the command line.
    renamed = make_scope_safe(model)
    info = inspect_model(model)
    adapter = InputAdapter.for_model(resolve_scaling(preprocess, info.scales_its_input),
                                     tuple(dataset.images.shape[1:]), info.input_shape)
    if None in info.input_shape and len(dataset):  # before the scaling search, which feeds the model images
        _check_open_size(model, info, adapter, dataset)
    choice, probabilities = choose_scaling(model, info, dataset, preprocess, seed=seed, batch_size=batch_size)
    if choice.warning:
        warnings.warn(choice.warning, ScalingWarning, stacklevel=2)
    adapter = InputAdapter.for_model(choice.scaling, tuple(dataset.images.shape[1:]), info.input_shape)
    context = ExplainContext(model=model, info=info, dataset=dataset, adapter=adapter, seed=seed,
                             batch_size=batch_size, scaling_choice=choice, renamed=renamed)
    if probabilities is not None:  # the search saw every image with this scaling: no second pass over them
        context.__dict__["probabilities"] = probabilities
    return context


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


def run_explainers(model, dataset, explainers=None, options=None, preprocess="auto", seed=0, progress=None,
                   preset=None, planned=None, whole_split=None, source=None):
    """Run explainers in memory (nothing is written); returns ``(artifacts, planned, context, timings)``:
    {name: Artifact} with matplotlib figures, the planned explainers with their parsed options, the shared
    ``ExplainContext`` and {name: seconds}. ``planned``: what :func:`plan_explainers` made of ``explainers`` and
    ``options`` when the caller planned them already.

    ``options`` maps explainer name -> {key: value}, the value a Python value or the command line's string,
    e.g. {"saliency": {"indices": [0, 1, 2]}} or {"saliency": {"per_class": "2"}}. ``preset``: a named set of
    options (:mod:`xai_fer.explain.presets`, e.g. "quick") for what ``options`` leaves out.

    ``whole_split`` (a :class:`~xai_fer.explain.wholesplit.WholeSplit`): every attribution method explains
    every image, streamed in chunks into ``maps.h5`` in its work folder (``context.whole_split`` holds it open
    afterwards; ``context.whole_split.close(finished)`` closes it); the default explainers are then
    :data:`WHOLE_SPLIT_DEFAULT`. ``source``: where model and data came from, for engines that load them.
    """
    check_seed(seed)
    default_set = not explainers
    if whole_split is not None and default_set:
        explainers = [name for name in WHOLE_SPLIT_DEFAULT if name in registry.explainers()]
        planned = None  # the whole-split defaults, not "all"
    planned = plan_explainers(explainers, options, preset) if planned is None else planned
    context = build_context(model, dataset, preprocess, seed)
    context.plan = planned
    if default_set:
        # "All" means all that apply: activation-max has nothing to show on a model without conv layers, nor
        # confusion on unlabelled data. An explainer given options was asked for, and is never skipped.
        planned = _applicable(planned, context, asked=set(options or {}))  # each one checked, as below
    else:
        validate_against_model(planned, context.info)
        check_against_context(planned, context)
    with as_progress(progress) as shown:
        context.progress = shown
        try:
            if whole_split is not None:
                from .wholesplit import run_whole_split

                run_whole_split(context, planned, whole_split, source, shown)
            artifacts, timings = _run_planned(planned, context, seed, shown)
        except BaseException:
            if context.whole_split is not None:
                context.whole_split.close(finished=False)
            raise
    return artifacts, planned, context, timings


# A whole-split run's explainers when none are named: the three methods the study compares, and the views of
# the whole split (the slow methods, occlusion and RISE, and faithfulness are asked for by name).
WHOLE_SPLIT_DEFAULT = ("confusion", "saliency", "grad-cam", "smoothgrad", "class-maps", "confusion-maps",
                       "confidence-extremes", "method-disagreement")


def _run_planned(planned, context, seed, shown):
    import keras

    artifacts, timings = {}, {}
    computed = context.whole_split.seconds if context.whole_split is not None else {}
    for item in planned:
        keras.utils.set_random_seed(seed)  # each explainer sees the same seeded state, whatever ran before
        started = time.perf_counter()
        with shown.task(item.name):
            artifact = registry.guarded("explainers", item.name, "explain", item.explainer.explain, context,
                                        item.options)
        artifacts[item.name] = _checked(item.name, artifact)
        # In a whole-split run, a method's maps were computed before (the chunks): that time is its too.
        timings[item.name] = round(time.perf_counter() - started + computed.get(item.name, 0.0), 3)
    return artifacts, timings


def _checked(name: str, artifact) -> Artifact:
    if not isinstance(artifact, Artifact):
        raise UserError(f"explainer {name!r} returned {type(artifact).__name__}, not an Artifact",
                        registry.BROKEN_PLUGIN_HINT)
    # Names, arrays and the summary as they are now (they may change after the Artifact was made).
    registry.guarded("explainers", name, "its result", artifact.check_contents)
    return artifact


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


def _both(first, second):
    """One ``add_files`` writer out of two (the face crops and a whole split's maps.h5)."""
    return lambda staging: [*first(staging), *second(staging)]


def check_seed(seed: int) -> None:
    if not 0 <= seed < 2**32:  # what every random generator behind the explainers accepts
        raise UserError(f"--seed {seed} is out of range", "use a whole number from 0 to 4294967295")


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
    labels: str | Path | None = None,
    faces: bool = False,
    max_figures: int | None = MAX_FIGURES,
    command: str | None = None,
    preset: str | None = None,
    all_images: bool = False,
    chunk_size: int = 1024,
    maps_dtype: str = "float32",
    engine: str = "local",
    workers: int = 0,
    worker_cpus: int = 1,
) -> ExplainRun:
    """Everything ``xai-fer explain`` does. With no model/data, the bundled reference CNN and sample.
    ``data``: a path, or several image files (a list, or a glob); ``labels`` and ``faces`` as for
    :func:`xai_fer.data.load_dataset`. ``max_figures``: at most this many figures per explainer (None: all);
    the arrays keep every result and the manifest says what was left out. ``progress`` and ``preset`` as for
    :func:`run_explainers` (the CLI passes :func:`xai_fer.explain.progress.progress_for`). ``command``: the
    command line that asked for the run (the CLI passes it), recorded in the manifest.

    ``all_images``: every attribution method explains every image of the data (the split), streamed in chunks of
    ``chunk_size`` images into the report's ``maps.h5`` (``maps_dtype`` float32 or float16), computed by
    ``engine`` ("local", or "ray": ``workers`` Ray workers of ``worker_cpus`` CPUs each, 0 workers for as many as
    the cluster holds; see :mod:`xai_fer.explain.rayengine`); an interrupted run keeps its finished chunks in
    ``<out>.partial`` and the same call resumes from them (see :mod:`xai_fer.explain.wholesplit`)."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    check_seed(seed)
    check_max_figures(max_figures)
    planned = plan_explainers(explainers, options, preset)  # names and option values fail fast, before anything loads
    model_path = Path(reference.resolve(model_path)) if model_path else reference.model_path("cnn")
    data = reference.resolve(data) if data else reference.sample_path()
    sources = (data,) if isinstance(data, (str, Path)) else tuple(data)
    target = prepare_output(out_dir, overwrite, inputs=(model_path, *sources))
    whole_split = None
    if all_images:
        from .wholesplit import WholeSplit
        from .workfolder import work_folder_for

        whole_split = WholeSplit(work_folder_for(target), chunk_size, maps_dtype, engine, workers, worker_cpus)
    source = {"model_path": str(model_path), "unsafe": unsafe, "split": split, "data_format": data_format,
              "data": str(data) if isinstance(data, (str, Path)) else [str(s) for s in data],
              "labels": str(labels) if labels else None, "faces": faces}
    model = load_model(model_path, unsafe=unsafe)
    dataset = load_dataset(data, split=split, format=data_format, labels=labels, faces=faces,
                           allow_mixed_splits=False)
    with atomic.stop_signals_as_interrupt():
        # Explainers keep their results in memory: nothing touches the disk until every one has finished,
        # so an interruption while they run (most of a run's time) leaves nothing to clean up.
        artifacts, planned, context, timings = run_explainers(model, dataset, explainers, options, preprocess, seed,
                                                              progress, preset, planned, whole_split, source)

        def make_manifest():
            manifest = build_manifest(model_path, context.info, dataset, context.adapter, planned, seed, timings,
                                      context.skipped, context.scaling_choice)
            manifest["command"] = command
            manifest["preset"] = preset
            if context.renamed:
                manifest["model"]["renamed"] = {"names": context.renamed, "why": RENAMED_WHY}
            if context.whole_split is not None:
                manifest["whole_split"] = context.whole_split.describe()
            return manifest

        ordered = report_order(planned)  # the run, accuracy, attributions, faithfulness, ... (issue 17)
        artifacts = {item.name: artifacts[item.name] for item in ordered}
        before_browser = sum(report_group(item) == "accuracy" for item in ordered)
        render = functools.partial(render_index, browser=f"{BROWSER_FOLDER}/", browser_after=before_browser)
        add_files = functools.partial(write_face_crops, dataset=dataset)  # the run's own files, listed as such
        if context.whole_split is not None:  # its maps.h5 into the report (the browser reads the same datasets)
            from .wholesplit import add_report_files

            add_files = _both(add_files, functools.partial(add_report_files, context))
        try:
            manifest = write_report(target, overwrite, out_dir, artifacts, make_manifest, render, max_figures,
                                    write_extra=lambda staging: write_browser(staging / BROWSER_FOLDER,
                                                                              **context_inputs(context)),
                                    add_files=add_files)
        except BaseException:
            if context.whole_split is not None:
                context.whole_split.close(finished=False)
            raise
        if context.whole_split is not None:
            context.whole_split.close(finished=True)
    return ExplainRun(out_dir=out_dir, manifest=manifest, artifacts=artifacts)
