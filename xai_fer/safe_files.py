"""Files checked before they are read: what kind of file a path is, and what zip archives and ``.npy`` headers
declare.

A FIFO or a device (``/dev/zero``, a named pipe) never ends, or blocks until someone writes to it: data and
models must be regular files (and folders where a folder format is expected). ``XAI_FER_ALLOW_SPECIAL_FILES=1``
lets data sources through anyway (a pipe from ``<(zcat fer2013.csv.gz)`` with ``--format fer-csv``), and the
limits of :mod:`xai_fer.limits` still bound how much is read. Zip members and ``.npy`` headers declare their
sizes; those are checked against the limits, and against what the file really holds, before numpy or Keras
reads a byte of the data.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError, reason
from .limits import CONFIG_BYTES, DATA_BYTES, IMAGE_PIXELS, MODEL_BYTES, Limit, array_bytes

ALLOW_SPECIAL = "XAI_FER_ALLOW_SPECIAL_FILES"
_KINDS = ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def check_kind(path: Path, what: str, special_ok: bool = False) -> None:
    """Refuse a path that is neither a regular file nor a directory (callers deal with directories), and a link
    that points nowhere, in one line. ``special_ok``: a data source, which ``XAI_FER_ALLOW_SPECIAL_FILES=1``
    lets through. A path that does not exist is left to the caller, which knows what to suggest."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise UserError(f"{what} {str(path)!r} is a link to {os.readlink(path)!r}, which does not exist",
                            "fix the link, or pass the file itself") from None
        return
    except OSError as exc:  # a loop of links, a name too long, no permission on a folder on the way
        raise UserError(f"{what} {str(path)!r} cannot be opened ({exc.strerror or exc})",
                        "check the path and its permissions") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    if special_ok and os.environ.get(ALLOW_SPECIAL, "").strip() not in ("", "0"):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "special file")
    hint = "pass a regular file" + (f" (or set {ALLOW_SPECIAL}=1 to read it as a stream, with --format)"
                                    if special_ok else "; copy it into a file first")
    raise UserError(f"{what} {str(path)!r} is a {kind}, not a regular file: reading it could wait forever or "
                    "never end", hint)


def npy_declared_bytes(handle, stored: int, where: str) -> int:
    """The size in bytes that the ``.npy`` header at ``handle`` declares, checked against the ``stored`` bytes
    of the file (or zip member) it heads: a header that claims more than the file holds is damaged or forged,
    and numpy would allocate what it claims before noticing. 0 for object arrays (numpy refuses those without
    pickle) and for data that is no ``.npy`` at all (numpy says so itself)."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(handle)
    except ValueError:
        return 0
    try:
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = npy.read_array_header_2_0(handle)
        else:  # (3, 0): a UTF-8 header, read by numpy's own helper
            shape, _, dtype = npy._read_array_header(handle, version)  # noqa: SLF001
    except (ValueError, TypeError, SyntaxError, EOFError) as exc:
        raise UserError(f"{where}: damaged .npy header ({exc})", "save the array again with numpy") from None
    if any(int(n) < 0 for n in shape):
        raise UserError(f"{where}: damaged .npy header (shape {shape})", "save the array again with numpy")
    if dtype.hasobject:
        return 0
    declared, available = array_bytes(shape, dtype), stored - handle.tell()
    if declared > available:
        raise UserError(f"{where}: its .npy header declares {'x'.join(map(str, shape)) or 'a scalar'} {dtype} "
                        f"({DATA_BYTES.show(declared)}) but only {DATA_BYTES.show(max(available, 0))} of data "
                        "follow: the file is damaged or was not written by numpy", "save the array again with numpy")
    return declared


def check_npy(path: Path, where: str, limit: Limit = DATA_BYTES) -> None:
    """A ``.npy`` file's header, checked against its size and ``limit`` before numpy reads it."""
    with open(path, "rb") as handle:
        declared = npy_declared_bytes(handle, os.fstat(handle.fileno()).st_size, where)
    limit.check(declared, where, " (as its header declares)")


def check_npz(path: Path, keys, limit: Limit = DATA_BYTES) -> None:
    """The members ``keys`` of an ``.npz`` archive (those present; None: all), checked before numpy reads them:
    each zip member's unpacked size and ``.npy`` header, and their declared total against ``limit``."""
    with zipfile.ZipFile(path) as archive:
        check_npz_members(archive, str(path), keys, limit)


def check_npz_members(archive: zipfile.ZipFile, where: str, keys, limit: Limit) -> None:
    """:func:`check_npz` on an open archive, named ``where`` in messages."""
    total = 0
    names = set(archive.namelist())
    keys = [name.removesuffix(".npy") for name in sorted(names)] if keys is None else keys
    for key in keys:
        name = f"{key}.npy" if f"{key}.npy" in names else key if key in names else None
        if name is None:
            continue
        info = archive.getinfo(name)
        limit.check(info.file_size, f"{where}: {key!r}", " unpacked")
        with archive.open(info) as handle:
            total += npy_declared_bytes(handle, info.file_size, f"{where}: {key!r}")
    limit.check(total, where, " (its arrays as declared)")


def check_keras_archive(path: Path, archive: zipfile.ZipFile) -> None:
    """A ``.keras`` archive's members, before Keras unpacks them: the architecture files against
    ``CONFIG_BYTES``, all members together against ``MODEL_BYTES``, and the weights file (HDF5) as
    :func:`xai_fer.safe_hdf5.check_tree` checks a model."""
    infos = archive.infolist()
    for info in infos:
        if info.filename in ("config.json", "metadata.json"):
            CONFIG_BYTES.check(info.file_size, f"{path}: {info.filename}", " unpacked")
    MODEL_BYTES.check(sum(info.file_size for info in infos), str(path), " unpacked")
    names = archive.namelist()
    for name, check in (("model.weights.h5", _check_h5_weights), ("model.weights.npz", _check_npz_weights)):
        if name not in names:
            continue
        info = archive.getinfo(name)
        if info.compress_type == zipfile.ZIP_STORED:  # as Keras writes it: read in place
            with open(path, "rb") as handle:
                check(_StoredMember(handle, info), f"{path}:{name}")
        else:  # decompressed whole (its size was checked above), as Keras itself does
            with archive.open(info) as member:
                check(io.BytesIO(member.read()), f"{path}:{name}")


class _StoredMember(io.RawIOBase):
    """An uncompressed zip member as a read-only, seekable file. zipfile's own member file re-reads the member
    from its start at every backward seek (Python < 3.12), and HDF5 seeks back and forth through its metadata:
    minutes for a model of gigabytes."""

    def __init__(self, handle, info: zipfile.ZipInfo):
        super().__init__()
        handle.seek(info.header_offset)
        local = handle.read(30)  # the local file header: its name and extra field lengths vary from the central one
        if local[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {info.filename}")
        name_length, extra_length = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        self._handle, self._start = handle, info.header_offset + 30 + name_length + extra_length
        self._size, self._position = info.file_size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self._size - self._position))
        self._handle.seek(self._start + self._position)
        data = self._handle.read(count)
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)


def _check_h5_weights(source, where: str) -> None:
    import h5py

    from . import safe_hdf5

    try:
        handle = h5py.File(source, "r")
    except OSError as exc:
        raise UserError(f"{where}: the weights are not a readable HDF5 file ({reason(exc)})",
                        "copy or export the model again") from None
    with handle:
        safe_hdf5.check_tree(handle, Path(where), MODEL_BYTES)


def _check_npz_weights(source, where: str) -> None:
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{where}: the weights are not a readable .npz archive ({exc})",
                        "copy or export the model again") from None
    with archive:
        check_npz_members(archive, where, None, MODEL_BYTES)


@contextmanager
def open_image(file: Path, what: str = "image"):
    """``file`` opened with Pillow (lazily: the header only), checked against the pixel limit before anything is
    decoded. Whatever goes wrong reading it, then or while the caller decodes it (a damaged, truncated or
    forged file, a decompression bomb, too little memory), is one line naming the file: the user's file, not a
    bug here. Special files (a FIFO named face.png) are refused before Pillow waits on them (``what`` names the
    file in that line: "image", "image_file"). Every image a user gives is read through here."""
    import warnings

    from PIL import Image

    check_kind(file, what)
    budget = IMAGE_PIXELS.value()
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = budget or None  # Pillow's own bomb check follows the limit (it errs at twice it)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check below refuses those
            with Image.open(file) as image:
                _check_pixels(file, image)
                yield image
    except UserError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's check, at twice the limit: the same line as ours
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(file) as image:  # the header again, for its size: nothing is decoded
            _check_pixels(file, image)
        raise UserError(f"{file}: {exc}", "check the image") from None  # only if Pillow's rule changes
    except MemoryError:
        raise UserError(f"{file}: not enough memory to decode it", "free memory, or use smaller images") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError... on damaged files
        raise UserError(f"{file}: not a readable image ({type(exc).__name__}: {reason(exc)})",
                        "remove or replace it") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _check_pixels(file: Path, image) -> None:
    width, height = image.size
    IMAGE_PIXELS.check(width * height, f"{file} ({width}x{height})")
