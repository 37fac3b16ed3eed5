"""Glob patterns for ``--data`` (``photos/*.jpg``, ``shots/**/*.png``), walked with a bound and without loops.

Python's ``glob`` follows linked folders in a recursive ``**`` walk, so a link back to a parent (or ``/proc``,
where every process links to ``/`` and to its working folder) makes the walk go round for ever. Here a ``**``
walk never enters a linked folder (a linked FILE still matches), and the walk stops with one line after
:data:`MAX_ENTRIES` directory entries. The rules are glob's otherwise: ``*``, ``?`` and ``[...]`` match within
one name, ``**`` matches any number of folders (none included), and names starting with a dot are matched only
by a pattern component that starts with a dot.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from ..errors import UserError

# Directory entries one pattern may look at: far more than any folder of photos, a few seconds of listing.
MAX_ENTRIES = 500_000
_WILD = set("*?[")


def glob_files(pattern: str) -> list[Path]:
    """The files ``pattern`` matches, sorted (links to files included, linked folders not walked by ``**``)."""
    path = Path(pattern).expanduser()
    parts = path.parts[1:] if path.anchor else path.parts
    pending = [(Path(path.anchor) if path.anchor else None, 0)]
    found, visited, entries = set(), set(), 0
    while pending:
        folder, index = pending.pop()
        if (folder, index) in visited:
            continue
        visited.add((folder, index))
        if index == len(parts):
            if folder is not None and folder.is_file():
                found.add(folder)
            continue
        part = parts[index]
        if not _WILD & set(part):
            pending.append((_join(folder, part), index + 1))
            continue
        children = _children(folder)
        entries += len(children)
        if entries > MAX_ENTRIES:
            raise UserError(f"--data {pattern!r} looks through more than {MAX_ENTRIES:,} folder entries",
                            "narrow the pattern (a folder closer to the images, no ** over large trees)")
        if part == "**":
            pending.append((folder, index + 1))  # no folder at all
            pending += [(_join(folder, entry.name), index) for entry in children
                        if not entry.name.startswith(".") and _is_real_folder(entry)]
        else:
            pending += [(_join(folder, entry.name), index + 1) for entry in children
                        if _matches(entry.name, part)]
    return sorted(found)


def _join(folder: Path | None, name: str) -> Path:
    return Path(name) if folder is None else folder / name


def _children(folder: Path | None) -> list[os.DirEntry]:
    """The entries of ``folder`` (the working folder for None); none when it cannot be listed."""
    try:
        with os.scandir(folder if folder is not None else ".") as entries:
            return list(entries)
    except OSError:  # not a folder, gone, not readable: glob skips it too
        return []


def _is_real_folder(entry: os.DirEntry) -> bool:
    """A folder that is not a link: a ``**`` walk through links could go round for ever."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _matches(name: str, part: str) -> bool:
    if name.startswith(".") and not part.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, part)
