"""HDF5 files with the layout of FER2013's ``fer2013.h5``: ``images``, optional ``labels`` and ``usage``."""

from __future__ import annotations

from pathlib import Path

from xai_fer.data import FER2013_CLASSES, Dataset
from xai_fer.errors import UserError
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np

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
            raise UserError(f"{path}: not a readable HDF5 file ({exc})", "check the file is complete") from None
        with handle:
            if "images" not in handle:
                raise UserError(
                    f"{path}: HDF5 file has no 'images' dataset (found: {', '.join(handle) or 'nothing'})",
                    "store the pixels as 'images' with shape (N, H, W[, C])",
                )
            images = handle["images"][()]
            labels = handle["labels"][()].astype(np.int64) if "labels" in handle else None
            usage = handle["usage"][()].astype(np.int64) if "usage" in handle else None
            names = handle.attrs.get("class_names")
        class_names = tuple(str(n.decode() if isinstance(n, bytes) else n) for n in names) if names is not None \
            else FER2013_CLASSES
        if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise UserError(f"{path}: labels outside 0..{len(class_names) - 1}", "fix the 'labels' dataset")
        if usage is not None and len(usage) != len(images):
            raise UserError(f"{path}: 'usage' has {len(usage)} rows but 'images' has {len(images)}")
        return Dataset(images=images, labels=labels, class_names=class_names, source=str(path), usage=usage)


@hookimpl
def register_datasets(register):
    register(Hdf5Format())
