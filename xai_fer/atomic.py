"""Writing files and directories so that a reader never sees a half-written one.

Everything is written next to its destination under a hidden temporary name, then moved into place with
``os.replace`` (atomic on POSIX within one file system). A write that fails or is interrupted (Ctrl-C,
SIGTERM) removes its temp file; only a process killed outright (SIGKILL, power loss) can leave one behind: a
hidden ``.NAME.tmp-*`` entry next to the destination, never read by a later run and safe to delete.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

# Temporary names carry at most this much of the destination's name: a destination whose name is as long as
# the file system allows (255 bytes) must not get a staging name that is longer than that.
_NAME_PART = 40


def temp_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh hidden name in ``path``'s directory (same file system, so os.replace is atomic)."""
    handle, name = tempfile.mkstemp(prefix=f".{_short(path.name)}.tmp-", suffix=suffix, dir=path.parent)
    os.close(handle)
    # mkstemp makes the file owner-only; a result should get the usual permissions of a new file.
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def temp_directory_sibling(path: Path) -> Path:
    """A fresh hidden directory next to ``path``, with the usual permissions of a new directory (mkdtemp makes
    it owner-only, and it becomes the result)."""
    name = tempfile.mkdtemp(prefix=f".{_short(path.name)}.tmp-", dir=path.parent)
    os.chmod(name, 0o777 & ~_umask())
    return Path(name)


def _short(name: str) -> str:
    return name[:_NAME_PART]


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


def replace_directory(staging: Path, final: Path, replace: bool = True) -> None:
    """Move a fully written ``staging`` directory to ``final``, replacing an old one only at the last moment.

    The old directory is first renamed aside (to a fresh hidden name, so a folder left by a run killed at that
    instant is never in the way), so at every instant either the old or the new results exist. With
    ``replace=False`` an existing ``final`` that is not empty stays, and ``FileExistsError`` says that another
    process wrote it first (the kernel's rename refuses to replace a directory that is not empty).
    """
    if not replace:
        try:
            os.rename(staging, final)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(errno.EEXIST, "written by another process meanwhile", str(final)) from None
            raise
        return
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{_short(final.name)}.old-", dir=final.parent))
        try:
            os.replace(final, old)  # onto the fresh empty directory
        except FileNotFoundError:  # another run moved it away meanwhile: nothing to set aside
            old.rmdir()
            old = None
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def stop_signals_as_interrupt():
    """SIGTERM and SIGHUP (a closed terminal or ssh session) behave like Ctrl-C: ``KeyboardInterrupt`` unwinds
    the stack, so a staging directory or temp file is removed on any of them."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signals = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {}
    try:
        for number in signals:
            previous[number] = signal.signal(number, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for number, handler_before in previous.items():
            signal.signal(number, handler_before)


# Failures that say where the output goes cannot take it (full, read-only, too large, not allowed, too long).
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                errno.ENAMETOOLONG, errno.EIO, errno.EMLINK, errno.ETXTBSY}
_WRITE_HINTS = {errno.ENOSPC: "free some space there, or pick an --out on another disk",
                errno.EDQUOT: "free some of your quota there, or pick an --out on another disk",
                errno.EFBIG: "the file system or a file size limit (ulimit -f) refuses a file this large: raise the "
                             "limit or pick an --out on another disk"}


def write_error(exc: OSError, where: Path, hint: str | None = None) -> UserError | None:
    """The one-line error for an ``OSError`` met while writing under ``where``; None for other failures (a bug
    then, which keeps its traceback)."""
    if exc.errno not in WRITE_ERRNOS:
        return None
    # The folder, not the file: files are written under hidden temporary names first.
    return UserError(f"cannot write in {where}: {exc.strerror or os.strerror(exc.errno)}",
                     hint or _WRITE_HINTS.get(exc.errno, "pick a writable --out"))


def _exists(path: Path) -> bool:
    """``path.exists()`` that also says no for a name too long to look up (Path.exists raises then)."""
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def _nearest_existing(path: Path) -> Path:
    ancestor = path.parent
    while not _exists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    return ancestor


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


def check_path_length(path: Path, flag: str = "--out") -> None:
    """Refuse, before anything looks at it, a ``path`` whose new names are longer than the file system allows
    (or whose whole length leaves no room for the files written inside): such a path fails only when the
    results are written. Temporary names beside it are short (see ``temp_sibling``)."""
    path = Path(path)
    ancestor = _nearest_existing(path)
    limit = _limit(ancestor, "PC_NAME_MAX", 255)
    for part in path.parts[len(ancestor.parts):]:
        size = len(os.fsencode(part))
        if size > limit:
            raise UserError(f"{flag} {path}: the name {part[:40]}... is {size} bytes, and this file system allows "
                            f"{limit}", f"pick a shorter {flag}")
    longest = _limit(ancestor, "PC_PATH_MAX", 4096)
    # The deepest file a run writes lies a few short names below it (an explainer folder, a figure).
    if len(os.fsencode(os.path.abspath(path))) + 128 >= longest:
        raise UserError(f"{flag} {path} is too long a path for this file system ({longest} bytes at most, "
                        "including the files written inside)", f"pick a shorter {flag}")


def check_writable(path: Path, flag: str = "--out") -> None:
    """Refuse, before any work, a ``path`` that cannot be created or written: a name too long for its file
    system (see :func:`check_path_length`), a parent that is a file, a place that refuses a new directory
    (read-only, immutable, a special file system such as /proc, a full disk). The check makes and removes one
    hidden directory beside ``path`` (in its nearest existing folder) and one in it when it exists."""
    path = Path(path)
    check_path_length(path, flag)
    ancestor = _nearest_existing(path)
    if not ancestor.is_dir():
        raise UserError(f"cannot create {flag} {path}: {ancestor} is a file, not a directory",
                        f"pick another {flag}")
    for folder in (ancestor, *([path] if path.is_dir() else [])):  # beside it, and in it when it exists
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".xai-fer-probe-", dir=folder))
        except OSError as exc:
            raise UserError(f"cannot write in {folder} ({flag} {path}): {exc.strerror}",
                            _WRITE_HINTS.get(exc.errno, f"pick a writable {flag}")) from None
    # An immutable or read-only folder: refused even to root, who passes every permission check above.
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"cannot write in {flag} {path}", f"pick a writable {flag}")


def lock_or_refuse(handle: int, message: str, hint: str) -> int:
    """Take an exclusive lock on the open file or folder ``handle`` without waiting, or close it and refuse in
    one line (another run holds it); the lock lasts until the handle is closed. Returns the handle."""
    import fcntl

    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(handle)
        raise UserError(message, hint) from None
    return handle
