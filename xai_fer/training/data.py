"""Turning a Dataset into training and validation arrays, following the chosen protocol."""

from __future__ import annotations

import numpy as np

from ..data import SPLITS, Dataset
from ..errors import UserError
from .config import TrainConfig


def split_for_training(dataset: Dataset, config: TrainConfig):
    """(x_train, y_train, x_val, y_val) as float32 pixels (0-255) and integer labels."""
    if dataset.labels is None:
        raise UserError(f"{dataset.source} has no labels", "training needs a labelled source")
    usage = dataset.usage
    if usage is not None:
        train = dataset.subset(usage == SPLITS.index("Training"))
    else:
        train = dataset
    if config.validation == "publictest":
        val = None if usage is None else dataset.subset(usage == SPLITS.index("PublicTest"))
        if val is None or len(val) == 0:
            raise UserError(f"{dataset.source} has no PublicTest rows to validate on",
                            "use --set validation=holdout (a share of Training)")
    else:
        # The study's protocol: shuffle with the seed, hold out the last fraction.
        order = np.random.default_rng(config.seed).permutation(len(train))
        n_val = max(1, int(round(len(order) * config.validation_fraction)))
        train, val = train.subset(order[:-n_val]), train.subset(order[-n_val:])
    if len(train) == 0 or len(val) == 0:
        raise UserError(f"{dataset.source}: not enough labelled images to train and validate")
    return (
        train.images.astype(np.float32), train.labels.astype(np.int64),
        val.images.astype(np.float32), val.labels.astype(np.int64),
    )
