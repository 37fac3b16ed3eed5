"""``maps.h5``: every per-image map of a whole-split run in one chunked HDF5 file.

Layout (all datasets indexed by position ``i`` = the i-th explained image)::

    maps/<method>        (N, H, W) float32 or float16, chunked by rows: the map as the method returned it
    targets/<method>     (N,) int64: the class whose score the method explained
    extra/<method>/<key> (N,): per-image numbers a method adds (Integrated Gradients' completeness error)
    rows                 (N,) int64: dataset rows
    names                (N,) str: how the user knows each image (its file name, its line in a CSV, "row 12")
    true                 (N,) int64: true class index, -1 without labels
    predicted            (N,) int64
    confidence           (N,) float32: the softmax probability of the predicted class
    probabilities        (N, K) float32

Attributes: ``class_names``, ``methods``, ``signed`` (per method, same order), ``seed``, ``source``. Reading
``maps/<method>[i:j]`` reads only those rows, so a map of any row is at hand without loading the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import atomic
from ..errors import UserError
from ..lazy import np

_ROWS_PER_H5_CHUNK = 64  # rows per HDF5 chunk: a slice of a few rows reads a few hundred kB
_FLOAT16_MAX = 65504.0


def image_names(dataset, rows) -> list[str]:
    """How the user knows each image: ``Dataset.row_label``'s name, else ``row N``."""
    out = []
    for row in rows:
        label = dataset.row_label(int(row))
        out.append(str(label.get("name") or (f"id {label['id']}" if "id" in label else f"row {int(row)}")))
    return out


def write_maps_file(path: Path, context, rows, methods: dict, targets: dict, chunks, dtype: str) -> None:
    """Write ``maps.h5`` at ``path`` (under a temporary name, then renamed). ``methods``: name -> Attribution;
    ``chunks``: an iterable of ``(start, stop, {method: {"values", "per_image"}})`` in any order."""
    atomic.write_with(Path(path), lambda tmp: _write(tmp, context, np.asarray(rows), methods, targets, chunks,
                                                     dtype), suffix=".h5")


def _write(tmp: Path, context, rows, methods: dict, targets: dict, chunks, dtype: str) -> None:
    import h5py

    n = len(rows)
    height, width = context.dataset.images.shape[1:3]
    probabilities = context.probabilities[rows].astype(np.float32)
    predicted = probabilities.argmax(axis=1)
    with h5py.File(tmp, "w") as handle:
        handle.create_dataset("rows", data=rows.astype(np.int64))
        handle.create_dataset("names", data=image_names(context.dataset, rows), dtype=h5py.string_dtype())
        labels = context.labels
        true = np.asarray(labels)[rows].astype(np.int64) if labels is not None else np.full(n, -1, np.int64)
        handle.create_dataset("true", data=true)
        handle.create_dataset("predicted", data=predicted.astype(np.int64))
        handle.create_dataset("confidence", data=probabilities[np.arange(n), predicted])
        handle.create_dataset("probabilities", data=probabilities)
        handle.attrs["class_names"] = list(context.class_names)
        handle.attrs["methods"] = list(methods)
        handle.attrs["signed"] = [bool(method.signed) for method in methods.values()]
        handle.attrs["seed"] = int(context.seed)
        handle.attrs["source"] = str(context.dataset.source)
        for name in methods:
            handle.create_dataset(f"targets/{name}", data=np.asarray(targets[name], dtype=np.int64))
            handle.create_dataset(f"maps/{name}", shape=(n, height, width), dtype=dtype,
                                  chunks=(min(_ROWS_PER_H5_CHUNK, max(n, 1)), height, width))
        notes: dict = {}
        for start, stop, chunk in chunks:
            for name, entry in chunk.items():
                handle[f"maps/{name}"][start:stop] = _stored(entry["values"], dtype, name)
                notes.setdefault(name, {}).update(entry["notes"])
                for key, column in entry["per_image"].items():
                    dataset = handle.require_dataset(f"extra/{name}/{key}", shape=(n,), dtype=column.dtype)
                    dataset[start:stop] = column
        for name, method_notes in notes.items():  # notes a method adds to its summary (the same in every chunk)
            handle["maps"].attrs[f"notes/{name}"] = json.dumps(method_notes, default=atomic.json_default)


def _stored(values, dtype: str, method: str):
    values = np.asarray(values, dtype=np.float32)
    if dtype == "float16" and np.nanmax(np.abs(values), initial=0.0) > _FLOAT16_MAX:
        raise UserError(f"{method}: maps reach values beyond float16's range ({_FLOAT16_MAX:g})",
                        "store them as float32 (--maps-dtype float32)")
    return values.astype(dtype)


def open_maps(path: Path):
    """``maps.h5`` opened read-only (an ``h5py.File``: ``f["maps/saliency"][i:j]`` reads rows i..j-1)."""
    import h5py

    return h5py.File(path, "r")
