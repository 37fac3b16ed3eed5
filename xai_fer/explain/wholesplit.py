"""Whole splits, streamed: every attribution method of a run over every image, chunk by chunk, into ``maps.h5``.

``xai-fer explain --all-images`` (``run_explain(all_images=True)``) runs here. The rows are cut into chunks; an
*engine* computes each chunk's maps for every method (:class:`LocalEngine` in this process; another engine, such
as a Ray one, may run chunks elsewhere: it gets the same picklable :class:`AttributionJob` and gives the same
maps). Each finished chunk is saved in a work folder beside the report (:mod:`xai_fer.explain.workfolder`), so
an interrupted run resumes from its last finished chunk; once all are done they become one chunked HDF5 file,
and the run's methods are recorded in ``context.attributions`` with their maps as HDF5 datasets, read a few rows
at a time by the dataset views. Memory stays bounded by the chunk size, whatever the number of images.

Seeding: a chunk's maps depend only on the seed and its rows (a method's generator restarts for every batch
of ``batch_size`` images; chunks are whole batches), never on which chunks ran before, so any engine running
chunks in any order gives the same maps, and so does an ordinary run on the same rows from a batch boundary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import registry
from ..errors import UserError
from ..lazy import np
from .attribution import (
    Attribution,
    AttributionResult,
    Maps,
    _score_note,
    attribution_figures,
    display_maps,
    target_classes,
)
from .gradients import threshold_masks

ENGINES = ("local", "ray")  # ray: xai_fer/explain/rayengine.py (the optional extra "ray")


@dataclass(frozen=True)
class WholeSplit:
    """How a whole-split run works: where its unfinished work lives (``work``: a folder beside the report),
    images per chunk (rounded up to whole batches), how maps are stored, and which engine computes chunks."""

    work: Path
    chunk_size: int = 1024
    maps_dtype: str = "float32"
    engine: str = "local"
    workers: int = 0  # --engine ray: Ray workers (0: as many as the cluster's CPUs hold)
    worker_cpus: int = 1  # --engine ray: CPUs each worker reserves and lets TensorFlow use

    def __post_init__(self):
        if not 1 <= self.chunk_size <= 65536:
            raise UserError(f"--chunk-size {self.chunk_size} must be in 1..65536", "use e.g. 1024")
        if self.maps_dtype not in ("float32", "float16"):
            raise UserError(f"--maps-dtype {self.maps_dtype!r} must be float32 or float16")
        if self.engine not in ENGINES:
            raise UserError(f"--engine {self.engine!r} is not available", f"use one of {', '.join(ENGINES)}")
        if not 0 <= self.workers <= 100000 or not 1 <= self.worker_cpus <= 1024:
            raise UserError(f"--workers {self.workers} / --worker-cpus {self.worker_cpus} out of range",
                            "use --workers 0 (as many as fit) or more, and --worker-cpus 1 or more")


@dataclass(eq=False)
class AttributionJob:
    """Everything needed to compute any chunk's maps, picklable: the methods and their parsed options, each
    method's target class per row, the seed, batching and chunking, the input scaling the run chose, and where the
    model and data come from (for a worker that loads them itself; None when they were given in memory)."""

    methods: tuple  # ((explainer name, parsed options), ...)
    targets: dict  # explainer name -> (N,) int64 target class per row
    seed: int
    batch_size: int
    chunk_size: int
    num_rows: int
    scaling: str
    source: dict = field(default_factory=dict)  # model_path, unsafe, data, split, data_format, labels, faces

    def chunk_ranges(self) -> list[tuple[int, int, int]]:
        """Every chunk as ``(index, start, stop)``."""
        return [(k, start, min(start + self.chunk_size, self.num_rows))
                for k, start in enumerate(range(0, self.num_rows, self.chunk_size))]


def context_from_job(job: AttributionJob):
    """A worker's own context, built from the job's sources with the scaling the run chose (no new search)."""
    from .pipeline import build_context
    from .request import ReadSettings

    if not job.source.get("model_path"):
        raise ValueError("this job was made from a model in memory: give the engine the run's context")
    model, dataset = ReadSettings.from_source(job.source).load()
    return build_context(model, dataset, job.scaling, job.seed, job.batch_size)


def chunk_maps(context, job: AttributionJob, start: int, stop: int, seconds: dict | None = None) -> dict:
    """``{method: Maps}`` for rows ``start..stop-1``: each method's ``Attribution.compute`` on them."""
    rows = np.arange(start, stop, dtype=np.int64)
    out = {}
    for name, options in job.methods:
        began = time.perf_counter()
        method = registry.lookup("explainers", name)
        out[name] = method.compute(context, rows, np.asarray(job.targets[name][start:stop]), options)
        if seconds is not None:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - began
    return out


class LocalEngine:
    """Chunks computed one after the other in this process, with the run's context (or one built from the job).
    ``seconds``: time spent per method."""

    name = "local"

    def __init__(self, context=None):
        self.context = context
        self.seconds: dict[str, float] = {}

    def run(self, job: AttributionJob, chunk_ranges):
        """``(chunk_index, {method: Maps})`` for each ``(index, start, stop)`` of ``chunk_ranges``, as computed."""
        if self.context is None:
            self.context = context_from_job(job)
        for index, start, stop in chunk_ranges:
            yield index, chunk_maps(self.context, job, start, stop, self.seconds)


def make_engine(name: str, context, settings: WholeSplit | None = None):
    if name == "local":
        return LocalEngine(context)
    if name == "ray":
        from .rayengine import RayEngine

        return RayEngine(settings.workers if settings else 0, settings.worker_cpus if settings else 1)
    raise UserError(f"--engine {name!r} is not available", f"use one of {', '.join(ENGINES)}")


# ---------------------------------------------------------------------------------------------------------
# The stage of a run that computes every map.


@dataclass
class WholeSplitState:
    """A whole-split run in progress: its work folder (locked), the open ``maps.h5``, what was computed."""

    settings: WholeSplit
    work: object  # WorkFolder
    maps_file: object  # h5py.File, read-only
    job: AttributionJob
    chunks: int
    resumed_chunks: int
    seconds: dict  # per method, computing its maps (as the engine measured them)
    stage_seconds: float = 0.0  # the whole stage: chunks, saving them, writing maps.h5
    workers: int | None = None  # the engine's pool of workers, where it has one (Ray)

    def describe(self) -> dict:
        return {"maps_file": "maps.h5", "images": self.job.num_rows, "chunk_size": self.job.chunk_size,
                "seconds": round(self.stage_seconds, 3),
                "chunks": self.chunks, "resumed_chunks": self.resumed_chunks, "engine": self.settings.engine,
                **({"workers": self.workers} if self.workers else {}),
                "maps_dtype": self.settings.maps_dtype, "methods": [name for name, _ in self.job.methods],
                **({"started_over": self.work.started_over} if self.work.started_over else {})}

    def close(self, finished: bool) -> None:
        """Close ``maps.h5`` and release the work folder: removed once the report holds the maps (``finished``),
        else kept, unlocked, when it holds finished chunks (the same process can resume it: a notebook rerunning
        the call)."""
        self.maps_file.close()
        self.work.remove() if finished else self.work.remove_if_empty()


def attribution_items(planned) -> list:
    return [item for item in planned if isinstance(item.explainer, Attribution)]


def make_job(context, planned, settings: WholeSplit, source: dict) -> AttributionJob:
    items = attribution_items(planned)
    if not items:
        raise UserError("--all-images explains with attribution methods, and this run has none",
                        "add one, e.g. -e saliency -e grad-cam")
    for item in items:
        if item.options.select != "auto" or item.options.indices:
            raise UserError(f"{item.name}: --all-images explains every image, so select/indices do not apply",
                            f"drop -o {item.name}.select / {item.name}.indices, or drop --all-images")
    for item in planned:  # a reader of every map with a per-image cost (faithfulness) would run for days
        if getattr(item.explainer, "reads_attributions", False) and getattr(item.options, "max_images", None) == 0:
            raise UserError(f"{item.name} would score every map of the whole split (max_images=0)",
                            f"give it a number of images: -o {item.name}.max_images=200")
    rows = np.arange(len(context.dataset), dtype=np.int64)
    targets = {item.name: target_classes(context, item.options, rows, item.name) for item in items}
    batches = [item.options.batch_size or context.batch_size for item in items]
    whole = math.lcm(*batches)  # a chunk is whole batches of every method, so seeding matches an ordinary run
    chunk = max(whole, -(-settings.chunk_size // whole) * whole)
    return AttributionJob(methods=tuple((item.name, item.options) for item in items), targets=targets,
                          seed=context.seed, batch_size=context.batch_size, chunk_size=chunk, num_rows=len(rows),
                          scaling=context.adapter.scaling, source=dict(source))


def fingerprint(context, job: AttributionJob, settings: WholeSplit) -> str:
    """What the maps depend on: the model's weights, the images and labels, the input adaptation, the methods,
    their options and targets, the seed, the chunking and the stored precision (not the options that only say
    what the report shows, such as grid_rows: changing them resumes)."""
    digest = hashlib.sha256()
    for weight in context.model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)))
    digest.update(np.ascontiguousarray(context.dataset.images))  # read in place: no copy of the images
    if context.labels is not None:
        digest.update(np.asarray(context.labels, dtype=np.int64).tobytes())
    for name, targets in job.targets.items():
        digest.update(name.encode() + np.asarray(targets, dtype=np.int64).tobytes())
    shown_only = {"select", "indices", "per_class", "count", "threshold_percentile", "image_figures", "grid_rows"}
    described = {"methods": [[name, {key: value for key, value in dataclasses.asdict(options).items()
                                     if key not in shown_only}] for name, options in job.methods],
                 "seed": job.seed, "batch_size": job.batch_size, "chunk_size": job.chunk_size,
                 "adapter": context.adapter.describe(), "dtype": settings.maps_dtype}
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def run_whole_split(context, planned, settings: WholeSplit, source: dict | None = None, progress=None):
    # ``progress``: a xai_fer.explain.progress.Progress (one task: the chunks); None shows nothing.
    """Compute every planned attribution method's maps on every image (resuming finished chunks), write
    ``maps.h5`` in the work folder, and record the methods in ``context.attributions`` with the HDF5 datasets as
    their maps. Sets and returns ``context.whole_split`` (a :class:`WholeSplitState`)."""
    from .mapsfile import open_maps, write_maps_file
    from .progress import NoProgress
    from .workfolder import WorkFolder

    job = make_job(context, planned, settings, source or {})
    ranges = job.chunk_ranges()
    description = {"images": job.num_rows, "chunk_size": job.chunk_size, "chunks": len(ranges),
                   "methods": [name for name, _ in job.methods]}
    started = time.perf_counter()
    work = WorkFolder(settings.work, fingerprint(context, job, settings), description).__enter__()
    try:
        done = work.finished(len(ranges))
        pending = [entry for entry in ranges if entry[0] not in done]
        engine = make_engine(settings.engine, context, settings)
        if pending and not work.maps_path.exists():
            shown = progress if progress is not None else NoProgress()
            label = f"{', '.join(description['methods'])}: {job.num_rows:,} images in chunks"
            with shown.task(label, total=len(ranges)) as task:
                task.advance(len(done))
                for index, maps in engine.run(job, pending):
                    work.save_chunk(index, maps)
                    task.advance()
        if not work.maps_path.exists():
            methods = {name: registry.lookup("explainers", name) for name, _ in job.methods}
            stored = ((start, stop, work.load_chunk(index)) for index, start, stop in ranges)
            write_maps_file(work.maps_path, context, np.arange(job.num_rows), methods, job.targets, stored,
                            settings.maps_dtype)
            work.drop_chunks()  # all in maps.h5 now: the disk holds the maps once
        handle = open_maps(work.maps_path)
    except BaseException:
        work.remove_if_empty()
        raise
    for name, options in job.methods:
        method = registry.lookup("explainers", name)
        context.attributions[name] = AttributionResult(
            method, options, np.arange(job.num_rows, dtype=np.int64), np.asarray(job.targets[name]),
            handle[f"maps/{name}"], method.signed, context.differentiated_score(options.score))
    context.whole_split = WholeSplitState(settings, work, handle, job, len(ranges), len(done),
                                          getattr(engine, "seconds", {}), time.perf_counter() - started,
                                          getattr(engine, "pool_size", None))
    return context.whole_split


# ---------------------------------------------------------------------------------------------------------
# What an attribution method's section shows in a whole-split run.


def stored_extras(context, name: str) -> dict:
    group = context.whole_split.maps_file.get(f"extra/{name}")
    return {} if group is None else {key: np.asarray(group[key]) for key in group}


def explain_stored(method: Attribution, context, options):
    """The method's section of a whole-split report: its maps are already in ``maps.h5``; the section shows the
    first ``grid_rows`` images (no per-image figures: the maps file holds every map) and summarises."""
    from .artifact import Artifact

    result = context.attributions[method.name]
    count = min(options.grid_rows, len(result.rows))
    rows, targets = result.rows[:count], result.targets[:count]
    extras = stored_extras(context, method.name)
    shown = display_maps(result.maps[:count], method.signed)
    masks, thresholds = threshold_masks(shown, options.threshold_percentile)
    per_image = method._per_image(context, rows, targets, shown, masks, thresholds,
                                  {key: column[:count] for key, column in extras.items()})
    figure_options = dataclasses.replace(options, image_figures=False)
    figures = attribution_figures(method.name, method.figure_label or method.name, context.dataset.images, rows,
                                  shown, masks, per_image, figure_options)
    notes = json.loads(context.whole_split.maps_file["maps"].attrs.get(f"notes/{method.name}", "{}"))
    summary = {
        "method": method.name,
        "selection": {"mode": "all", "num_images": len(result.rows)},
        "maps_file": f"maps.h5 (dataset maps/{method.name}, one map per image)",
        "target": options.target,
        "score": options.score,
        "score_note": _score_note(context, options, result.score),
        "threshold_percentile": options.threshold_percentile,
        "map": method.map_description or method.description,
        "signed": method.signed,
        "map_shape": list(result.maps.shape[1:]),
        "num_images": len(result.rows),
        "grid_rows": count,
        **notes,
        **method.summarise(context, options, Maps(result.maps, extras)),
        "images": per_image,
    }
    arrays = {"indices": result.rows, "target_classes": result.targets, **extras}
    return Artifact(figures=figures, arrays=arrays, summary=summary)


# ---------------------------------------------------------------------------------------------------------
# The run's own files in the report.


def add_report_files(context, staging: Path) -> list[str]:
    """Put ``maps.h5`` into the report being staged (a hard link to the work folder's: no copy of a large file
    where the file system allows it). Returns its path relative to the report. (The image browser, written for
    every report by the pipeline, reads the same HDF5 datasets through ``context.attributions``.)"""
    import os
    import shutil

    from .workfolder import MAPS_FILE

    state = context.whole_split
    try:
        os.link(state.work.maps_path, staging / MAPS_FILE)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copyfile(state.work.maps_path, staging / MAPS_FILE)
    return [MAPS_FILE]
