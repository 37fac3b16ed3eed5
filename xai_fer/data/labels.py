"""``--labels FILE``: labels for a source that has none (the homework ``test.csv``, photos, an unlabelled
``.npz``), one per image in the source's order: a ``.npy`` array of class indices, or a one-column CSV of class
indices or class names (a first line that is neither is a header)."""

from __future__ import annotations

from pathlib import Path

from xai_fer.lazy import np

from ..errors import UserError
from ..safe_files import check_kind
from .dataset import Dataset, per_image_codes

_HINT = "give one label per image, in the source's order: a .npy array of class indices, or a one-column .csv"


def attach_labels(dataset: Dataset, path) -> Dataset:
    """``dataset`` with the labels read from ``path`` (checked: one per image, each a class of the dataset)."""
    path = Path(path).expanduser()
    check_kind(path, "--labels")  # a FIFO would block the read
    if dataset.labels is not None:
        raise UserError(f"{dataset.source} has labels of its own, so --labels {path} would replace them",
                        "drop --labels (it is for sources without labels)")
    if not path.is_file():
        raise UserError(f"--labels {str(path)!r} does not exist", _HINT)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        values = _read_npy(path)
    elif suffix in (".csv", ".txt"):
        values = _read_csv(path, dataset.class_names)
    else:
        raise UserError(f"--labels {path}: not a .npy or .csv file", _HINT)
    if np.asarray(values).ndim != 1 or len(values) != len(dataset):
        shape = np.asarray(values).shape
        raise UserError(f"--labels {path}: {shape[0] if shape else 0} labels for {len(dataset)} images"
                        + (f" (an array of shape {shape})" if len(shape) != 1 else ""), _HINT)
    dataset = dataset.subset(slice(None))  # a new Dataset (same pixels): the caller's keeps having no labels
    dataset.labels = per_image_codes(f"--labels {path}", values, "labels", len(dataset), len(dataset.class_names),
                                     f"use class indices 0..{len(dataset.class_names) - 1} "
                                     f"({', '.join(dataset.class_names)})")
    dataset.preparation = {**dataset.preparation, "labels_from": str(path)}
    return dataset


def _read_npy(path: Path) -> np.ndarray:
    from ..safe_files import check_npy

    check_npy(path, f"--labels {path}")  # a forged header would make numpy allocate what it claims
    try:
        return np.load(path, allow_pickle=False)  # never unpickle: a .npy can carry code
    except (OSError, ValueError) as exc:
        raise UserError(f"--labels {path}: not a readable .npy array ({exc})", _HINT) from None


def _read_csv(path: Path, class_names) -> np.ndarray:
    from ..limits import DATA_BYTES

    DATA_BYTES.check(path.stat().st_size, f"--labels {path}")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"--labels {path}: not UTF-8 text", "save it as UTF-8") from None
    names = {name.lower(): index for index, name in enumerate(class_names)}
    values = []
    for number, line in enumerate(lines, 1):
        cell = line.strip().strip('"').strip()
        if "," in cell:
            raise UserError(f"--labels {path}, line {number}: more than one column", _HINT)
        if cell.isdigit():
            values.append(int(cell))
        elif cell.lower() in names:
            values.append(names[cell.lower()])
        elif number == 1:  # a header such as "label" or "emotion"
            continue
        elif not cell and all(not rest.strip() for rest in lines[number:]):  # blank lines at the end
            break
        else:
            raise UserError(f"--labels {path}, line {number}: {cell!r} is not a class index or name",
                            f"use 0..{len(class_names) - 1} or one of {', '.join(class_names)}")
    return np.array(values, dtype=np.int64)
