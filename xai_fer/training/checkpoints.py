"""Per-epoch checkpoints that survive being killed at any instant, and the best-validation-loss weights.

Layout of ``OUT/checkpoints``: ``epoch-NNN.keras`` (training model with optimizer state), ``best-NNN.keras``
(the model with the lowest validation loss so far, from epoch NNN), ``average-NNN.npz`` (the running weight
average up to epoch NNN, when the run averages weights: see ``averaging.py``) and ``state.json``. Every file is written
under a hidden temporary name and renamed into place (so no visible ``.keras`` is ever truncated), and
``state.json`` is written last: it names the files to resume from, so a kill between two writes leaves the
previous consistent state in charge. Files it no longer names are deleted afterwards, and leftovers of a
killed run (temporary files, files written after the last ``state.json``) are cleaned up on ``--resume``.

A run folder is untrusted input (it may come from another machine, or have been edited): every file name that
``state.json`` gives must be one this store writes (``epoch-NNN.keras`` ...), a bare name in ``checkpoints/``
that does not lead outside the run through a link, or the run is refused in one line. So nothing outside
``--out`` is ever loaded or deleted on the say-so of a run's own files.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from .. import atomic
from ..errors import UserError, reason
from ..limits import CONFIG_BYTES, MODEL_BYTES
from ..safe_files import check_npz
from .averaging import WeightAverage
from .state_schema import TAMPERED as _TAMPERED
from .state_schema import check_state

_OURS = re.compile(r"^((epoch|best)-\d+\.keras|average-\d+\.npz)$")
# What each name in state.json may be: a file of this run, by the pattern it is written under.
_NAMES = {"checkpoint": re.compile(r"^epoch-\d+\.keras$"), "best": re.compile(r"^best-\d+\.keras$"),
          "average": re.compile(r"^average-\d+\.npz$")}


class CheckpointStore:
    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir) / "checkpoints"
        self.state_path = self.dir / "state.json"
        self._lock = None

    def exists(self) -> bool:
        return self.state_path.exists()

    def read_state(self) -> dict:
        """``state.json``, checked: the names it gives are files of this run (see the module's docstring), the
        values the trainer relies on have their types."""
        self.check_inside(self.state_path, "the run's state")
        CONFIG_BYTES.check(self.state_path.stat().st_size, str(self.state_path))
        try:
            state = json.loads(self.state_path.read_text())
        except RecursionError:  # JSON nested thousands deep: no state this store writes
            raise UserError(f"cannot read {self.state_path} (nested too deep)", _TAMPERED) from None
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {self.state_path} ({exc})", "start a new run with another --out") from None
        check_state(state, self.state_path)  # every key the trainer reads: type and range
        for key, pattern in _NAMES.items():
            name = state.get(key)
            if name is not None and not (isinstance(name, str) and pattern.match(name)):
                raise UserError(f"{self.state_path}: {key!r} names {name!r}, not a file this run writes in "
                                f"{self.dir.name}/", _TAMPERED)
        return state

    def member(self, name: str, what: str) -> Path:
        """``checkpoints/NAME`` (a name from a checked state), refused if a link leads it outside the run."""
        path = self.dir / name
        self.check_inside(path, what)
        return path

    def check_inside(self, path: Path, what: str) -> None:
        """Refuse ``path`` (``checkpoints/`` or a file in it) when it, or ``checkpoints/`` itself, is a link that
        leads outside the run folder, or when a file is no regular file (a FIFO would block every read)."""
        run = self.dir.parent.resolve()
        for step in (self.dir, path):
            real = step.resolve()
            if real != run and run not in real.parents:
                raise UserError(f"{step} ({what}) is a link that leads outside the run folder {self.dir.parent} "
                                f"(to {real})", _TAMPERED)
        if path != self.dir and path.exists() and not path.is_file():
            raise UserError(f"{path} ({what}) is not a regular file", _TAMPERED)

    @property
    def best_path(self) -> Path:
        """The best model named by the current state."""
        name = self.read_state().get("best") if self.exists() else None
        if name is None:
            raise UserError(f"{self.state_path} names no best epoch's model", _TAMPERED)
        return self.member(name, "the best epoch's model")

    def lock(self) -> None:
        """Hold an exclusive lock on this run until the process exits (the kernel drops it on any death, even
        SIGKILL), so that two processes never write the same checkpoints."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no guard
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.check_inside(self.dir / ".lock", "the run's lock")
        try:  # never through a link: opening one for writing would create (or lock) a file elsewhere
            handle = os.fdopen(os.open(self.dir / ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                                       0o666), "a")  # kept open (and locked) for the life of the run
        except OSError as exc:
            raise UserError(f"cannot lock {self.dir / '.lock'} ({exc.strerror})", _TAMPERED) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise UserError(f"another process is training in {self.dir.parent}",
                            "wait for it to finish (or stop it) before resuming") from None
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def clean(self) -> list[str]:
        """Delete what a killed run left behind: temporary files and checkpoints that ``state.json`` does not
        name. Returns the names deleted."""
        if not self.dir.is_dir():
            return []
        self.check_inside(self.dir, "the run's checkpoints")  # a link to another folder: delete nothing there
        state = self.read_state() if self.exists() else {}
        keep = {state.get("checkpoint"), state.get("best"), state.get("average")}
        removed = []
        for path in self.dir.iterdir():
            stale_temp = path.name.startswith(".") and ".tmp-" in path.name
            if not (path.is_symlink() or path.is_file()):  # a folder or special file: never ours to delete
                if _OURS.match(path.name):  # and a later checkpoint could not be renamed onto it
                    raise UserError(f"{path} is not a regular file but has the name of a checkpoint", _TAMPERED)
                continue
            if stale_temp or (_OURS.match(path.name) and path.name not in keep):  # a link: only the link goes
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return sorted(removed)

    def read_average(self) -> WeightAverage:
        """The running weight average the current state names (empty when the run averages nothing yet)."""
        name = self.read_state().get("average") if self.exists() else None
        if not name:
            return WeightAverage()
        path = self.member(name, "the running weight average")
        try:
            check_npz(path, None, MODEL_BYTES)  # declared sizes first, as for any .npz
            with np.load(path, allow_pickle=False) as arrays:
                return WeightAverage.from_arrays(arrays)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # missing, truncated, not ours
            raise UserError(f"cannot read {path} ({exc})",
                            f"copy the run's {name} next to its state.json, or start a new run") from None

    def save(self, train_model, base_model, epoch: int, history: dict, config: dict, extra: dict,
             average: WeightAverage | None = None) -> None:
        """Write epoch ``epoch``'s checkpoint (and its best model if the validation loss is the lowest so far,
        and the running weight average when given), then the state that names them."""
        self.dir.mkdir(parents=True, exist_ok=True)
        state = self.read_state() if self.exists() else {"best_val_loss": math.inf, "best_epoch": None}
        stale = []
        val_loss = history["val_loss"][-1]
        if val_loss < state["best_val_loss"]:
            best = f"best-{epoch:03d}.keras"
            atomic.save_keras(base_model, self.dir / best)
            stale.append(state.get("best"))
            state.update(best_val_loss=float(val_loss), best_epoch=epoch, best=best)
        checkpoint = f"epoch-{epoch:03d}.keras"
        atomic.save_keras(train_model, self.dir / checkpoint)
        stale.append(state.get("checkpoint"))
        if average is not None and average.epochs:
            name = f"average-{epoch:03d}.npz"
            atomic.write_with(self.dir / name, lambda tmp: np.savez(tmp, **average.to_arrays()))
            stale.append(state.get("average"))
            state["average"] = name
        state.update(epoch=epoch, checkpoint=checkpoint, history=history, config=config, **extra)
        atomic.write_json(self.state_path, state)
        for name in stale:
            if name and name not in (checkpoint, state.get("best"), state.get("average")):
                (self.dir / name).unlink(missing_ok=True)


def check_run_folder(out_dir: Path, resume: bool) -> CheckpointStore:
    """Refuse an ``--out`` that cannot take this run (cheap: the CLI calls it before reading the data)."""
    out_dir = Path(out_dir)
    atomic.check_path_length(out_dir)  # first: a name too long cannot even be looked up
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a directory", "pick another --out")
    store = CheckpointStore(out_dir)
    if resume and not store.exists():
        raise UserError(f"no interrupted run in {out_dir} (no checkpoints/state.json) to resume or finish",
                        "start the run without --resume / --finish, or point --out at the run's folder")
    if not resume and (store.exists() or (out_dir / "model.keras").exists()):
        raise UserError(f"{out_dir} already holds a training run", "pass --resume to continue it or pick a new --out")
    # Before the data is read and the epochs run: a read-only, immutable or special place fails now, in one line.
    atomic.check_writable(store.dir if store.dir.is_dir() else out_dir)
    return store


def load_checkpoint(path: Path, what: str, hint: str, compile: bool = False):
    import keras

    from ..models.loading import check_model_file

    if not path.is_file():
        raise UserError(f"{path} ({what}) is missing", hint)
    try:  # a run's files are untrusted input: sizes and HDF5 links first, as for any model
        check_model_file(path)
    except UserError as exc:
        why = exc.message.removeprefix(str(path)).lstrip(": ").removeprefix("is ")
        raise UserError(f"{path} ({what}) cannot be read: {why}", hint) from None
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:  # a truncated or foreign file: Keras' message runs over many lines
        raise UserError(f"{path} ({what}) cannot be read: {type(exc).__name__}: {reason(exc)[:200]}", hint) from exc

