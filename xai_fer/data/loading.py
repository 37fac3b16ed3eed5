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
    if format is not None:
        loader = registry.lookup("datasets", format)
    else:
        matches = [f for f in formats.values() if f.detect(path)]
        if not matches:
            names = ", ".join(f"{f.name} ({f.description})" for f in formats.values())
            raise UserError(f"no dataset format recognises {str(path)!r}", f"supported: {names}")
        loader = matches[0]
    dataset = loader.load(path)
    dataset.format = loader.name
    return dataset.select_split(split)
