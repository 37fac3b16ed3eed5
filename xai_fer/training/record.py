"""What a training run records about itself: the fingerprint of the images it trains on, the machine it ran
on, and its accuracy per split (``metrics.json``)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

from .. import __version__
from ..data import MIXED_TEST, SPLITS, Dataset
from ..errors import UserError
from ..evaluation import evaluate_arrays
from ..fingerprints import arrays_sha256


def data_fingerprint(source, x_train, y_train, x_val, y_val) -> dict:
    """What identifies the images a run trains and validates on: their counts and a sha256 of the pixels and
    labels. Test splits are left out: a run trained where PrivateTest did not travel (a GPU machine) is
    finished here on the whole dataset."""
    return {"source": str(source), "train_images": int(len(x_train)), "validation_images": int(len(x_val)),
            "sha256": arrays_sha256(x_train, y_train, x_val, y_val)}


def check_same_data(recorded: dict | None, data: dict, out_dir: Path) -> None:
    """A resumed or finished run must train and validate on the images it started with: others would mix two
    datasets in one run and overwrite its results with another dataset's numbers."""
    if recorded and recorded.get("sha256") != data["sha256"]:
        raise UserError(f"{out_dir} was trained on other images ({recorded.get('source')}: "
                        f"{recorded.get('train_images')} training, {recorded.get('validation_images')} validation), "
                        f"not those of {data['source']} ({data['train_images']}, {data['validation_images']})",
                        "resume or finish it with the --data it started with")


def splits_note(dataset: Dataset) -> str | None:
    """Why ``splits`` (test metrics) is empty, when it is; None when the source has test rows."""
    if dataset.usage is None:
        return (f"{dataset.source} has no Usage column or split folders, so every image trained or validated and "
                "none was held out for testing: evaluate the model on a test source with `xai-fer evaluate`")
    if any((dataset.usage == code).any() for code in range(1, len(SPLITS))):
        return None
    if (dataset.usage == MIXED_TEST).any():
        return (f"{dataset.source}'s test images are PublicTest and PrivateTest together (the test/ folder of "
                "Kaggle's image copy), so neither split is scored here: evaluate the model on that folder with "
                "`xai-fer evaluate MODEL --data ROOT/test`")
    return (f"{dataset.source} holds only {SPLITS[0]} rows (no {', '.join(SPLITS[1:])}): evaluate the model "
            "on a test source with `xai-fer evaluate`")


def environment(strategy) -> dict:
    import keras

    return {"xai_fer": __version__, "keras": keras.__version__, "backend": keras.backend.backend(),
            "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "accelerators": _accelerators(),
            "strategy": type(strategy).__name__ if strategy is not None else None,
            "replicas": int(strategy.num_replicas_in_sync) if strategy is not None else 1}


def _accelerators() -> list[str]:
    """The GPUs the backend trains on (empty on a CPU), e.g. ``['NVIDIA H100 80GB HBM3']`` under JAX."""
    import keras

    try:
        if keras.backend.backend() == "jax":
            import jax

            return [d.device_kind for d in jax.devices() if d.platform != "cpu"]
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_logical_devices("GPU")]
    except Exception:  # noqa: BLE001 - a description of the machine must never fail a finished run
        return []
    return []


def metrics_block(model, x, y, class_names, tta_flip: bool) -> dict:
    block = {"plain": evaluate_arrays(model, x, y, class_names, tta_flip=False)}
    if tta_flip:
        block["tta_flip"] = evaluate_arrays(model, x, y, class_names, tta_flip=True)
    return block


def split_metrics(model, dataset: Dataset, tta_flip: bool) -> dict:
    """{split: metrics block} for each test split (PublicTest, PrivateTest) the dataset has rows of."""
    splits = {}
    if dataset.usage is not None:
        for code, split in enumerate(SPLITS[1:], start=1):
            rows = dataset.usage == code
            if rows.any():
                splits[split] = metrics_block(model, dataset.images[rows].astype(np.float32), dataset.labels[rows],
                                              dataset.class_names, tta_flip)
    return splits
