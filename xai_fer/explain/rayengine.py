"""Whole-split chunks on Ray (``--engine ray``): the same chunks as the local engine, on a pool of Ray workers.

The chunk ranges of an :class:`~xai_fer.explain.wholesplit.AttributionJob` become the rows of a Ray Dataset, one
row per block, and ``map_batches`` sends them one at a time through a pool of actors (:class:`ChunkWorker`).
Each actor loads the model and the data once, from the job's sources (``context_from_job``, so the model and data
paths must be readable on every node), and computes a chunk per call with the local engine's ``chunk_maps``.
A chunk's maps depend only on the seed and its rows, so any worker, in any order, gives the local engine's maps.
Results stream back to the run, which saves each finished chunk in its work folder as the local engine's are.

Failures: an actor whose process dies is restarted by Ray (``max_restarts``) and the chunk it was computing is
sent again (``max_task_retries``), so the run completes with the same maps. A chunk that kills its worker every
time (out of memory) ends the run after :data:`MAX_RETRIES` restarts; its finished chunks are kept, and the run
resumes from them.

Where it runs: ``ray.init()`` joins the cluster named by ``RAY_ADDRESS`` or started with ``ray start`` on this
machine, else starts Ray on this machine only (and shuts it down afterwards). Ray is an optional extra:
``pip install "xai-fer[ray]"``.
"""

from __future__ import annotations

import inspect
import logging
import os
import pickle
import warnings
from pathlib import Path

from ..errors import UserError
from ..lazy import np

MAX_RETRIES = 3  # restarts of one worker, and tries of one chunk, before the run stops with an error
_INSTALL_HINT = 'pip install "xai-fer[ray]" (on every node of the cluster too)'


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError("--engine ray needs Ray Data, which is not installed", _INSTALL_HINT) from None
    return ray


class ChunkWorker:
    """One Ray worker: builds its context once, from the job, then computes the chunk of each row it is given.
    ``threads``: the CPUs Ray reserved for it, which TensorFlow is held to so that workers on one node do not
    fight over cores."""

    def __init__(self, job, threads: int):
        limit_threads(threads)
        from ..quiet import quiet_for_api
        from .wholesplit import context_from_job

        quiet_for_api()
        self.job = job
        self.context = context_from_job(job)

    def __call__(self, batch: dict) -> dict:
        from .wholesplit import chunk_maps

        payloads = []
        for start, stop in zip(batch["start"], batch["stop"], strict=True):
            seconds: dict[str, float] = {}
            maps = chunk_maps(self.context, self.job, int(start), int(stop), seconds)
            payloads.append(pickle.dumps((maps, seconds), protocol=pickle.HIGHEST_PROTOCOL))
        return {"index": np.asarray(batch["index"]), "payload": np.array(payloads, dtype=object)}


def limit_threads(threads: int) -> None:
    """TensorFlow's thread pools held to ``threads`` (only possible before TensorFlow starts in this process)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(threads, 2)))
    except RuntimeError:  # TensorFlow already started in this process (a local-mode test): leave it as it is
        pass


def portable_job(job):
    """The job with its sources as absolute paths (a worker's working folder is not the run's), refused when
    it was made from a model in memory: a worker loads the model from its file."""
    import dataclasses

    source = dict(job.source)
    if not source.get("model_path") or not source.get("data"):
        raise UserError("--engine ray loads the model and data from their files on each worker, and this run has "
                        "them only in memory", "give run_explain a model file and data path, or use engine='local'")

    def absolute(path):
        return str(Path(path).resolve()) if Path(path).exists() else str(path)

    source["model_path"] = absolute(source["model_path"])
    data = source["data"]
    source["data"] = absolute(data) if isinstance(data, str) else [absolute(item) for item in data]
    if source.get("labels"):
        source["labels"] = absolute(source["labels"])
    return dataclasses.replace(job, source=source)


class RayEngine:
    """Chunks computed by ``workers`` Ray actors of ``worker_cpus`` CPUs each (``workers`` 0: as many as the
    cluster's CPUs hold, at most one per chunk). ``seconds``: time the workers spent per method, summed."""

    name = "ray"

    def __init__(self, workers: int = 0, worker_cpus: int = 1):
        self.workers = workers
        self.worker_cpus = worker_cpus
        self.seconds: dict[str, float] = {}
        self.pool_size: int | None = None

    def run(self, job, chunk_ranges):
        """``(chunk_index, {method: Maps})`` for each ``(index, start, stop)`` of ``chunk_ranges``, as the workers
        finish them (in any order)."""
        chunk_ranges = list(chunk_ranges)
        if not chunk_ranges:
            return
        job = portable_job(job)
        ray = import_ray()
        started_here = connect(ray)
        try:
            yield from self._stream(ray, job, chunk_ranges)
        except ray.exceptions.RayError as error:
            raise worker_error(error) from None
        finally:
            if started_here:
                ray.shutdown()

    def _stream(self, ray, job, chunk_ranges):
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run reports its own progress, chunk by chunk
        # Ray Data's notes on each execution (its plan, where its logs are, that the bars are off) are for
        # Ray's users, not ours: its errors still show.
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        self.pool_size = pool_size_for(ray, self.workers, self.worker_cpus, len(chunk_ranges))
        rows = [{"index": index, "start": start, "stop": stop} for index, start, stop in chunk_ranges]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
            results = dataset.map_batches(
                ChunkWorker, batch_size=1, fn_constructor_kwargs={"job": job, "threads": self.worker_cpus},
                compute=ray.data.ActorPoolStrategy(size=self.pool_size, max_tasks_in_flight_per_actor=1),
                num_cpus=self.worker_cpus, **retry_limits(dataset.map_batches))
        for row in results.iter_rows():
            maps, seconds = pickle.loads(row["payload"])
            for name, spent in seconds.items():
                self.seconds[name] = self.seconds.get(name, 0.0) + spent
            yield int(row["index"]), maps


def retry_limits(map_batches) -> dict:
    """``max_restarts`` and ``max_task_retries`` for the workers, where this Ray takes them (up to Ray 2.63, as
    extra keyword arguments of ``map_batches``). A later Ray keeps its own defaults: a dead worker is restarted
    and its chunk retried without limit."""
    takes_extra = any(parameter.kind is inspect.Parameter.VAR_KEYWORD
                      for parameter in inspect.signature(map_batches).parameters.values())
    return {"max_restarts": MAX_RETRIES, "max_task_retries": MAX_RETRIES} if takes_extra else {}


def connect(ray) -> bool:
    """Join the running cluster (``RAY_ADDRESS``, or ``ray start`` on this machine), else start Ray here.
    True when this call connected this process to Ray (the caller then disconnects it with ``ray.shutdown()``,
    which stops Ray too where this call started it, and never a cluster started with ``ray start``)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="error")  # its notes are not ours
    except ConnectionError as error:
        address = os.environ.get("RAY_ADDRESS")
        raise UserError(f"--engine ray cannot reach the Ray cluster{f' at RAY_ADDRESS={address}' if address else ''}"
                        f" ({error})", "check that it runs (ray status), or unset RAY_ADDRESS to run Ray on this "
                        "machine") from None
    return True


def pool_size_for(ray, workers: int, worker_cpus: int, chunks: int) -> int:
    """The workers asked for (0: as many as the cluster's CPUs hold), never more than there are chunks."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if worker_cpus > cpus:
        raise UserError(f"--worker-cpus {worker_cpus} is more than the Ray cluster's {cpus} CPUs",
                        f"use --worker-cpus {cpus} or fewer")
    return max(1, min(chunks, workers or cpus // worker_cpus))


def worker_error(error) -> Exception:
    """A worker's own refusal (a model or data path it cannot read) as that UserError, named as a worker's;
    anything else as it came. A worker that fails while it starts reaches us as Ray's ``ActorDiedError``, whose
    only trace of the refusal is its traceback's text."""
    import re

    cause = error
    for _ in range(8):
        if isinstance(cause, UserError):
            return UserError(f"on a Ray worker: {cause.message}", cause.hint)
        cause = getattr(cause, "cause", None) or cause.__cause__
        if cause is None:
            break
    refusal = re.search(r"xai_fer\.errors\.(?:UserError|PluginError): (.+)", str(error))
    return UserError(f"on a Ray worker: {refusal.group(1).strip()}") if refusal else error
