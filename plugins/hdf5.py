"""HDF5 files with the layout of FER2013's ``fer2013.h5``: ``images``, optional ``labels`` and ``usage``."""

from __future__ import annotations

from pathlib import Path

from xai_fer.data import FER2013_CLASSES, SPLITS, Dataset, class_name_tuple, per_image_codes
from xai_fer.display import names_listed
from xai_fer.errors import UserError, reason
from xai_fer.hookspecs import hookimpl

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# What each dataset holds, and how to store it.
_DATASETS = {"images": ("pixels", "store the pixels as one dataset 'images' with shape (N, H, W[, C])"),
             "labels": ("labels", "store one class index per image as a dataset 'labels'"),
             "usage": ("split codes", "store one split code (or name) per image as a dataset 'usage'")}


class Hdf5Format:
    name = "hdf5"
    description = "HDF5 with 'images' (N,H,W[,C]) and optional 'labels', 'usage' datasets"

    def detect(self, path: Path) -> bool:
        if not path.is_file():
            return False
        with open(path, "rb") as handle:
            return handle.read(8) == _SIGNATURE

    def load(self, path: Path) -> Dataset:
        import h5py

        from xai_fer import safe_hdf5
        from xai_fer.limits import DATA_BYTES

        try:
            handle = h5py.File(path, "r")
        except OSError as exc:
            raise UserError(f"{path}: not a readable HDF5 file ({reason(exc)})", "check the file is complete") from None
        with handle:
            found = {key: safe_hdf5.dataset(handle, key, path, DATA_BYTES, *holds)
                     for key, holds in _DATASETS.items()}
            if found["images"] is None:
                raise UserError(
                    f"{path}: HDF5 file has no 'images' dataset (found: {names_listed(handle)})",
                    "store the pixels as 'images' with shape (N, H, W[, C])",
                )
            # Together: three datasets each under the limit must not add up to three times it.
            DATA_BYTES.check(sum(safe_hdf5.check_dataset(d, path, None) for d in found.values() if d is not None),
                             str(path), " ('images', 'labels' and 'usage' as declared)")
            arrays = {key: safe_hdf5.read(d, path) if d is not None else None for key, d in found.items()}
            names = safe_hdf5.attribute(handle, "class_names", path, DATA_BYTES)
        images = arrays["images"]
        if images.dtype.kind not in "uif":
            raise UserError(f"{path}: 'images' must be numeric pixels on the 0-255 scale, got {images.dtype}",
                            "store the pixels as numbers with shape (N, H, W[, C])")
        class_names = class_name_tuple(path, names) if names is not None else FER2013_CLASSES
        return Dataset(images=images, class_names=class_names, source=str(path),
                       labels=per_image_codes(path, arrays["labels"], "labels", len(images), len(class_names)),
                       usage=per_image_codes(path, arrays["usage"], "usage", len(images), len(SPLITS)))


@hookimpl
def register_datasets(register):
    register(Hdf5Format())
