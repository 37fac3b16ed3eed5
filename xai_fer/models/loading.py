"""Loading any saved Keras model (``.keras`` or legacy Keras-2 HDF5) with clear answers for what cannot load."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import UserError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_RESAVE = "re-save the whole model with model.save('model.keras')"


def _check_hdf5_model(path: Path) -> None:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "model_config" not in handle.attrs:
                raise UserError(f"{path} holds only weights, not a model",
                                f"load it into its architecture with model.load_weights() and {_RESAVE}")
    except OSError:
        raise UserError(f"{path} is not a complete HDF5 file (truncated or corrupt)",
                        "copy or export the model again") from None


def check_model_file(path: Path) -> Path:
    """Refuse, with a one-line reason, every path that is not a loadable model file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"model {str(path)!r} does not exist", "check the MODEL path")
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            raise UserError(f"{path} is a TensorFlow SavedModel directory, which Keras 3 cannot load",
                            f"load it with the TensorFlow version that wrote it and {_RESAVE}")
        raise UserError(f"{path} is a directory, not a model file", "pass a .keras or .h5 file")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if path.name.endswith(".weights.h5"):
        raise UserError(f"{path} holds only weights, not a model",
                        f"build the architecture, call model.load_weights() and {_RESAVE}")
    if head == _HDF5_SIGNATURE:
        _check_hdf5_model(path)
    elif head[:4] == b"PK\x03\x04":
        if not zipfile.is_zipfile(path):
            raise UserError(f"{path} is a truncated .keras archive", "copy or export the model again")
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
        if members and all(name.endswith(".npy") for name in members):
            raise UserError(f"{path} is a NumPy .npz archive of arrays (data), not a model",
                            "pass a saved model as the model, and the .npz as --data")
        if path.suffix != ".keras":
            raise UserError(f"{path} looks like a .keras archive but is named {path.suffix or 'without suffix'}",
                            "rename it to end in .keras")
    else:
        raise UserError(f"{path} is not a Keras model (neither a .keras archive nor an HDF5 file)",
                        "pass a model saved with model.save('model.keras') or a Keras-2 .h5 file")
    return path


def load_model(path: str | Path, unsafe: bool = False):
    """Load a model file for inference. ``safe_mode`` stays on unless ``unsafe``: no code from the file runs."""
    import keras

    from .. import registry

    path = check_model_file(Path(path))
    registry.get_manager()  # plugins first: a plugin's custom layers register themselves when it is imported
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # Keras raises many types; the user needs one line either way
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "safe_mode" in str(exc) or "Lambda" in str(exc) or "lambda" in str(exc):
            raise UserError(f"{path} contains code (a Lambda layer or custom function) that safe mode refuses",
                            "rerun with --unsafe only if you trust where the file came from") from None
        if isinstance(exc, (zipfile.BadZipFile, EOFError)) or "truncated" in text.lower():
            raise UserError(f"{path} is truncated or corrupt ({text})", "copy or export the model again") from None
        missing = _missing_class(str(exc))
        if missing:
            raise UserError(f"could not load {path}: it uses {missing}, which is not registered here",
                            "import the code that defines it and register it with "
                            "keras.saving.register_keras_serializable") from None
        raise UserError(f"could not load {path}: {text}",
                        "the file may come from an incompatible Keras version: load it where it was made and "
                        f"{_RESAVE}") from None
    return model


def _missing_class(message: str) -> str | None:
    """The custom layer or function Keras could not find, named in one of the lines of its error (the first line of a
    nested-model error only says that the model could not be deserialised)."""
    import re

    found = re.search(r"Could not locate (?:class|function) '([^']+)'|Unknown (?:layer|object): '?([\w.]+)", message)
    if not found:
        return None
    return f"the custom object {next(group for group in found.groups() if group)!r}"
