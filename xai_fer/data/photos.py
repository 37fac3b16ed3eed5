"""Photos as people have them: several files or a glob as one source, images of different sizes brought to
one size, and faces found and cut out of larger photos (OpenCV's Haar cascade, the optional ``faces`` extra).

The image formats (``xai_fer_plugins.image_folder``) read the files; this module holds what does not depend on
where they came from, so that every image source prepares its images the same way and records it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from xai_fer.lazy import np

from ..errors import UserError
from .globbing import glob_files

# Larger images are shrunk to fit: data-space images are what gradients and maps are computed on, and a folder
# of phone photos at full size would take gigabytes. 512 keeps far more detail than any FER model's input.
MAX_SIDE = 512
_GLOB_CHARACTERS = set("*?[")
FACES_HINT = 'install the faces extra: pip install "xai-fer[faces]" (opencv-python-headless)'


def expand_sources(source) -> list[Path] | None:
    """The files named by ``source`` when it names several (a list, or a glob pattern such as
    ``photos/*.jpg``), in order; None for a single path, which the format plugins read as it is. A pattern
    that matches nothing, or an entry that does not exist, is one line naming it."""
    if isinstance(source, (str, Path)):
        text = str(source)
        if Path(text).expanduser().exists() or not _GLOB_CHARACTERS & set(text):
            return None
        return _matches(text)
    files: list[Path] = []
    for entry in source:
        text = str(entry)
        if Path(text).expanduser().exists():
            files.append(Path(text).expanduser())
        elif _GLOB_CHARACTERS & set(text):
            files += _matches(text)
        else:
            raise UserError(f"data source {text!r} does not exist", "check the --data path")
    if not files:
        raise UserError("no data source given", "pass --data with a file, a folder or a glob such as 'photos/*.jpg'")
    return list(dict.fromkeys(files))  # a file named twice (a glob and its own name) counts once


def _matches(pattern: str) -> list[Path]:
    files = glob_files(pattern)  # bounded, and a ** walk never follows a linked folder round in a loop
    if not files:
        raise UserError(f"--data {pattern!r} matches no file", "check the pattern (quote it so the shell leaves it)")
    return files


def common_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The (width, height) every image is brought to: the most common size (of equally common ones, the
    largest), shrunk to fit ``MAX_SIDE`` with its aspect ratio kept."""
    counts = Counter(sizes)
    width, height = max(counts, key=lambda size: (counts[size], size[0] * size[1]))
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def stack_images(arrays: Iterable[np.ndarray], sizes: Sequence[tuple[int, int]] | None, count: int,
                 names: Sequence[str], grayscale: bool) -> tuple[np.ndarray, dict]:
    """Decoded uint8 images (H, W) or (H, W, 3) as one (N, H, W[, 3]) array, each resized (bilinear,
    antialiased when shrinking, aspect ratio not kept) to :func:`common_size` where it differs. ``sizes``:
    their (width, height) when known before decoding (then one image at a time is in memory besides the
    result); None to take them from the arrays. Returns the images and a record of any resizing."""
    if sizes is None:
        arrays = list(arrays)
        sizes = [(a.shape[1], a.shape[0]) for a in arrays]
    width, height = common_size(sizes)
    images = np.empty((count, height, width) + (() if grayscale else (3,)), dtype=np.uint8)
    resized = []
    for index, pixels in enumerate(arrays):
        if pixels.shape[:2] != (height, width):
            pixels = _resize(pixels, width, height)
            resized.append(names[index])
        images[index] = pixels
    if not resized:
        return images, {}
    found = Counter(f"{w}x{h}" for w, h in sizes)
    return images, {"resized": {
        "to": f"{width}x{height}", "images": len(resized), "sizes_found": dict(found.most_common()),
        "method": "bilinear (antialiased when shrinking), aspect ratio not kept",
        "rule": f"the most common size (of equally common ones the largest), fit within {MAX_SIDE}x{MAX_SIDE}",
        "first_resized": resized[:20]}}


def _resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    # Pillow's bilinear filter widens its support when shrinking, so a large photo is antialiased, not aliased.
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))


@dataclass(frozen=True)
class FacePreview:
    """A photo shrunk to at most ``SIDE`` pixels a side and the face box found in it, in the shrunk pixels: what
    the report draws so that a reader sees what was cut out (the record keeps the boxes of every photo)."""

    name: str
    image: np.ndarray
    box: tuple[int, int, int, int]

    SIDE: ClassVar[int] = 192
    KEPT: ClassVar[int] = 12  # photos drawn in the report; every box stays in the manifest

    @classmethod
    def of(cls, pixels: np.ndarray, box: tuple[int, int, int, int], name: str) -> FacePreview:
        from PIL import Image

        height, width = pixels.shape[:2]
        scale = min(1.0, cls.SIDE / max(height, width))
        small = Image.fromarray(pixels).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                               Image.Resampling.BILINEAR)
        return cls(name, np.asarray(small), tuple(round(v * scale) for v in box))


class FaceCropper:
    """Finds the face in each photo with OpenCV's bundled frontal-face Haar cascade and cuts it out (a square;
    of several faces, the largest). A photo without a face is refused in one line: explaining a face model on
    a photo that is mostly background would explain the background."""

    CASCADE = "haarcascade_frontalface_default.xml"

    def __init__(self):
        try:
            import cv2
        except ImportError:
            raise UserError("face detection (--faces) needs OpenCV, which is not installed", FACES_HINT) from None
        path = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / self.CASCADE
        detector = cv2.CascadeClassifier(str(path)) if hasattr(cv2, "CascadeClassifier") else None
        if detector is None or detector.empty():  # OpenCV 5 dropped the Haar cascades
            raise UserError(f"OpenCV {cv2.__version__} has no {self.CASCADE} (Haar cascades are in OpenCV 4)",
                            'pip install "opencv-python-headless>=4.8,<5"')
        self._cv2, self._detector, self._version = cv2, detector, cv2.__version__
        self._records: list[dict] = []
        self._previews: list[FacePreview] = []

    def crop(self, pixels: np.ndarray, name: str) -> np.ndarray:
        """The face in ``pixels`` (uint8 (H, W) or (H, W, 3)); UserError when there is none."""
        gray = pixels if pixels.ndim == 2 else self._cv2.cvtColor(pixels, self._cv2.COLOR_RGB2GRAY)
        smallest = max(24, min(gray.shape) // 10)  # a face below a tenth of the photo is background detail
        boxes = self._detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest))
        if len(boxes) == 0:
            raise UserError(f"{name}: no face found (OpenCV Haar cascade, frontal faces of at least "
                            f"{smallest}x{smallest} pixels)", "use a photo with a frontal face, crop it yourself, "
                                                              "or drop --faces")
        x, y, w, h = (int(v) for v in max(boxes, key=lambda box: int(box[2]) * int(box[3])))
        self._records.append({"name": name, "photo_size": f"{gray.shape[1]}x{gray.shape[0]}", "box": [x, y, w, h],
                              "faces_found": int(len(boxes))})
        if len(self._previews) < FacePreview.KEPT:
            self._previews.append(FacePreview.of(pixels, (x, y, w, h), name))
        return np.ascontiguousarray(pixels[y:y + h, x:x + w])

    def previews(self) -> list[FacePreview]:
        """The first photos, small, with the box cut out of each: drawn in the report."""
        return list(self._previews)

    def record(self) -> dict:
        """What was cut out of which photo: box (x, y, width, height) in the photo's pixels."""
        return {"detector": f"OpenCV {self._version} {self.CASCADE}", "rule": "the largest frontal face",
                "images": list(self._records)}


def describe_preparation(preparation: dict | None) -> str | None:
    """One line for a report: how the images were prepared on loading (see ``Dataset.preparation``)."""
    if not preparation:
        return None
    parts = []
    resized = preparation.get("resized")
    if resized:
        parts.append(f"{resized['images']} image(s) resized to {resized['to']} (sizes found: "
                     + ", ".join(f"{size} x{count}" for size, count in resized["sizes_found"].items()) + ")")
    crop = preparation.get("face_crop")
    if crop:
        boxes = "; ".join(f"{entry['name']} ({entry['photo_size']}): x={entry['box'][0]} y={entry['box'][1]} "
                          f"{entry['box'][2]}x{entry['box'][3]}" for entry in crop["images"][:10])
        more = f" and {len(crop['images']) - 10} more" if len(crop["images"]) > 10 else ""
        parts.append(f"face crop by {crop['detector']}: {boxes}{more}")
    if preparation.get("labels_from"):
        parts.append(f"labels from {preparation['labels_from']}")
    return "; ".join(parts) or None
