"""The one in-memory dataset type shared by loaders, training and explainers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from xai_fer.lazy import np

from ..display import short
from ..errors import UserError

FER2013_CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
SPLITS = ("Training", "PublicTest", "PrivateTest")
# The usage code of test rows that are PublicTest and PrivateTest together (the test/ folder of Kaggle's image
# copy of FER2013): no --split selects them, and they are never trained on.
MIXED_TEST = -1


def canonical_split(name: str | None) -> str | None:
    """'privatetest', 'private' or 'PrivateTest' -> 'PrivateTest'; None stays None."""
    if name is None:
        return None
    key = name.strip().lower().replace("_", "").replace("-", "")
    for split in SPLITS:
        if key in (split.lower(), split.lower().replace("test", ""), split.lower()[:-4]):
            return split
    if key in ("train", "training"):
        return "Training"
    raise UserError(f"unknown split {name!r}", f"use one of {', '.join(SPLITS)}")


def class_name_tuple(source, names, hint: str = "") -> tuple[str, ...]:
    """Class names as a dataset plugin read them (an array of str or bytes), checked to be a list of names."""
    values = np.asarray(names)
    texts = values.ndim == 1 and all(isinstance(v, (str, bytes)) for v in values.tolist())  # h5py: object dtype
    if not texts or len(values) == 0:
        raise UserError(f"{source}: class names must be a list of strings, got {values.dtype} {values.shape}",
                        hint or "store them as an array of strings, one per class")
    result = tuple(v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in values.tolist())
    repeated = sorted({name for name in result if result.count(name) > 1})
    if repeated:  # per-class results are keyed by name: a repeated one would silently merge two classes
        raise UserError(f"{source}: class name {short(repeated[0], 80)!r} is given twice",
                        hint or "give every class its own name")
    return result


def per_image_codes(source, values, key: str, rows: int, stop: int, hint: str = "") -> np.ndarray | None:
    """Check an optional array of one whole number in 0..stop-1 per image (labels; usage codes in ``SPLITS``
    order) as a dataset plugin read it, and return it as int64. Usage may also be stored as split names
    (b"PrivateTest"), as in the Kaggle CSV. None stays None."""
    if values is None:
        return None
    values = np.asarray(values)
    names_given = values.dtype.kind in "SU" or (values.dtype == object and all(isinstance(v, (str, bytes))
                                                                               for v in values.tolist()))
    if key == "usage" and names_given and values.ndim == 1:  # object: h5py's variable-length strings
        names = [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in values.tolist()]
        try:
            values = np.array([SPLITS.index(canonical_split(n)) for n in names], dtype=np.int64)
        except UserError:
            raise UserError(f"{source}: {key!r} holds names that are not splits ({', '.join(sorted(set(names))[:5])})",
                            hint or f"use {', '.join(SPLITS)} or codes 0-2") from None
    if values.ndim != 1 or len(values) != rows or values.dtype.kind not in "iu":
        default = ("store one class index per image (not one-hot)" if key == "labels" else
                   f"store one split per image: {', '.join(SPLITS)} or codes 0-{len(SPLITS) - 1}")
        raise UserError(f"{source}: {key!r} must hold {rows} integers (one per image), got {values.dtype} "
                        f"{values.shape}", hint or default)
    if rows and (values.min() < 0 or values.max() >= stop):
        raise UserError(f"{source}: {key!r} values outside 0..{stop - 1}", hint or f"fix the {key!r} data")
    return values.astype(np.int64)


@dataclass
class Dataset:
    """Images with optional labels.

    ``images`` has shape (N, H, W, C) with values on the 0-255 scale (uint8, or float for formats that store
    floats); ``labels`` holds class indices into ``class_names`` or is None for unlabelled data (``test.csv``).
    """

    images: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...]
    source: str
    split: str | None = None
    format: str = ""
    ids: np.ndarray | None = None
    usage: np.ndarray | None = field(default=None, repr=False)
    # How put_on_255_scale changed the stored pixels ("floats 0-1 x 255", ...), recorded with every result.
    pixel_scaling: str | None = None
    # Per image: its file name (image folders, photos), and its row in the source as loaded (before a split was
    # picked), so results name images as the user knows them. See row_label.
    names: np.ndarray | None = field(default=None, repr=False)
    source_rows: np.ndarray | None = field(default=None, repr=False)
    # How the images were prepared on loading (resized to one size, faces cropped, labels read from a file):
    # JSON-ready, recorded with every result.
    preparation: dict = field(default_factory=dict, repr=False)
    # Small pictures of that preparation for the report: the first photos with the face box cut out of each
    # (xai_fer.data.photos.FacePreview); not JSON, not in the manifest.
    previews: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        # Checked here, not only in the built-in loaders: a third-party format's mistakes (a list of images,
        # one-hot labels, usage of another length) must read as one line naming the source, not as an
        # IndexError deep in an explainer.
        self.images = np.asarray(self.images)
        if self.images.ndim == 3:
            self.images = self.images[..., None]
        if self.images.ndim != 4:
            raise UserError(f"{self.source}: images must be (N, H, W[, C]), got shape {self.images.shape}")
        rows = len(self.images)
        if self.labels is not None and len(self.labels) != rows:
            raise UserError(f"{self.source}: {rows} images but {len(self.labels)} labels")
        self.labels = per_image_codes(self.source, self.labels, "labels", rows, len(self.class_names))
        for key in ("names", "source_rows"):
            if getattr(self, key) is not None and len(getattr(self, key)) != rows:
                raise UserError(f"{self.source}: {rows} images but {len(getattr(self, key))} {key}")
        if self.usage is not None:
            usage = np.asarray(self.usage)
            if not (usage.dtype.kind in "iu" and usage.shape == (rows,) and usage.size
                    and MIXED_TEST <= usage.min() and usage.max() < len(SPLITS)):
                usage = per_image_codes(self.source, usage, "usage", rows, len(SPLITS))  # also reads split names
            self.usage = usage

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, index) -> Dataset:
        """A new Dataset of the selected rows (a slice, mask or index array)."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return Dataset(
            images=self.images[index],
            labels=pick(self.labels),
            class_names=self.class_names,
            source=self.source,
            split=self.split,
            format=self.format,
            ids=pick(self.ids),
            usage=pick(self.usage),
            pixel_scaling=self.pixel_scaling,
            names=pick(self.names),
            source_rows=pick(self.source_rows),
            preparation=self.preparation,
            previews=self.previews,
        )

    def row_label(self, row: int) -> dict:
        """How the user knows image ``row``: its file name, or its row (and line, in a CSV file) in the source."""
        label = {}
        if self.names is not None:
            label["name"] = str(self.names[row])
        if self.source_rows is not None:
            source_row = int(self.source_rows[row])
            label["source_row"] = source_row
            if "name" not in label and str(self.source).lower().endswith(".csv"):
                label["name"] = f"line {source_row + 2}"  # the header is line 1, each image one line
        if self.ids is not None:
            label["id"] = int(self.ids[row])
        return label

    def put_on_255_scale(self, chunk: int = 4096) -> None:
        """Put the pixels on the 0-255 scale every input adapter assumes: float images on a 0-1 scale are
        multiplied by 255, 16-bit ones scaled down (as the image-folder loader does for 16-bit PNGs), and floats
        that overshoot 0-255 by at most one level (a resampling's ringing) are clipped. Other ranges are refused:
        standardised pixels, other bit depths (12-bit values in 16-bit integers, integers above 255 in wider
        types), where no fixed scaling is right. Decided on the whole source, before a split is picked, so every
        split is scaled alike; the range is found chunk by chunk, without a copy of the images."""
        images = self.images
        if images.dtype == np.uint8 or not len(images):
            return
        if images.dtype.kind not in "uif":
            raise UserError(f"{self.source}: images must be numeric pixels, got {images.dtype}",
                            "store pixels as integers 0-255 (or floats 0-1)")
        low, high = np.inf, -np.inf
        for start in range(0, len(images), chunk):
            block = images[start:start + chunk]
            finite = block[np.isfinite(block)] if images.dtype.kind == "f" else block  # NaN: check_finite's
            if finite.size:
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
        if not np.isfinite(low):
            return
        is_float, sixteen_bit = images.dtype.kind == "f", images.dtype == np.uint16 and high > 4095
        if is_float and low >= -0.01 and high <= 1.01:  # 0-1 floats, with a resampling's slight overshoot
            self.images = np.clip(images.astype(np.float32), 0, 1) * np.float32(255.0)
            self.pixel_scaling = "floats 0-1 x 255" + (" (clipped to 0-1 first)" if low < 0 or high > 1 else "")
        elif sixteen_bit:
            self.images = images.astype(np.float32) * np.float32(255.0 / 65535.0)
            self.pixel_scaling = "16-bit x 255/65535"
        elif is_float and low >= -1 and 32 < high <= 256 and (low < 0 or high > 255):
            # 0-255 floats that overshoot by at most one level; a brightest pixel of 32 or less is no 0-255 image
            self.images = np.clip(images, 0, 255)
            self.pixel_scaling = "clipped to 0-255"
        elif low < 0 or high > 255:
            raise UserError(f"{self.source}: pixel values run from {low:g} to {high:g}, not 0-255",
                            "store raw pixels (integers 0-255, 16-bit integers, or floats 0-1), not standardised "
                            "or [-1, 1] ones or other bit depths: xai-fer applies each model's own scaling")

    def check_finite(self, chunk: int = 1024) -> None:
        """Refuse float images holding NaN or infinite pixels: no scaling gives them a meaning, and a model's
        output on them is NaN, so predictions, metrics and gradients would be silently wrong. Checked in chunks
        (no full-size temporary); integer images are always finite."""
        if self.images.dtype.kind not in "fc":
            return
        bad = [start + np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))
               for start in range(0, len(self.images), chunk) for block in [self.images[start:start + chunk]]]
        rows = np.concatenate(bad) if bad else np.zeros(0, np.int64)
        if len(rows):
            where = f" of the {self.split} split" if self.split else ""
            raise UserError(
                f"{self.source}: {len(rows)} image{'s' if len(rows) > 1 else ''} hold NaN or infinite pixel values "
                f"(first: row {rows[0]}{where})",
                "replace them (e.g. np.nan_to_num) or drop those rows",
            )

    def select_split(self, split: str | None) -> Dataset:
        """Rows of one FER2013 Usage split. A source without a Usage column accepts only None, or the one split
        it is known to hold: handing back all its rows as "PrivateTest" would report the wrong numbers."""
        split = canonical_split(split)
        if split is None or (self.usage is None and self.split == split):
            return self
        if self.usage is None:
            if self.split is not None:
                raise UserError(f"{self.source} holds the {self.split} split only, not {split}", "drop --split")
            raise UserError(f"{self.source} has no Usage column to pick the {split} split from",
                            "drop --split, or use a source with FER2013's Usage (fer2013.csv, .h5, .npz)")
        chosen = self.subset(self.usage == SPLITS.index(split))
        chosen.split = split
        chosen.usage = None
        if len(chosen) == 0 and split != "Training" and (self.usage == MIXED_TEST).any():
            raise UserError(f"{self.source}: its test folder holds PublicTest and PrivateTest together (Kaggle's "
                            f"image copy), so it is not the {split} split",
                            "point --data at the test folder itself to use all of it")
        if len(chosen) == 0:
            raise UserError(f"{self.source} has no rows in split {split}", "pick another --split")
        return chosen


class DatasetFormat(Protocol):
    """What a dataset plugin registers."""

    name: str
    description: str

    def detect(self, path: Path) -> bool:
        """True when this format can read ``path`` (cheap: look at the name and the first bytes only)."""

    def load(self, path: Path) -> Dataset:
        """Read the whole source; raise ``UserError`` naming file and line for malformed content."""
