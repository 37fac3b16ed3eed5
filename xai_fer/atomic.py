"""Writing files and directories so that a reader never sees a half-written one.

Everything is written next to its destination under a hidden temporary name, then moved into place with
``os.replace`` (atomic on POSIX within one file system). A write that fails or is interrupted (Ctrl-C,
SIGTERM) removes its temp file; only a process killed outright (SIGKILL, power loss) can leave one behind: a
hidden ``.NAME.tmp-*`` entry next to the destination, never read by a later run and safe to delete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def temp_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh hidden name in ``path``'s directory (same file system, so os.replace is atomic)."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=suffix, dir=path.parent)
    os.close(handle)
    # mkstemp makes the file owner-only; a result should get the usual permissions of a new file.
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def temp_directory_sibling(path: Path) -> Path:
    """A fresh hidden directory next to ``path``, with the usual permissions of a new directory (mkdtemp makes
    it owner-only, and it becomes the result)."""
    name = tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.chmod(name, 0o777 & ~_umask())
    return Path(name)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_with(path: Path, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Call ``writer(temp_path)`` and move the result to ``path``; the temp file goes away on any failure.

    ``suffix`` keeps writers that insist on an extension (Keras wants ``.keras`` or ``.weights.h5``) happy.
    """
    path = Path(path)
    tmp = temp_sibling(path, suffix or "".join(path.suffixes))
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_with(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def save_keras(model, path: Path) -> None:
    """``model.save`` without ever leaving a truncated ``.keras`` file at ``path``."""
    write_with(Path(path), lambda tmp: model.save(tmp), suffix=".keras")


def replace_directory(staging: Path, final: Path) -> None:
    """Move a fully written ``staging`` directory to ``final``, replacing an old one only at the last moment.

    The old directory is first renamed aside, so at every instant either the old or the new results exist.
    """
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
