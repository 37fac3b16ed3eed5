"""Writers for small dataset files in every format users bring, for tests (and anyone who needs sample data)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xai_fer.data import FER2013_CLASSES, SPLITS

# Kaggle's folder copy of FER2013 uses train/ and test/; these names keep all three splits apart.
SPLIT_FOLDERS = {"Training": "train", "PublicTest": "publictest", "PrivateTest": "privatetest"}


def sample_images(count: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """``count`` deterministic uint8 images (count, size, size) whose pixels cover 0..255 (1, 2 and 3 digits)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, size, size), dtype=np.uint8)
    images.reshape(count, -1)[:, :2] = (0, 255)
    return images


def split_names(usage: Sequence) -> list[str]:
    """Split names from names or SPLITS codes."""
    return [SPLITS[int(u)] if not isinstance(u, str) else u for u in usage]


def pixel_field(image: np.ndarray) -> str:
    """One image as fer2013.csv stores it: its pixels, row-major, separated by single spaces."""
    return " ".join(map(str, np.asarray(image).ravel().tolist()))


def write_fer_csv(path: Path, images, labels, usage=None, newline: str = "\n") -> Path:
    """Kaggle's fer2013.csv layout: ``emotion,pixels,Usage`` (no Usage column when ``usage`` is None)."""
    lines = ["emotion,pixels" + (",Usage" if usage is not None else "")]
    names = split_names(usage) if usage is not None else None
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        lines.append(f"{int(label)},{pixel_field(image)}" + (f",{names[index]}" if names else ""))
    Path(path).write_bytes((newline.join(lines) + newline).encode())
    return Path(path)


def write_homework_csv(path: Path, images, labels=None, ids=None) -> Path:
    """The homework layout: ``label,feature`` (train.csv) or, without labels, ``id,feature`` (test.csv)."""
    if labels is not None:
        head, keys = "label", labels
    else:
        head, keys = "id", ids if ids is not None else range(len(images))
    lines = [f"{head},feature"] + [f"{int(key)},{pixel_field(image)}" for key, image in zip(keys, images, strict=True)]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_image_folder(root: Path, images, labels, class_names=FER2013_CLASSES, usage=None,
                       suffix: str = ".png", split_folders: dict[str, str] = SPLIT_FOLDERS) -> Path:
    """``<root>/<class>/<i><suffix>``, or ``<root>/<split folder>/<class>/...`` when ``usage`` is given.

    Class folders are the lower-cased class names, as in Kaggle's folder copy. Use ``.png`` for exact pixels.
    """
    from PIL import Image

    root = Path(root)
    splits = split_names(usage) if usage is not None else [None] * len(images)
    for index, (image, label, split) in enumerate(zip(images, labels, splits, strict=True)):
        folder = root / split_folders[split] if split else root
        folder = folder / class_names[int(label)].lower()
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(image).squeeze()).save(folder / f"{index:05d}{suffix}")
    return root


def write_npz(path: Path, images, labels=None, usage=None, class_names=None) -> Path:
    """``np.savez`` with the keys the npz loader reads; None values are left out."""
    arrays = {"images": images, "labels": labels, "usage": usage,
              "class_names": None if class_names is None else np.array(class_names, dtype=str)}
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return Path(path)
