"""The bundled reference models and PrivateTest sample: the defaults of ``xai-fer explain``.

Produced by ``scripts/build_reference.py`` from training runs on the real FER2013 (see ``README.md`` here).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

HERE = Path(__file__).resolve().parent

# The study this project reproduces: its Kaggle PrivateTest accuracy per model, and the goals set to beat it.
STUDY_ACCURACY = {"cnn": 0.68793, "dnn": 0.3777}
GOALS = {"cnn": 0.71, "dnn": 0.45}
MODELS = {"cnn": HERE / "cnn.keras", "dnn": HERE / "dnn.keras"}
SAMPLE = HERE / "sample.npz"


def percent(value: float | None) -> str:
    """An accuracy as the reference README, the docs, the gallery and the benchmarks print it: 70.38%, or - ."""
    return "-" if value is None else f"{100 * value:.2f}%"


def model_path(name: str = "cnn") -> Path:
    path = MODELS.get(name)
    if path is None or not path.exists():
        raise UserError(f"the bundled reference model {name!r} is not installed",
                        "pass a MODEL path, or reinstall xai-fer")
    return path


def sample_path() -> Path:
    if not SAMPLE.exists():
        raise UserError("the bundled PrivateTest sample is not installed", "pass --data, or reinstall xai-fer")
    return SAMPLE


# Bundled files are named as such in every output ("bundled:cnn"), not by a site-packages path that differs
# from one install to the next; the same names are accepted wherever a model or data path is.
BUNDLED = "bundled:"


def _bundled_files() -> dict[str, Path]:
    return {**MODELS, "sample": SAMPLE}


def resolve(source):
    """The file behind ``bundled:NAME`` (``bundled:cnn``, ``bundled:dnn``, ``bundled:sample``); anything else as
    it is."""
    if not isinstance(source, (str, Path)) or not str(source).startswith(BUNDLED):
        return source
    name = str(source)[len(BUNDLED):]
    if name == "sample":
        return sample_path()
    if name not in MODELS:
        raise UserError(f"{source!s} is not a bundled file", "bundled files: "
                        + ", ".join(BUNDLED + known for known in _bundled_files()))
    return model_path(name)


def shown(source) -> str:
    """How outputs name a model or data source: ``bundled:NAME`` for a bundled file, else the path given."""
    try:
        resolved = Path(source).resolve()
    except (OSError, TypeError, ValueError):  # a list of photos, an odd name: shown as given
        return str(source)
    for name, path in _bundled_files().items():
        if resolved == path:
            return BUNDLED + name
    return str(source)
