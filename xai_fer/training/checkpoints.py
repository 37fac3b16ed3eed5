"""Per-epoch checkpoints that survive being killed at any instant, and the best-validation-loss weights.

Layout of ``OUT/checkpoints``: ``epoch-NNN.keras`` (training model with optimizer state), ``best.keras``
(the model with the lowest validation loss so far) and ``state.json``, written last: it names the checkpoint
to resume from, so a kill between two writes leaves the previous consistent state in charge.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .. import atomic


class CheckpointStore:
    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir) / "checkpoints"
        self.state_path = self.dir / "state.json"

    def exists(self) -> bool:
        return self.state_path.exists()

    def read_state(self) -> dict:
        return json.loads(self.state_path.read_text())

    @property
    def best_path(self) -> Path:
        return self.dir / "best.keras"

    def save(self, train_model, base_model, epoch: int, history: dict, config: dict, extra: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state = self.read_state() if self.exists() else {"best_val_loss": math.inf, "best_epoch": None}
        val_loss = history["val_loss"][-1]
        if val_loss < state["best_val_loss"]:
            atomic.save_keras(base_model, self.best_path)
            state["best_val_loss"], state["best_epoch"] = float(val_loss), epoch
        checkpoint = self.dir / f"epoch-{epoch:03d}.keras"
        atomic.save_keras(train_model, checkpoint)
        previous = state.get("checkpoint")
        state.update(epoch=epoch, checkpoint=checkpoint.name, history=history, config=config, **extra)
        atomic.write_json(self.state_path, state)
        if previous and previous != checkpoint.name:
            (self.dir / previous).unlink(missing_ok=True)
