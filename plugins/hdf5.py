"""HDF5 files with the layout of FER2013's ``fer2013.h5``: ``images``, optional ``labels`` and ``usage``."""

from __future__ import annotations

from pathlib import Path

from xai_fer.data import FER2013_CLASSES, SPLITS, Dataset, class_name_tuple, per_image_codes
from xai_fer.errors import UserError
from xai_fer.hookspecs import hookimpl

_SIGNATURE = b"\x89HDF\r\n\x1a\n"


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

        try:
            handle = h5py.File(path, "r")
        except OSError as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]  # h5py's text can run over several lines
            raise UserError(f"{path}: not a readable HDF5 file ({reason})", "check the file is complete") from None
        with handle:
            if "images" not in handle:
                raise UserError(
                    f"{path}: HDF5 file has no 'images' dataset (found: {', '.join(handle) or 'nothing'})",
                    "store the pixels as 'images' with shape (N, H, W[, C])",
                )
            if not isinstance(handle["images"], h5py.Dataset):
                raise UserError(f"{path}: 'images' is a group, not an array of pixels",
                                "store the pixels as one dataset 'images' with shape (N, H, W[, C])")
            images = handle["images"][()]
            labels = handle["labels"][()] if "labels" in handle else None
            usage = handle["usage"][()] if "usage" in handle else None
            names = handle.attrs.get("class_names")
        if images.dtype.kind not in "uif":
            raise UserError(f"{path}: 'images' must be numeric pixels on the 0-255 scale, got {images.dtype}",
                            "store the pixels as numbers with shape (N, H, W[, C])")
        class_names = class_name_tuple(path, names) if names is not None else FER2013_CLASSES
        return Dataset(images=images, class_names=class_names, source=str(path),
                       labels=per_image_codes(path, labels, "labels", len(images), len(class_names)),
                       usage=per_image_codes(path, usage, "usage", len(images), len(SPLITS)))


@hookimpl
def register_datasets(register):
    register(Hdf5Format())
