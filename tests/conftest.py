"""Test set-up: only built-in plugins, TensorFlow backend, quiet logs, shared fixtures."""

import os

os.environ["XAI_FER_DISABLE_PLUGINS"] = "1"
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FER2013_H5 = ROOT.parent / "shared" / "data" / "fer2013.h5"


@pytest.fixture(scope="session")
def load_script():
    """A function that imports ``scripts/<name>.py`` as a module (the scripts are not a package)."""
    return _load_script


def _load_script(name: str):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(f"xai_fer_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the script look their module up here
    spec.loader.exec_module(module)
    return module


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
