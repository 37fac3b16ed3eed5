"""Training settings and the named presets (``study`` reproduces the paper, ``improved`` beats it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from ..options import option


@dataclass
class TrainConfig:
    epochs: int = option(100, "passes over the training images")
    batch_size: int = option(32, "images per gradient step")
    learning_rate: float = option(1e-3, "Adam's (peak) learning rate")
    schedule: Literal["constant", "cosine"] = option("constant", "learning-rate schedule over all epochs")
    warmup_epochs: int = option(0, "epochs of linear warm-up before the cosine decay")
    weight_decay: float = option(0.0, "decoupled weight decay (AdamW) when > 0")
    label_smoothing: float = option(0.0, "cross-entropy label smoothing")
    validation: Literal["holdout", "publictest"] = option(
        "holdout", "holdout: last fraction of the shuffled Training split; publictest: the PublicTest split"
    )
    validation_fraction: float = option(0.2, "share of the shuffled Training split held out (holdout)")
    shift: float = option(0.1, "random shift, as a fraction of height and width")
    rotation: float = option(10.0, "random rotation, in degrees either way")
    zoom: float = option(0.1, "random zoom, as a fraction")
    flip: bool = option(True, "random horizontal flip")
    tta_flip: bool = option(False, "also average predictions over the mirrored image when evaluating")
    recalibrate_batch_norm: bool = option(
        False, "after training, recompute batch-norm statistics on the un-augmented training images; "
        "kept only if that lowers the validation loss"
    )
    average_last_epochs: int = option(
        0, "stochastic weight averaging: average the weights of the last N epochs; the average, with batch-norm "
        "statistics recomputed on the un-augmented training images, replaces the best epoch's model only if that "
        "lowers the validation loss"
    )
    teachers: tuple[str, ...] = option(
        (), "knowledge distillation: saved models (comma-separated) whose averaged predictions, mirrored view "
        "included, are mixed into the training targets; empty: off"
    )
    teacher_weight: float = option(0.5, "share of the teachers' probabilities in each training target; the rest "
                                        "is the one-hot label")
    seed: int = option(0, "seed for the split, initialisation, shuffling and augmentation")
    steps_per_execution: int = option(
        1, "gradient steps per compiled call: more saves Python round trips on a fast GPU, results are the same"
    )

    def __post_init__(self):
        self.teachers = tuple(self.teachers)  # a run's state.json gives a list back
        if self.epochs < 1 or self.batch_size < 1 or self.steps_per_execution < 1:
            raise ValueError("epochs, batch_size and steps_per_execution must be at least 1")
        if not 0 < self.validation_fraction < 1:
            raise ValueError("validation_fraction must be between 0 and 1")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be positive")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError("label_smoothing must be in [0, 1)")
        if self.warmup_epochs < 0 or self.weight_decay < 0:
            raise ValueError("warmup_epochs and weight_decay must not be negative")
        if self.average_last_epochs == 1 or not 0 <= self.average_last_epochs <= self.epochs:
            raise ValueError("average_last_epochs must be 0 (off) or between 2 and epochs")
        if not 0 <= self.teacher_weight <= 1:
            raise ValueError("teacher_weight must be in [0, 1]")
        if not 0 <= self.seed < 2**32:  # what every random generator behind it accepts
            raise ValueError("seed must be a whole number from 0 to 4294967295")
        if not (0 <= self.shift < 1 and 0 <= self.zoom < 1 and 0 <= self.rotation <= 180):
            raise ValueError("shift and zoom must be in [0, 1), rotation in [0, 180] degrees")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# The study: shuffled 80/20 split, shift/rotation/flip/zoom, batch 32, Adam, cross-entropy, 100 epochs.
STUDY = TrainConfig()

# What the reference models were trained with: all of Training (PublicTest validates, as on the Kaggle
# leaderboard), a cosine schedule with warm-up, AdamW, label smoothing, batch-norm statistics recomputed on
# the clean training images (kept where that lowers the validation loss), and a mirrored test-time view.
IMPROVED = dataclasses.replace(
    STUDY,
    epochs=60,
    batch_size=64,
    learning_rate=2e-3,
    schedule="cosine",
    warmup_epochs=2,
    weight_decay=1e-4,
    label_smoothing=0.1,
    validation="publictest",
    tta_flip=True,
    recalibrate_batch_norm=True,
)

# Settings that act only after the last epoch (on the best model), so `--resume` and `--finish` may change
# them: the trained weights do not depend on them.
AFTER_TRAINING = ("tta_flip", "recalibrate_batch_norm")

PRESETS = {"study": STUDY, "improved": IMPROVED}
