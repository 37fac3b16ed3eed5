"""Where a whole-split run keeps its unfinished work, so that an interrupted run resumes from its last finished
chunk, and how the finished chunks become the report's ``maps.h5``.

The work folder lies beside the report (``<out>.partial``), never in it: the report itself is written by
:func:`xai_fer.explain.output.write_report` and appears complete or not at all. In the work folder:

* ``job.json``: what the work is for (a fingerprint of model weights, data, methods, options, seed and chunking).
  A rerun with the same fingerprint resumes; any change starts the work over.
* ``chunks/NNNNNN.npz``: one file per finished chunk (every method's maps for its rows), each written under a
  temporary name and renamed (:func:`xai_fer.atomic.write_with`): a chunk file is complete or absent, even when
  the process is killed outright. HDF5 files are not safe against that, so the HDF5 file is written only once.
* ``maps.h5``: every chunk in one chunked HDF5 file, written once all chunks are done (again under a temporary
  name first); the report gets it as a hard link, and the work folder goes once the report is in place.
* ``lock``: held (``flock``) while a run works here, so two runs on one ``--out`` do not mix their chunks.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .. import atomic
from ..errors import UserError
from ..lazy import np

_MARK = "xai-fer whole-split work"
MAPS_FILE = "maps.h5"


def work_folder_for(target: Path) -> Path:
    """The work folder of the report at ``target``: beside it, named after it."""
    return target.parent / f"{target.name}.partial"


class WorkFolder:
    """The resumable state of one whole-split job (see the module docstring). Use as a context manager: it holds
    the lock while open."""

    def __init__(self, path: Path, fingerprint: str, description: dict):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.description = description
        self.started_over: str | None = None  # why earlier work here was discarded, when it was
        self._lock = None

    # Opening ----------------------------------------------------------------------------------------------

    def __enter__(self) -> WorkFolder:
        self.path.mkdir(parents=True, exist_ok=True)
        self._check_ours()
        self._take_lock()
        job = self._read_job()
        if job is not None and job.get("fingerprint") != self.fingerprint:
            self.started_over = "the earlier unfinished run here was for another model, data, method or option"
            self._clear()
        if job is None or self.started_over:
            (self.path / "chunks").mkdir(exist_ok=True)
            atomic.write_json(self.path / "job.json", {"mark": _MARK, "fingerprint": self.fingerprint,
                                                       **self.description})
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _check_ours(self) -> None:
        for entry in self.path.glob(".*.tmp-*"):  # a temp file of a process killed outright while writing
            entry.unlink(missing_ok=True)
        entries = {entry.name for entry in self.path.iterdir()} - {"lock"}  # a lock alone: a run stopped early
        if entries and (self._read_job() is None or not entries <= {"job.json", "chunks", "lock", MAPS_FILE}):
            strays = sorted(entries - {"job.json", "chunks", "lock", MAPS_FILE}) or sorted(entries)
            raise UserError(f"{self.path} holds {', '.join(strays[:3])}, which no whole-split run of xai-fer wrote "
                            "(it is where this run keeps its unfinished work)", "move it away, or pick another --out")

    def _take_lock(self) -> None:
        from .. import atomic

        handle = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._lock = atomic.lock_or_refuse(handle, f"another run is working in {self.path} (the same --out)",
                                           "wait for it to finish, or pick another --out")

    def _read_job(self) -> dict | None:
        try:
            job = json.loads((self.path / "job.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return job if isinstance(job, dict) and job.get("mark") == _MARK else None

    def _clear(self) -> None:
        shutil.rmtree(self.path / "chunks", ignore_errors=True)
        (self.path / MAPS_FILE).unlink(missing_ok=True)

    # Chunks -----------------------------------------------------------------------------------------------

    def chunk_path(self, index: int) -> Path:
        return self.path / "chunks" / f"{index:06d}.npz"

    def finished(self, count: int) -> set[int]:
        """Indices (below ``count``) of the chunks already on disk."""
        return {index for index in range(count) if self.chunk_path(index).exists()}

    def save_chunk(self, index: int, maps: dict) -> None:
        """One finished chunk: ``{method: Maps}`` as one ``.npz`` (values, per-image numbers, notes as JSON)."""
        arrays = {}
        for method, result in maps.items():
            arrays[f"{method}"] = np.asarray(result.values, dtype=np.float32)
            for key, column in result.per_image.items():
                arrays[f"{method}|{key}"] = np.asarray(column)
            arrays[f"{method}|#notes"] = np.array(json.dumps(result.notes, default=atomic.json_default))

        def write(path):
            with open(path, "wb") as handle:
                np.savez(handle, **arrays)

        atomic.write_with(self.chunk_path(index), write, suffix=".npz")

    def load_chunk(self, index: int) -> dict[str, dict]:
        """``{method: {"values": array, "per_image": {key: array}, "notes": dict}}`` of a saved chunk."""
        out: dict[str, dict] = {}
        with np.load(self.chunk_path(index), allow_pickle=False) as archive:
            for key in archive.files:
                method, _, extra = key.partition("|")
                entry = out.setdefault(method, {"values": None, "per_image": {}, "notes": {}})
                if not extra:
                    entry["values"] = archive[key]
                elif extra == "#notes":
                    entry["notes"] = json.loads(str(archive[key]))
                else:
                    entry["per_image"][extra] = archive[key]
        return out

    def drop_chunks(self) -> None:
        shutil.rmtree(self.path / "chunks", ignore_errors=True)
        (self.path / "chunks").mkdir()

    # The maps file ----------------------------------------------------------------------------------------

    @property
    def maps_path(self) -> Path:
        return self.path / MAPS_FILE

    def remove(self) -> None:
        """The work is in the report: the folder goes (the lock with it)."""
        self.__exit__()
        shutil.rmtree(self.path, ignore_errors=True)

    def remove_if_empty(self) -> None:
        """After a failure or an unfinished run: keep the folder when it holds finished chunks (the next run, in
        this process or another, resumes from them), remove it when it holds nothing worth keeping. Either way this
        run stops working in it: the lock goes."""
        self.__exit__()
        if not any((self.path / "chunks").glob("*.npz")) and not self.maps_path.exists():
            self.remove()
