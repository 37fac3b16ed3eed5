"""Image folders: ``<root>/<class>/*.png`` or ``<root>/<split>/<class>/*.jpg`` (Kaggle's ``train/``, ``test/`` copy),
and unlabelled photos (``photos``: one image file, several, or a folder of them without class folders).

Class names come from the folder names (one class per name, whatever its case). Folders named after FER2013's
seven classes keep FER2013's label indices, so a folder copy of FER2013 labels images exactly as
``fer2013.csv`` does. Kaggle's copy keeps PublicTest and PrivateTest together in ``test/``: those rows are
loaded (``usage`` ``MIXED_TEST``) but no ``--split`` picks them; point ``--data`` at ``test/`` to use them all.
16-bit grayscale images are scaled to 8 bits; images of different sizes are resized to one (recorded), and with
``faces`` each image is cut to the face found in it (``xai_fer.data.photos``).
"""

from __future__ import annotations

from pathlib import Path

from xai_fer.data import FER2013_CLASSES, MIXED_TEST, SPLITS, Dataset
from xai_fer.errors import UserError, closest
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.limits import DATA_BYTES
from xai_fer.safe_files import open_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_SPLIT_FOLDERS = {
    "train": "Training",
    "training": "Training",
    "publictest": "PublicTest",
    "val": "PublicTest",
    "validation": "PublicTest",
    "privatetest": "PrivateTest",
    # Kaggle's image copy of FER2013 (train/ 28,709 + test/ 7,178 images) puts PublicTest and PrivateTest
    # together in test/: a bare test/ is neither (see _split_of). Beside a privatetest/ folder it is PublicTest.
    "test": None,
}
_GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_FORMAT_HINT = "expected <root>/<class>/<image> or <root>/<split>/<class>/<image> with .jpg, .jpeg or .png images"


def _folders(path: Path) -> list[Path]:
    """Sub-folders, ignoring hidden ones (.git, .ipynb_checkpoints)."""
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _misspelt_class(names: list[str], classes) -> tuple[str, str] | None:
    """The first of ``names`` that is a near-miss (not an exact match) of one of ``classes``, and that class."""
    for name in names:
        close = closest(name.lower(), classes, cutoff=0.85)
        if close is not None:
            return name, close
    return None


def _split_of(folder: str, siblings: set[str]) -> str | None:
    """The FER2013 split a split folder holds. ``test`` is PublicTest beside a privatetest folder, PrivateTest
    beside a validation folder (train/val/test), and None alone with train/ (Kaggle's copy: PublicTest and
    PrivateTest together)."""
    if folder.lower() == "test":
        if "privatetest" in siblings:
            return "PublicTest"
        if siblings & {"val", "validation", "publictest"}:
            return "PrivateTest"
    return _SPLIT_FOLDERS[folder.lower()]


_NO_SPLIT = "no split folders"


def _code(split: str | None) -> int:
    """The usage code of a split folder's rows: a bare test/ gets ``MIXED_TEST``, which no --split selects."""
    return MIXED_TEST if split is None else SPLITS.index(split)


class ImageFolderFormat:
    name = "image-folder"
    description = "folders <class>/*.jpg|png, optionally under <split>/ (train, test, val, publictest, ...)"

    def detect(self, path: Path) -> bool:
        return path.is_dir() and bool(_folders(path))  # a folder of images alone is the photos format's

    def load(self, path: Path, faces: bool = False) -> Dataset:
        groups = self._class_folders(path)  # (split or None, class folder)
        # One class per name whatever its case (train/Happy and test/happy), spelt as first seen in sorted order.
        spelling: dict[str, str] = {}
        for name in sorted(folder.name for _, folder in groups):
            spelling.setdefault(name.lower(), name)
        names = sorted(spelling.values())
        fer_names = {name.lower(): index for index, name in enumerate(FER2013_CLASSES)}
        unknown = [name for name in names if name.lower() not in fer_names]
        if not unknown:
            class_names, index_of = FER2013_CLASSES, {name.lower(): fer_names[name.lower()] for name in names}
        elif len(unknown) < len(names) and (typo := _misspelt_class(unknown, fer_names)):
            # Beside FER2013 class folders, a near-miss of a class name is a typo that would silently renumber
            # every class (labels then follow the sorted folder names). Other names (FER+'s happiness,
            # contempt...) are a different label set, numbered alphabetically.
            name, meant = typo
            folder = next(f for _, f in groups if f.name == name)
            raise UserError(f"{folder}: class folder {name!r} is not a FER2013 class (did you mean {meant!r}?)",
                            f"rename it; FER2013's classes are {', '.join(FER2013_CLASSES)} (any case)")
        else:
            class_names, index_of = tuple(names), {name.lower(): index for index, name in enumerate(names)}
        files, counts = [], []
        for _, folder in groups:
            images = self._images(folder)
            files += images
            counts.append(len(images))
        if not files:
            raise UserError(f"{path}: no images in the class folders", _FORMAT_HINT)
        split_layout = groups[0][0] != _NO_SPLIT
        images, preparation = _read_images(files, faces, [file.relative_to(path).as_posix() for file in files])
        previews = preparation.pop("previews", [])
        return Dataset(
            images=images,
            labels=np.repeat([index_of[folder.name.lower()] for _, folder in groups], counts),
            class_names=class_names,
            source=str(path),
            usage=np.repeat([_code(split) for split, _ in groups], counts) if split_layout else None,
            names=np.array([file.relative_to(path).as_posix() for file in files]),
            preparation=preparation,
            previews=previews,
        )

    def _class_folders(self, root: Path) -> list[tuple[str | None, Path]]:
        """Class folders in label-independent, deterministic order: by split, then by name."""
        top = _folders(root)
        if not top:
            raise UserError(f"{root}: no class folders", _FORMAT_HINT)
        split_folders = [f for f in top if f.name.lower() in _SPLIT_FOLDERS]
        if not split_folders:
            return [(_NO_SPLIT, folder) for folder in top]
        if len(split_folders) != len(top):
            other = next(f for f in top if f not in split_folders)
            raise UserError(f"{other}: unknown folder beside the split folders "
                            f"{', '.join(f.name for f in split_folders)}",
                            f"split folders are {', '.join(_SPLIT_FOLDERS)}")
        siblings = {f.name.lower() for f in split_folders}
        by_split: dict[str, Path] = {}
        for folder in split_folders:
            split = _split_of(folder.name, siblings)
            if split in by_split:
                raise UserError(f"{by_split[split]} and {folder} both hold the {split} split",
                                "merge them or rename one")
            by_split[split] = folder
        groups = []
        for split in (*SPLITS, None):
            if split in by_split:
                classes = _folders(by_split[split])
                if not classes:
                    raise UserError(f"{by_split[split]}: no class folders", _FORMAT_HINT)
                groups += [(split, folder) for folder in classes]
        return groups

    def _images(self, folder: Path) -> list[Path]:
        files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        for file in files:
            if file.is_dir():
                raise UserError(f"{file}: a folder inside the class folder {folder.name!r}", _FORMAT_HINT)
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                raise UserError(f"{file}: not a .jpg, .jpeg or .png image", "remove it or convert it")
        return files


def _read_images(files: list[Path], faces: bool = False, names: list[str] | None = None) -> tuple[np.ndarray, dict]:
    """All images as one uint8 array: 'L' when every image is grayscale, else RGB; with ``faces``, each cut to
    the face found in it. Images (or faces) of different sizes are resized to one (see
    :func:`xai_fer.data.photos.common_size`). Returns the images and what was done to them (for the record;
    with ``faces``, its ``previews`` are the pictures of the crops for the report, taken out by the caller)."""
    from xai_fer.data import photos

    sizes, grayscale = [], True
    for file in files:  # headers only (Image.open is lazy), so a bad file is named before any decoding work
        with open_image(file) as image:
            size, mode = image.size, image.mode
        sizes.append(size)
        grayscale &= mode in _GRAYSCALE_MODES
    _check_decoded_size(files, sizes, grayscale)
    mode = "L" if grayscale else "RGB"
    names = names or [file.name for file in files]
    cropper = photos.FaceCropper() if faces else None
    if cropper is None:
        return photos.stack_images((_decode(file, mode) for file in files), sizes, len(files), names, grayscale)
    crops = (cropper.crop(_decode(file, mode), name) for file, name in zip(files, names, strict=True))
    images, preparation = photos.stack_images(crops, None, len(files), names, grayscale)
    return images, {**preparation, "face_crop": cropper.record(), "previews": cropper.previews()}


def _decode(file: Path, mode: str) -> np.ndarray:
    with open_image(file) as image:
        return _eight_bit(image, mode)


def _check_decoded_size(files: list[Path], sizes: list[tuple[int, int]], grayscale: bool) -> None:
    """The images' size once decoded and brought to one size, against the data limit, before any is decoded."""
    from xai_fer.data import photos

    width, height = photos.common_size(sizes)
    DATA_BYTES.check(len(files) * width * height * (1 if grayscale else 3),
                     f"{len(files)} images ({files[0]}, ...)", f" once decoded at {width}x{height}")


def _eight_bit(image, mode: str) -> np.ndarray:
    """``image`` as uint8 pixels in ``mode`` ('L' or 'RGB'). Pillow's convert() clips 16-bit grayscale at 255
    instead of scaling it (a 16-bit face would load almost white), so those are scaled here."""
    if image.mode.startswith("I"):  # 'I;16', 'I;16B', 'I' (16-bit PNGs)
        pixels = np.asarray(image, dtype=np.float64)
        if pixels.max() > 255:  # the 16-bit range: 0-65535 -> 0-255 (8-bit values merely stored in 16 bits stay)
            pixels = np.round(pixels / 257.0)
        pixels = pixels.clip(0, 255).astype(np.uint8)
        return pixels if mode == "L" else np.repeat(pixels[..., None], 3, axis=-1)
    if image.mode == "F":
        raise UserError(f"{image.filename}: 32-bit float pixels have no fixed scale", "save it as an 8-bit image")
    return np.asarray(image.convert(mode))


class PhotosFormat:
    """Unlabelled photos: one image file, or a folder of them without class folders (several files or a glob
    come through :meth:`load_files`). Each image is named by its file name."""

    name = "photos"
    description = "photos without labels: one .jpg/.jpeg/.png file, several, or a folder of them (no class folders)"

    def detect(self, path: Path) -> bool:
        if path.is_file():
            return path.suffix.lower() in IMAGE_SUFFIXES
        return path.is_dir() and not _folders(path)

    def load(self, path: Path, faces: bool = False) -> Dataset:
        if path.is_file():
            return self.load_files([path], faces, str(path))
        files = ImageFolderFormat()._images(path)
        if not files:
            raise UserError(f"{path}: no images and no class folders", _FORMAT_HINT)
        return self.load_files(files, faces, str(path))

    def load_files(self, files: list[Path], faces: bool = False, source: str | None = None) -> Dataset:
        for file in files:
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                raise UserError(f"{file}: not a .jpg, .jpeg or .png image", "pass image files only")
        plain = [file.name for file in files]
        names = plain if len(set(plain)) == len(plain) else [str(file) for file in files]  # two a.jpg: paths
        images, preparation = _read_images(files, faces, names)
        previews = preparation.pop("previews", [])
        return Dataset(images=images, labels=None, class_names=FER2013_CLASSES,
                       source=source or ", ".join(map(str, files)), names=np.array(names), preparation=preparation,
                       previews=previews)


@hookimpl
def register_datasets(register):
    register(ImageFolderFormat())
    register(PhotosFormat())
