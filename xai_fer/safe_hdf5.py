"""HDF5 files (data and Keras-2 models) checked before anything is read from them.

HDF5 can point outside the file it is in: external links, virtual datasets (assembled from other files) and
external storage (raw data in other files). When the other file is missing, h5py reads the fill value, zeros,
without a word: the shipped CNN scored 28.57% instead of 64.29% on such a copy of its data. So anything that
reads another file is refused ("cannot be read safely"), and so are links that point nowhere. Shapes are only
declared: a 1.4 kB file can declare a 10 GB dataset it never wrote, so declared sizes are checked against
:mod:`xai_fer.limits` before a dataset is read, and data that was never written is refused.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError, reason
from .limits import Limit, array_bytes

_COPY_HINT = "copy the data into the file itself (h5py: new_file[name] = old_file[name][()])"


def member(group, name: str, path: Path):
    """``group[name]`` when it is an object stored in this file; None when there is no such name. External links
    and links that point nowhere are refused, naming the file and the link."""
    import h5py

    link = group.get(name, getlink=True)
    if link is None:
        return None
    where = _name(group, name)
    if isinstance(link, h5py.ExternalLink):
        raise UserError(f"{path}: {where!r} is an external link to {link.filename}:{link.path}, which cannot be read "
                        "safely (a missing file reads as zeros)", _COPY_HINT)
    target = link.path if isinstance(link, h5py.SoftLink) else "?"
    try:
        found = group.get(name)
    except (RuntimeError, KeyError, OSError) as exc:  # soft links that lead back to themselves: HDF5 gives up
        raise UserError(f"{path}: {where!r} is a link to {target!r}, which loops or cannot be followed "
                        f"({reason(exc)[:120]})", "fix the link or store the data under that name") from None
    if found is None:
        raise UserError(f"{path}: {where!r} is a link to {target!r}, which points nowhere",
                        "fix the link or store the data under that name")
    return found


def dataset(group, name: str, path: Path, limit: Limit, holds: str, hint: str) -> object | None:
    """The dataset ``name`` of ``group`` (None when absent), checked by :func:`check_dataset`; a group or a
    named type where a dataset is expected is refused. ``holds``: what it should hold ("pixels"); ``hint``: how
    to store it."""
    import h5py

    found = member(group, name, path)
    if found is None:
        return None
    if not isinstance(found, h5py.Dataset):
        kind = "a group" if isinstance(found, h5py.Group) else "not a dataset"
        raise UserError(f"{path}: {_name(group, name)!r} is {kind}, not an array of {holds}", hint)
    check_dataset(found, path, limit, written=True)
    return found


def check_dataset(found, path: Path, limit: Limit | None, written: bool = False) -> int:
    """Refuse a dataset whose data lives in other files, or (``limit``) that declares more than it allows, or
    (``written``) that holds no data at all; returns its declared size in bytes."""
    where = found.name.lstrip("/")
    if found.is_virtual:
        sources = sorted({source.file_name for source in found.virtual_sources()})
        raise UserError(f"{path}: {where!r} is a virtual dataset reading {', '.join(sources)}, which cannot be read "
                        "safely (a missing file reads as zeros)", _COPY_HINT)
    if found.external:
        files = sorted({str(entry[0]) for entry in found.external})
        raise UserError(f"{path}: {where!r} keeps its data in the external file(s) {', '.join(files)}, which cannot "
                        "be read safely (a missing file reads as zeros)", _COPY_HINT)
    size = array_bytes(found.shape or (), found.dtype)
    if limit is not None:
        limit.check(size, f"{path}: {where!r}", f" (declared {'x'.join(map(str, found.shape or ()))} {found.dtype})")
    if written and found.size and found.id.get_storage_size() == 0:
        raise UserError(f"{path}: {where!r} declares {'x'.join(map(str, found.shape))} {found.dtype} but no data was "
                        "ever written to it (it would read as zeros)", "write the data, or export the file again")
    return size


def check_tree(handle, path: Path, limit: Limit) -> int:
    """Check every object of an HDF5 file (a Keras-2 model, which is read whole): links, virtual and external
    datasets, and the total declared size against ``limit``. Returns that total in bytes."""
    import h5py

    total, seen, pending = 0, set(), [handle]
    while pending:  # iterative, and each object once: hard and soft links can make cycles
        group = pending.pop()
        for name in group:
            found = member(group, name, path)
            if found.id in seen:
                continue
            seen.add(found.id)
            if isinstance(found, h5py.Group):
                pending.append(found)
            elif isinstance(found, h5py.Dataset):
                total += check_dataset(found, path, None)
    limit.check(total, str(path), " (its datasets as declared)")
    return total


def read(found, path: Path):
    """All of a checked dataset, as numpy; what goes wrong on the way (a damaged chunk, a compression filter
    that is not installed, too little memory) is named with the file and the dataset."""
    try:
        return found[()]
    except MemoryError:
        raise UserError(f"{path}: not enough memory to read {found.name.lstrip('/')!r} ({found.shape} "
                        f"{found.dtype})",
                        "free memory, or use a smaller file") from None
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: cannot read {found.name.lstrip('/')!r} ({reason(exc)})",
                        "the file may be damaged, or compressed with a filter h5py does not have") from None


def attribute(node, name: str, path: Path, limit: Limit):
    """Attribute ``name`` of ``node`` (None when absent), refused when larger than ``limit`` (a model's JSON
    architecture, parsed into many times its size). Attribute data cannot be compressed or left unwritten, so
    reading it takes no more memory than it takes in the file; its size is checked once read."""
    if name not in node.attrs:
        return None
    try:
        value = node.attrs[name]
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: cannot read attribute {name!r} ({exc})", "the file may be damaged") from None
    values = value.ravel().tolist() if hasattr(value, "ravel") and value.dtype == object else [value]
    size = sum(len(v) if isinstance(v, (str, bytes)) else getattr(v, "nbytes", 8) for v in values)
    limit.check(size, f"{path}: attribute {name!r}")
    return value


def _name(group, name: str) -> str:
    return f"{group.name.rstrip('/')}/{name}".lstrip("/") if group.name != "/" else name
