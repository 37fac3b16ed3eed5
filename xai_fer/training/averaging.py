"""Stochastic weight averaging (Izmailov et al., 2018): the mean of the weights the last epochs ended with.

Late in training, successive epochs end at different points around the same wide valley of the loss; their
mean sits nearer its centre than any one of them and usually generalises better. Averaged batch-norm moving
statistics describe no network, so the averaged model gets its batch-norm statistics recomputed on clean
training images (``recalibration.recalibrate_batch_norm``) before it is judged. It replaces the best epoch's
model only if its validation loss is lower: the choice is made on validation, like the best epoch's.

The running mean lives in the checkpoint folder (``average-NNN.npz``, see ``checkpoints.py``), so an
interrupted run resumes it and ``--finish`` uses the epochs averaged so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .recalibration import (
    all_batch_norm_layers,
    recalibrate_batch_norm,
    sample_images,
    validation_scores,
)


@dataclass
class WeightAverage:
    """Running mean of a model's weights over the epochs given to ``add`` (non-float weights, such as a
    counter, take the latest value: they have no mean)."""

    weights: list[np.ndarray] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)

    def add(self, weights: list, epoch: int) -> None:
        weights = [np.asarray(w) for w in weights]
        if not self.epochs:
            self.weights = [w.astype(np.float64) if _averaged(w) else w.copy() for w in weights]
        else:
            n = len(self.epochs) + 1
            self.weights = [mean + (w - mean) / n if _averaged(w) else w.copy()
                            for mean, w in zip(self.weights, weights, strict=True)]
        self.epochs.append(int(epoch))

    def model_weights(self, like: list) -> list[np.ndarray]:
        """The mean, in the dtypes of ``like`` (the model's own weights)."""
        return [mean.astype(np.asarray(w).dtype) for mean, w in zip(self.weights, like, strict=True)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"epochs": np.asarray(self.epochs, dtype=np.int64),
                **{f"w{i:04d}": w for i, w in enumerate(self.weights)}}

    @classmethod
    def from_arrays(cls, arrays) -> WeightAverage:
        names = sorted((k for k in arrays if k.startswith("w")), key=lambda k: int(k[1:]))
        return cls([np.asarray(arrays[k]) for k in names], [int(e) for e in arrays["epochs"]])


def _averaged(weight: np.ndarray) -> bool:
    return np.issubdtype(weight.dtype, np.floating)


def averaging_epochs(config) -> range:
    """The (1-based) epochs whose weights go into the average: the last ``average_last_epochs`` planned."""
    return range(config.epochs - config.average_last_epochs + 1, config.epochs + 1)


def average_if_better(best, average: WeightAverage, x_train, x_val, y_val, label_smoothing: float = 0.0,
                      max_images: int = 8192, seed: int = 0, load_copy=None):
    """(model, record): the averaged model, with its batch-norm statistics recomputed on at most ``max_images``
    training images, if its validation loss is lower than ``best``'s; otherwise ``best`` unchanged.

    ``load_copy()`` returns a fresh model of ``best``'s architecture to put the average in (the best model is
    left as it is, so nothing needs restoring when the average loses)."""
    started = time.perf_counter()
    record = {"epochs": len(average.epochs), "first_epoch": min(average.epochs, default=None),
              "last_epoch": max(average.epochs, default=None), "batch_norm_layers": 0, "left_alone": 0, "images": 0,
              "validation_loss_best": None, "validation_loss_average": None,
              "validation_accuracy_best": None, "validation_accuracy_average": None, "kept": False}
    if len(average.epochs) < 2:  # the mean of one epoch is that epoch: nothing to compare
        return best, {**record, "seconds": 0.0}
    averaged = load_copy()
    averaged.set_weights(average.model_weights(averaged.get_weights()))
    images = sample_images(x_train, max_images, seed)
    layers = recalibrate_batch_norm(averaged, images)  # 0 for a model without batch norm
    # Nested or shared batch-norm layers can't be recomputed (see recalibration.py): they keep averaged statistics.
    left_alone = len(all_batch_norm_layers(averaged)) - layers
    best_loss, best_accuracy = validation_scores(best, x_val, y_val, label_smoothing)
    loss, accuracy = validation_scores(averaged, x_val, y_val, label_smoothing)
    kept = loss < best_loss  # a tie (or a NaN) keeps the best epoch's model
    record.update(batch_norm_layers=layers, left_alone=left_alone, images=int(len(images)) if layers else 0,
                  validation_loss_best=best_loss, validation_loss_average=loss,
                  validation_accuracy_best=best_accuracy, validation_accuracy_average=accuracy, kept=bool(kept),
                  seconds=round(time.perf_counter() - started, 1))
    return (averaged if kept else best), record


def weights_from(metrics: dict) -> str:
    """Where a finished run's ``model.keras`` came from, read off its ``metrics.json``: "best epoch N" or, when
    the weight average won, "average of epochs A-B"."""
    averaged = metrics.get("weight_averaging") or {}
    if averaged.get("kept"):
        return f"average of epochs {averaged['first_epoch']}-{averaged['last_epoch']}"
    return f"best epoch {metrics['best_epoch']}"


def describe(record: dict) -> str:
    """One line for an ``average_if_better`` record, as the CLI prints it and the reference README lists it."""
    if record["epochs"] < 2:
        return f"weights of {record['epochs']} epoch(s) averaged: too few to compare, the best epoch's model is kept"
    recomputed = (f", batch-norm statistics recomputed on {record['images']:,} training images"
                  if record["batch_norm_layers"] else "")
    return (f"weights of epochs {record['first_epoch']}-{record['last_epoch']} averaged ({record['epochs']} epochs"
            f"{recomputed}): validation loss {record['validation_loss_average']:.4f} against "
            f"{record['validation_loss_best']:.4f} for the best epoch, accuracy "
            f"{record['validation_accuracy_average']:.2%} against {record['validation_accuracy_best']:.2%}, "
            f"{'average kept' if record['kept'] else 'best epoch kept'}")
