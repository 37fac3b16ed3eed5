"""Finding the right dataset plugin for a source and loading it."""

from __future__ import annotations

from pathlib import Path

from xai_fer.lazy import np

from .. import reference, registry
from ..errors import UserError
from ..safe_files import check_kind
from . import photos
from .dataset import MIXED_TEST, SPLITS, Dataset
from .labels import attach_labels


def load_dataset(source, split: str | None = None, format: str | None = None, labels=None, faces: bool = False,
                 allow_mixed_splits: bool = True) -> Dataset:
    """Load ``source`` with the named format, or the first registered format that recognises it.

    ``source``: a path, or several image files (a list, or a glob such as ``photos/*.jpg``). ``labels``: a
    ``.npy`` or one-column ``.csv`` of labels for a source without them (:mod:`xai_fer.data.labels`).
    ``faces``: cut each photo to the face found in it (:class:`xai_fer.data.photos.FaceCropper`).
    ``allow_mixed_splits=False`` (explaining, evaluating) refuses an image folder holding training and test
    folders when no ``split`` picks one of them. ``bundled:sample`` is the bundled PrivateTest sample."""
    source = reference.resolve(source)
    dataset = _load(source, split, format, labels, faces, allow_mixed_splits)
    shown = reference.shown(source) if isinstance(source, (str, Path)) else ""
    if shown.startswith(reference.BUNDLED):
        dataset.source = shown  # named as bundled, not by a site-packages path
    return dataset


def _load(source, split, format, labels, faces, allow_mixed_splits) -> Dataset:
    files = photos.expand_sources(source)
    if files is not None:
        return _finish(_load_files(files, source, format, faces), split, labels, allow_mixed_splits)
    path = Path(source).expanduser()
    check_kind(path, "data source", special_ok=True)  # /dev/zero or a FIFO would never end or block
    if not path.exists():
        raise UserError(f"data source {str(path)!r} does not exist", "check the --data path")
    formats = registry.datasets()
    supported = ", ".join(f"{f.name} ({f.description})" for f in formats.values())
    if path.is_file() and path.stat().st_size == 0:
        raise UserError(f"data source {str(path)!r} is an empty file", f"pass a file with images; {supported}")
    if format is not None:
        loader = registry.lookup("datasets", format)
    else:
        matches = [f for f in formats.values() if _detects(f, path)]
        if not matches:
            seen, advice = _first_line(path)
            raise UserError(f"no dataset format recognises {str(path)!r}{seen}", f"{advice}supported: {supported}")
        loader = matches[0]
    try:
        dataset = loader.load(path, faces=True) if faces else loader.load(path)
    except TypeError as exc:
        if not faces or "faces" not in str(exc):
            raise registry.plugin_failure("datasets", loader.name, f"loading {str(path)!r}", exc) from exc
        raise UserError(f"the {loader.name} format cannot cut out faces (--faces)",
                        "--faces works on photos and image folders") from None
    except UserError:
        raise
    except OSError as exc:  # e.g. --format fer-csv given a folder, or image-folder given a file
        how = f"the {loader.name} format" + (" (chosen with --format)" if format is not None else "")
        other = f" ({exc.filename})" if exc.filename and Path(exc.filename) != path else ""  # a file beside it
        raise UserError(f"{how} cannot read {str(path)!r}{other}: {exc.strerror or exc}",
                        "drop --format to detect the format, or pick the right one" if format is not None
                        else "check the file can be read") from None
    except MemoryError:  # the user's file is larger than this machine can hold, not a bug in the plugin
        raise UserError(f"not enough memory to read {str(path)!r} with the {loader.name} format",
                        "free memory, or use a smaller source") from None
    except Exception as exc:  # a bug in the format's plugin
        raise registry.plugin_failure("datasets", loader.name, f"loading {str(path)!r}", exc) from exc
    if not isinstance(dataset, Dataset):
        raise UserError(f"dataset format {loader.name!r} returned {type(dataset).__name__}, not a Dataset",
                        registry.BROKEN_PLUGIN_HINT)
    if not len(dataset):
        raise UserError(f"{path} holds no images", "pass a source with at least one image")
    dataset.format = loader.name
    return _finish(dataset, split, labels, allow_mixed_splits)


def _finish(dataset: Dataset, split, labels, allow_mixed_splits: bool) -> Dataset:
    """What every source goes through once loaded: labels from a file, the 0-255 scale, each image's row in
    the source (before a split is picked), the split, the check for NaN pixels."""
    if labels is not None:
        dataset = attach_labels(dataset, labels)
    dataset.put_on_255_scale()
    if dataset.source_rows is None:
        dataset.source_rows = np.arange(len(dataset))
    if split is None and not allow_mixed_splits:
        _refuse_mixed_splits(dataset)
    dataset = dataset.select_split(split)
    dataset.check_finite()
    return dataset


def _load_files(files: list[Path], source, format: str | None, faces: bool) -> Dataset:
    """Several image files as one dataset, read by the first format that reads every one of them as a file
    of a set (``load_files``), or the one named."""
    formats = registry.datasets()
    if format is not None:
        candidates = [registry.lookup("datasets", format)]
    else:
        candidates = [f for f in formats.values() if hasattr(f, "load_files") and all(_detects(f, p) for p in files)]
    if not candidates or not hasattr(candidates[0], "load_files"):
        raise UserError(f"no dataset format reads {len(files)} files together ({files[0]}, ...)",
                        "several files at once must be images (.jpg, .jpeg, .png); other sources one at a time")
    loader = candidates[0]
    described = source if isinstance(source, (str, Path)) else ", ".join(map(str, source))
    dataset = loader.load_files(files, faces=faces, source=str(described))
    if not isinstance(dataset, Dataset):
        raise UserError(f"dataset format {loader.name!r} returned {type(dataset).__name__}, not a Dataset",
                        registry.BROKEN_PLUGIN_HINT)
    dataset.format = loader.name
    return dataset


def _refuse_mixed_splits(dataset: Dataset) -> None:
    """An image folder with train/ and test/ folders read as one would explain (and score) training and test
    images together: the user picks one."""
    usage = dataset.usage
    if dataset.format != "image-folder" or usage is None or len(np.unique(usage)) < 2:
        return
    root = Path(dataset.source)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    choices = []
    for code in np.unique(usage).tolist():
        if code == MIXED_TEST:
            test = next((name for name in folders if name.lower() == "test"), "test")
            choices.append(f"--data {root / test}")
        else:
            choices.append(f"--split {SPLITS[code]}")
    counts = ", ".join(f"{(usage == code).sum()} {'test' if code == MIXED_TEST else SPLITS[code]}"
                       for code in np.unique(usage).tolist())
    raise UserError(f"{root} holds the split folders {', '.join(folders)} ({counts}): read together they mix "
                    "training and test images", f"pick one: {' or '.join(choices)}")


def _detects(loader, path: Path) -> bool:
    try:
        return bool(loader.detect(path))
    except Exception as exc:  # one format plugin's bug must not read as a problem with the user's data
        raise UserError(f"dataset format {loader.name!r} failed while checking {str(path)!r}: "
                        f"{type(exc).__name__}: {exc}", registry.BROKEN_PLUGIN_HINT) from None


def _first_line(path: Path) -> tuple[str, str]:
    """What a text file that no format recognises starts with, so the user sees why (a header naming other
    columns, or text that is not UTF-8, e.g. a UTF-16 export), and advice to prefix the hint with."""
    if not path.is_file() or path.suffix.lower() not in (".csv", ".txt", ".tsv"):
        return "", ""
    with open(path, "rb") as handle:
        first = handle.read(4096).split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf16 = " (UTF-16, e.g. Excel's 'Unicode Text')" if first[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        return (f": line 1 is not UTF-8 text{utf16} (byte {first[exc.start]:#04x} at column {exc.start + 1})",
                "save it as UTF-8 (e.g. 'CSV UTF-8'); ")
    return f" (line 1: {text[:120]!r})", ""
