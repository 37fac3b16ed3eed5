"""Per-epoch checkpoints that survive being killed at any instant, and the best-validation-loss weights.

Layout of ``OUT/checkpoints``: ``epoch-NNN.keras`` (training model with optimizer state), ``best-NNN.keras``
(the model with the lowest validation loss so far, from epoch NNN), ``average-NNN.npz`` (the running weight
average up to epoch NNN, when the run averages weights: see ``averaging.py``) and ``state.json``. Every file is written
under a hidden temporary name and renamed into place (so no visible ``.keras`` is ever truncated), and
``state.json`` is written last: it names the files to resume from, so a kill between two writes leaves the
previous consistent state in charge. Files it no longer names are deleted afterwards, and leftovers of a
killed run (temporary files, files written after the last ``state.json``) are cleaned up on ``--resume``.

Runs written before best models were numbered have ``best.keras`` and no ``"best"`` key; both are still read.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from .. import atomic
from ..errors import UserError
from .averaging import WeightAverage

LEGACY_BEST = "best.keras"
_OURS = re.compile(r"^((epoch|best)-\d+\.keras|average-\d+\.npz)$")


class CheckpointStore:
    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir) / "checkpoints"
        self.state_path = self.dir / "state.json"
        self._lock = None

    def exists(self) -> bool:
        return self.state_path.exists()

    def read_state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {self.state_path} ({exc})", "start a new run with another --out") from None

    @property
    def best_path(self) -> Path:
        """The best model named by the current state (``best.keras`` in runs of earlier versions)."""
        state = self.read_state() if self.exists() else {}
        return self.dir / state.get("best", LEGACY_BEST)

    def lock(self) -> None:
        """Hold an exclusive lock on this run until the process exits (the kernel drops it on any death, even
        SIGKILL), so that two processes never write the same checkpoints."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no guard
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.dir / ".lock", "a")  # kept open (and locked) for the life of the run
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
        state = self.read_state() if self.exists() else {}
        keep = {state.get("checkpoint"), state.get("best", LEGACY_BEST), state.get("average")}
        removed = []
        for path in self.dir.iterdir():
            stale_temp = path.name.startswith(".") and ".tmp-" in path.name
            if stale_temp or (_OURS.match(path.name) and path.name not in keep):
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return sorted(removed)

    def read_average(self) -> WeightAverage:
        """The running weight average the current state names (empty when the run averages nothing yet)."""
        name = self.read_state().get("average") if self.exists() else None
        if not name:
            return WeightAverage()
        try:
            with np.load(self.dir / name) as arrays:
                return WeightAverage.from_arrays(arrays)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # missing, truncated, not ours
            raise UserError(f"cannot read {self.dir / name} ({exc})",
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
            stale.append(state.get("best", LEGACY_BEST))
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
