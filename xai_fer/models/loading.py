"""Loading any saved Keras model (``.keras`` or legacy Keras-2 HDF5) with clear answers for what cannot load."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from ..display import short
from ..errors import UserError, reason
from ..safe_files import check_keras_archive, check_kind

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_RESAVE = "re-save the whole model with model.save('model.keras')"


def _check_hdf5_model(path: Path) -> None:
    import h5py

    from .. import safe_hdf5
    from ..limits import CONFIG_BYTES, MODEL_BYTES

    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise UserError(f"{path} is not a complete HDF5 file (truncated or corrupt)",
                        "copy or export the model again") from None
    with handle:
        if safe_hdf5.attribute(handle, "model_config", path, CONFIG_BYTES) is None:
            raise UserError(f"{path} holds only weights, not a model",
                            f"load it into its architecture with model.load_weights() and {_RESAVE}")
        # Keras reads every weight: links to other files, virtual datasets and sizes that were only declared
        # are refused before it does.
        safe_hdf5.check_tree(handle, path, MODEL_BYTES)


def check_model_file(path: Path) -> Path:
    """Refuse, with a one-line reason, every path that is not a loadable model file."""
    path = Path(path).expanduser()
    check_kind(path, "model")  # a FIFO or /dev/zero would hang the read below
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
            check_keras_archive(path, archive)  # declared sizes, before Keras unpacks anything
    else:
        raise UserError(f"{path} is not a Keras model (neither a .keras archive nor an HDF5 file)",
                        "pass a model saved with model.save('model.keras') or a Keras-2 .h5 file")
    return path


def load_model(path: str | Path, unsafe: bool = False):
    """Load a model file for inference. ``safe_mode`` stays on unless ``unsafe``: no code from the file runs."""
    import keras

    from .. import reference, registry

    path = check_model_file(Path(reference.resolve(path)))  # bundled:cnn
    registry.get_manager()  # plugins first: a plugin's custom layers register themselves when it is imported
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except MemoryError:
        raise UserError(f"not enough memory to load {path}", "free memory, or use a smaller model") from None
    except Exception as exc:  # Keras raises many types; the user needs one line either way
        text = reason(exc)
        missing = _missing_class(str(exc))
        if missing and missing[0] == "function":
            # A named function (a Lambda's, an activation) is stored by name only: --unsafe cannot bring it back.
            raise UserError(f"could not load {path}: it calls the function {missing[1]!r}"
                            f"{' (in a Lambda layer)' if 'Lambda' in str(exc) else ''}, which is not registered here",
                            "the file holds only its name, so --unsafe cannot help: define it in a module xai-fer "
                            "imports (a plugin, see the plugin guide) under @keras.saving.register_keras_serializable()"
                            ) from None
        if "safe_mode" in str(exc) or "Lambda" in str(exc) or "lambda" in str(exc):
            raise UserError(f"{path} contains code (a Lambda layer or custom function) that safe mode refuses",
                            "rerun with --unsafe only if you trust where the file came from") from None
        if isinstance(exc, (zipfile.BadZipFile, EOFError)) or "truncated" in text.lower():
            raise UserError(f"{path} is truncated or corrupt ({text})", "copy or export the model again") from None
        broken = (isinstance(exc, (TypeError, AttributeError, KeyError, json.JSONDecodeError))
                  or "not a valid Keras configuration" in text)
        if (missing and _keras_own(missing[1])) or (broken and not missing):
            # Keras' own class "not found", or a config Python trips over: the architecture is not what Keras
            # writes (edited, damaged), not a missing plugin.
            detail = (f"Keras' own {missing[1]!r} with a config that Keras does not write"
                      if missing and _keras_own(missing[1]) else short(text, 160))
            raise UserError(f"could not load {path}: its architecture (the model's config) could not be read "
                            f"({detail})", "the file was damaged or edited: export the model again "
                            f"where it was made ({_RESAVE})") from None
        if missing:
            raise UserError(f"could not load {path}: it uses the custom object {missing[1]!r}, which is not "
                            "registered here", "import the code that defines it and register it with "
                            "keras.saving.register_keras_serializable") from None
        raise UserError(f"could not load {path}: {text}",
                        "the file may come from an incompatible Keras version: load it where it was made and "
                        f"{_RESAVE}") from None
    return model


def _keras_own(name: str) -> bool:
    """Whether ``name`` is a class Keras itself defines (a layer, a model): Keras never misses those."""
    import keras

    return name in ("Functional", "Sequential", "Model") or hasattr(keras.layers, name.rsplit(".", 1)[-1])


def _missing_class(message: str) -> tuple[str, str] | None:
    """("function" or "class", name) of the custom object Keras could not find, named in one of the lines of its
    error (the first line of a nested-model error only says that the model could not be deserialised)."""
    import re

    found = re.search(r"Could not locate (class|function) '([^']+)'|Unknown (layer|object): '?([\w.]+)", message)
    if not found:
        return None
    kind, name = (found.group(1), found.group(2)) if found.group(1) else ("class", found.group(4))
    return kind, name
