"""``manifest.json``: everything needed to know what a run was made from and to reproduce it."""

from __future__ import annotations

import dataclasses
import platform
from datetime import datetime, timezone
from pathlib import Path

from .. import reference, registry
from ..fingerprints import file_sha256


def versions() -> dict:
    import keras
    import numpy

    from .. import __version__

    found = {"xai_fer": __version__, "keras": keras.__version__, "keras_backend": keras.backend.backend(),
             "numpy": numpy.__version__, "python": platform.python_version()}
    try:
        import tensorflow

        found["tensorflow"] = tensorflow.__version__
    except ImportError:  # a JAX-only install explains under KERAS_BACKEND=jax
        pass
    if found["keras_backend"] == "jax":
        import jax

        found["jax"] = jax.__version__
        found["jax_devices"] = sorted({device.platform for device in jax.devices()})
    return found


def build_manifest(model_path, info, dataset, adapter, planned, seed, timings, skipped=None,
                   scaling_choice=None) -> dict:
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": reference.shown(model_path), "sha256": file_sha256(Path(model_path)), **info.as_dict()},
        "data": {"source": dataset.source, "format": dataset.format, "split": dataset.split, "n": len(dataset),
                 "image_shape": list(dataset.images.shape[1:]), "labelled": dataset.labels is not None,
                 "pixel_scaling": dataset.pixel_scaling,  # how the stored pixels were put on the 0-255 scale
                 # resized to one size, faces cut out, labels read from a file (xai_fer.data.photos, labels)
                 "preparation": dict(dataset.preparation) or None,
                 "class_names": list(dataset.class_names),
                 "format_plugin": registry.provenance("datasets", dataset.format) if dataset.format else None},
        "preprocessing": adapter.describe(),
        # How --preprocess found the scaling: given, the model's own, or measured on a sample (every candidate).
        "scaling_choice": scaling_choice.describe() if scaling_choice is not None else None,
        "seed": seed,
        "explainers": {item.name: {"options": dataclasses.asdict(item.options), "seconds": timings.get(item.name),
                                   "plugin": registry.provenance("explainers", item.name)}
                       for item in planned},
        "skipped": dict(skipped or {}),  # explainers of the default "all" that do not apply, and why
        "versions": versions(),
    }
