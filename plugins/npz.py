"""NumPy ``.npz`` archives: ``images`` (N,H,W[,C]) and optional ``labels``, ``usage`` and ``class_names``."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from xai_fer.data import FER2013_CLASSES, SPLITS, Dataset, class_name_tuple, per_image_codes
from xai_fer.display import names_listed
from xai_fer.errors import UserError
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np

_HINT = (
    "save with np.savez(path, images=..., labels=..., usage=..., class_names=np.array(names, dtype=str)); "
    "usage codes are 0 Training, 1 PublicTest, 2 PrivateTest"
)


_KEYS = ("images", "labels", "usage", "class_names")


class NpzFormat:
    name = "npz"
    description = "NumPy .npz with 'images' (N,H,W[,C]) and optional 'labels', 'usage', 'class_names'"

    def detect(self, path: Path) -> bool:
        if not (path.is_file() and path.suffix.lower() == ".npz"):
            return False
        with open(path, "rb") as handle:
            return handle.read(4) == b"PK\x03\x04"

    def load(self, path: Path) -> Dataset:
        from xai_fer.safe_files import check_npy, check_npz

        try:
            # Declared sizes first: a 2 MB archive can unpack to gigabytes, a forged header claim 10^12 values
            # (a lone .npy, refused below, too: numpy would allocate what it claims before returning it).
            check_npz(path, _KEYS) if zipfile.is_zipfile(path) else check_npy(path, str(path))
            archive = np.load(path, allow_pickle=False)  # never unpickle: an .npz can carry arbitrary code
        except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
            reason = "not a zip archive" if "pickle" in str(exc) else str(exc)  # numpy's text talks of pickles
            raise UserError(f"{path}: not a readable .npz file ({reason})", _HINT) from None
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a lone .npy array, chosen with --format npz
            raise UserError(f"{path}: a single .npy array, not an .npz archive of named arrays", _HINT)
        with archive:
            if "images" not in archive.files:
                raise UserError(f"{path}: no 'images' array (found: {names_listed(archive.files)})", _HINT)
            arrays = {key: _array(path, archive, key) for key in _KEYS if key in archive.files}
        images = arrays["images"]
        if images.dtype.kind not in "uif":
            raise UserError(f"{path}: 'images' must be numeric pixels on the 0-255 scale, got {images.dtype}", _HINT)
        class_names = class_name_tuple(path, arrays["class_names"], _HINT) if "class_names" in arrays \
            else FER2013_CLASSES
        return Dataset(
            images=images,
            labels=per_image_codes(path, arrays.get("labels"), "labels", len(images), len(class_names), _HINT),
            class_names=class_names,
            source=str(path),
            usage=per_image_codes(path, arrays.get("usage"), "usage", len(images), len(SPLITS), _HINT),
        )


def _array(path: Path, archive, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:  # object arrays need pickle, which stays off
        raise UserError(f"{path}: cannot read {key!r} without pickle ({exc})", _HINT) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:  # a damaged member (a broken download)
        raise UserError(f"{path}: {key!r} is damaged ({type(exc).__name__}: {exc})",
                        "download or save the file again") from None
    except MemoryError:
        raise UserError(f"{path}: not enough memory to read {key!r}", "free memory, or use a smaller file") from None


@hookimpl
def register_datasets(register):
    register(NpzFormat())
