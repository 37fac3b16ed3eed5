"""Finding the right dataset plugin for a source and loading it."""

from __future__ import annotations

from pathlib import Path

from .. import registry
from ..errors import UserError
from .dataset import Dataset


def load_dataset(source: str | Path, split: str | None = None, format: str | None = None) -> Dataset:
    """Load ``source`` with the named format, or the first registered format that recognises it."""
    path = Path(source).expanduser()
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
        dataset = loader.load(path)
    except UserError:
        raise
    except OSError as exc:  # e.g. --format fer-csv given a folder, or image-folder given a file
        how = f"the {loader.name} format" + (" (chosen with --format)" if format is not None else "")
        other = f" ({exc.filename})" if exc.filename and Path(exc.filename) != path else ""  # a file beside it
        raise UserError(f"{how} cannot read {str(path)!r}{other}: {exc.strerror or exc}",
                        "drop --format to detect the format, or pick the right one" if format is not None
                        else "check the file can be read") from None
    except Exception as exc:  # a bug in the format's plugin
        raise registry.plugin_failure("datasets", loader.name, f"loading {str(path)!r}", exc) from exc
    if not isinstance(dataset, Dataset):
        raise UserError(f"dataset format {loader.name!r} returned {type(dataset).__name__}, not a Dataset",
                        registry.BROKEN_PLUGIN_HINT)
    if not len(dataset):
        raise UserError(f"{path} holds no images", "pass a source with at least one image")
    dataset.format = loader.name
    dataset.put_on_255_scale()
    dataset = dataset.select_split(split)
    dataset.check_finite()
    return dataset


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
