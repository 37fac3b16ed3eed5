"""Test set-up: only built-in plugins, TensorFlow backend, quiet logs, shared fixtures."""

import os

os.environ["XAI_FER_DISABLE_PLUGINS"] = "1"
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

FER2013_H5 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fer2013.h5"


@pytest.fixture
def fer2013_h5() -> Path:
    """The real FER2013 file from ../shared; tests using it skip where a clone has no ../shared."""
    if not FER2013_H5.exists():
        pytest.skip(f"real FER2013 not available at {FER2013_H5} (only in the project's shared folder)")
    return FER2013_H5


@pytest.fixture
def tiny_dataset():
    """Fourteen 48x48 grayscale images, two per FER2013 class, deterministic."""
    from xai_fer.data import FER2013_CLASSES, Dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(14, 48, 48, 1), dtype=np.uint8)
    return Dataset(images=images, labels=np.arange(14) % 7, class_names=FER2013_CLASSES, source="tiny")
