"""``xai-fer explain``: load a model and data once, run the chosen explainers on a shared context, and write
all results into a directory that appears complete or not at all.

A run is described by an :class:`~xai_fer.explain.request.ExplainRequest`; :func:`run_request` carries it out in
steps: what can be checked before anything loads, the inputs and the output folder, the explainers in memory
(:func:`explain_loaded`, also the Python API's), then the report."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic, registry
from ..errors import PluginError, UserError
from ..models.introspect import RENAMED_WHY
from ..models.seen import seen_from_data
from .artifact import Artifact
from .browser import BROWSER_FOLDER, context_inputs, write_browser
from .context import ExplainContext
from .face_crops import write_face_crops
from .html import render_index
from .manifest import build_manifest
from .output import check_max_figures, prepare_output, write_report
from .plan import check_against_context, plan_explainers, report_group, report_order, validate_against_model
from .progress import as_progress
from .request import ExplainRequest, RunSettings
from .workfolder import work_folder_for


@dataclass
class ExplainRun:
    out_dir: Path | None
    manifest: dict
    artifacts: dict[str, Artifact] = field(default_factory=dict)


def build_context(model, dataset, preprocess: str = "auto", seed: int = 0, batch_size: int = 128) -> ExplainContext:
    """The shared context for a loaded model and dataset (the Python API's entry point): the model seen from the
    data (:func:`xai_fer.models.seen.seen_from_data`), which the explainers of a run then share."""
    return seen_from_data(model, dataset, preprocess, seed, batch_size, as_class=ExplainContext)


def run_explainers(model, dataset, explainers=None, options=None, preprocess="auto", seed=0, progress=None,
                   preset=None):
    """Run explainers in memory (nothing is written); returns ``(artifacts, planned, context, timings)``:
    {name: Artifact} with matplotlib figures, the planned explainers with their parsed options, the shared
    ``ExplainContext`` and {name: seconds}.

    ``options`` maps explainer name -> {key: value}, the value a Python value or the command line's string,
    e.g. {"saliency": {"indices": [0, 1, 2]}} or {"saliency": {"per_class": "2"}}. ``preset``: a named set of
    options (:mod:`xai_fer.explain.presets`, e.g. "quick") for what ``options`` leaves out. ``progress``: see
    :func:`xai_fer.explain.progress.as_progress`. A whole split (every image): :func:`run_explain` or
    :func:`xai_fer.explain_model` with ``all_images=True``."""
    run = RunSettings(explainers=explainers, options=options, preset=preset, preprocess=preprocess, seed=seed)
    explained = explain_loaded(model, dataset, run, progress)
    return explained.artifacts, explained.planned, explained.context, explained.timings


@dataclass
class Explained:
    """What the explainers of a run made, in memory: ``artifacts`` by name, the ``planned`` explainers that ran
    (with their parsed options), the shared ``context`` and each explainer's ``timings`` (seconds)."""

    artifacts: dict[str, Artifact]
    planned: list
    context: ExplainContext
    timings: dict[str, float]


def explain_loaded(model, dataset, run: RunSettings, progress=None, planned=None, whole_split=None,
                   source=None) -> Explained:
    """Run the explainers of ``run`` on a loaded model and dataset, in memory. ``planned``: what
    :func:`plan_explainers` made of ``run`` when the caller planned it already.

    ``whole_split`` (a :class:`~xai_fer.explain.wholesplit.WholeSplit`): every attribution method explains
    every image, streamed in chunks into ``maps.h5`` in its work folder (``context.whole_split`` holds it open
    afterwards; :func:`close_whole_split` closes it); the default explainers are then
    :data:`WHOLE_SPLIT_DEFAULT`. ``source``: where model and data came from, for engines that load them."""
    check_seed(run.seed)
    if whole_split is not None and not run.explainers:
        planned = None  # the whole-split defaults, not "all"
    planned = planned if planned is not None else plan_explainers(_names(run, whole_split), run.options, run.preset)
    context = build_context(model, dataset, run.preprocess, run.seed)
    context.plan = planned
    planned = _checked_against_context(planned, context, run)
    with as_progress(progress) as shown:
        context.progress = shown
        try:
            if whole_split is not None:
                from .wholesplit import run_whole_split

                run_whole_split(context, planned, whole_split, source, shown)
            artifacts, timings = _run_planned(planned, context, run.seed, shown)
        except BaseException:
            close_whole_split(context, finished=False)
            raise
    return Explained(artifacts, planned, context, timings)


def close_whole_split(context, finished: bool) -> None:
    """Close a whole split's ``maps.h5`` and release its work folder (``WholeSplitState.close``); nothing to do in
    an ordinary run."""
    if context.whole_split is not None:
        context.whole_split.close(finished=finished)


def _names(run: RunSettings, whole_split) -> list[str] | None:
    """The explainers asked for; in a whole split with none named, :data:`WHOLE_SPLIT_DEFAULT`."""
    if whole_split is not None and not run.explainers:
        return [name for name in WHOLE_SPLIT_DEFAULT if name in registry.explainers()]
    return run.explainers


def _checked_against_context(planned, context, run: RunSettings) -> list:
    if run.explainers:
        validate_against_model(planned, context.info)
        check_against_context(planned, context)
        return planned
    # "All" means all that apply: activation-max has nothing to show on a model without conv layers, nor
    # confusion on unlabelled data. An explainer given options was asked for, and is never skipped.
    return _applicable(planned, context, asked=set(run.options or {}))  # each one checked, as above


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


def run_explain(model_path=None, data=None, out_dir="xai-fer-out", explainers=None, options=None,
                **settings) -> ExplainRun:
    """Everything ``xai-fer explain`` does: :func:`run_request` for the :class:`ExplainRequest` of these
    arguments. ``settings``: any other setting of the request by name, in its group:

    * what to read (:class:`ReadSettings`): ``split``, ``labels``, ``faces``, ``data_format``, ``unsafe``;
      ``model_path`` and ``data`` default to the bundled reference CNN and sample;
    * what to run (:class:`RunSettings`): ``preset``, ``preprocess``, ``seed``;
    * where to write (:class:`WriteSettings`): ``overwrite``, ``max_figures``, ``command``, ``progress``;
    * every image (:class:`WholeSplitSettings`): ``all_images``, ``chunk_size``, ``maps_dtype``, ``engine``,
      ``workers``, ``worker_cpus``.

    ``xai_fer.run_explain("model.keras", "test.csv", "out", all_images=True, chunk_size=512)``."""
    request = ExplainRequest.from_settings({"model": model_path, "data": data, "out_dir": out_dir,
                                            "explainers": explainers, "options": options, **settings})
    return run_request(request)


def run_request(request: ExplainRequest) -> ExplainRun:
    """Carry out an explain run: check what can be checked before anything loads, load the model and data, run
    the explainers in memory, then write the report, which appears complete or not at all.

    With ``request.whole_split.all_images``, every attribution method explains every image of the data (the
    split), streamed in chunks into the report's ``maps.h5``; an interrupted run keeps its finished chunks in
    ``<out>.partial`` and the same request resumes from them (see :mod:`xai_fer.explain.wholesplit`)."""
    import matplotlib

    matplotlib.use("Agg")
    planned = _plan_before_loading(request)
    inputs = _prepare(request)
    read = request.read
    model, dataset = read.load()
    with atomic.stop_signals_as_interrupt():
        # Explainers keep their results in memory: nothing touches the disk until every one has finished,
        # so an interruption while they run (most of a run's time) leaves nothing to clean up.
        explained = explain_loaded(model, dataset, request.run, request.write.progress, planned,
                                   inputs.whole_split, read.source(inputs.model_path, inputs.data))
        # The report's order: the run, accuracy, attributions, faithfulness, ... (issue 17).
        explained.artifacts = {item.name: explained.artifacts[item.name] for item in report_order(explained.planned)}
        manifest = _write(request, inputs, explained)
    return ExplainRun(out_dir=Path(request.write.out_dir), manifest=manifest, artifacts=explained.artifacts)


def _plan_before_loading(request: ExplainRequest) -> list:
    """The seed, ``max_figures``, explainer names and option values fail fast, before anything loads."""
    check_seed(request.run.seed)
    check_max_figures(request.write.max_figures)
    run = request.run
    return plan_explainers(run.explainers, run.options, run.preset)


@dataclass
class _Inputs:
    """A request's model file and data resolved, where its report goes, and its whole split (or None)."""

    model_path: Path
    data: object
    target: Path
    whole_split: object


def _prepare(request: ExplainRequest) -> _Inputs:
    """Resolve the model and data (the bundled ones by default) and refuse an output folder the report may not
    go to, before anything loads."""
    model_path, data = request.read.model_path(), request.read.data_source()
    sources = (data,) if isinstance(data, (str, Path)) else tuple(data)
    target = prepare_output(Path(request.write.out_dir), request.write.overwrite, inputs=(model_path, *sources))
    return _Inputs(model_path, data, target, request.whole_split.working_in(work_folder_for(target)))


def _write(request: ExplainRequest, inputs: _Inputs, explained: Explained) -> dict:
    """Write the report (figures, arrays, the image browser, the run's own files, manifest and index.html) and
    close a whole split's work folder: removed once the report holds its maps, kept when writing failed."""
    context, write = explained.context, request.write
    before_browser = sum(report_group(item) == "accuracy" for item in report_order(explained.planned))
    render = functools.partial(render_index, browser=f"{BROWSER_FOLDER}/", browser_after=before_browser)
    try:
        manifest = write_report(inputs.target, write.overwrite, Path(write.out_dir), explained.artifacts,
                                lambda: _manifest(request, inputs, explained), render, write.max_figures,
                                write_extra=lambda staging: write_browser(staging / BROWSER_FOLDER,
                                                                          **context_inputs(context)),
                                add_files=_run_files(context))
    except BaseException:
        close_whole_split(context, finished=False)
        raise
    close_whole_split(context, finished=True)
    return manifest


def _manifest(request: ExplainRequest, inputs: _Inputs, explained: Explained) -> dict:
    context = explained.context
    manifest = build_manifest(inputs.model_path, context.info, context.dataset, context.adapter, explained.planned,
                              request.run.seed, explained.timings, context.skipped, context.scaling_choice)
    manifest["command"] = request.write.command
    manifest["preset"] = request.run.preset
    if context.renamed:
        manifest["model"]["renamed"] = {"names": context.renamed, "why": RENAMED_WHY}
    if context.whole_split is not None:
        manifest["whole_split"] = context.whole_split.describe()
    return manifest


def _run_files(context):
    """The run's own files in the report (``add_files`` of :func:`write_report`): the face crops, and a whole
    split's maps.h5 (the browser reads the same datasets)."""
    add_files = functools.partial(write_face_crops, dataset=context.dataset)
    if context.whole_split is None:
        return add_files
    from .wholesplit import add_report_files

    return _both(add_files, functools.partial(add_report_files, context))
