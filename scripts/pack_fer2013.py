"""Pack FER2013 small enough to travel to a lent GPU machine, and unpack it there, losslessly.

    python scripts/pack_fer2013.py pack ../shared/data/fer2013.h5 .gpu/fer2013.xz --splits Training PublicTest
    python scripts/pack_fer2013.py unpack .gpu/fer2013.xz ../shared/data/fer2013.h5     # on the GPU machine

The device tool carries at most 64 MiB per call and the h5 is 81 MB, so the pixels are stored as the residuals of
the median edge detector (the LOCO-I / JPEG-LS predictor) compressed with xz: about 0.68 bytes a pixel instead of
0.98 for the gzip in the h5. Only numpy, h5py and the standard library are needed, all present on that machine.
The unpacked file has the h5's ``images``, ``labels``, ``usage`` and class names, and the pack records the
sha256 of the images so that unpacking checks it got the same pixels back.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
from pathlib import Path

import h5py
import numpy as np

SPLITS = ("Training", "PublicTest", "PrivateTest")


def _neighbours(x: np.ndarray, row: int, col: int):
    """(left, up, up-left) pixels of every image at (row, col), zero outside the image."""
    left = x[:, row, col - 1] if col else np.zeros(len(x), np.int16)
    up = x[:, row - 1, col] if row else np.zeros(len(x), np.int16)
    up_left = x[:, row - 1, col - 1] if row and col else np.zeros(len(x), np.int16)
    return left, up, up_left


def _med(left, up, up_left):
    high, low = np.maximum(left, up), np.minimum(left, up)
    return np.where(up_left >= high, low, np.where(up_left <= low, high, left + up - up_left))


def encode(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.int16)
    left = np.zeros_like(x)
    left[:, :, 1:] = x[:, :, :-1]
    up = np.zeros_like(x)
    up[:, 1:, :] = x[:, :-1, :]
    up_left = np.zeros_like(x)
    up_left[:, 1:, 1:] = x[:, :-1, :-1]
    return ((x - _med(left, up, up_left)) % 256).astype(np.uint8)


def decode(residuals: np.ndarray) -> np.ndarray:
    x = np.zeros(residuals.shape, np.int16)
    for row in range(x.shape[1]):  # raster order: each pixel is predicted from pixels already decoded
        for col in range(x.shape[2]):
            x[:, row, col] = (_med(*_neighbours(x, row, col)) + residuals[:, row, col]) % 256
    return x.astype(np.uint8)


def pack(h5_path: Path, out: Path, splits: list[str]) -> None:
    with h5py.File(h5_path, "r") as handle:
        usage = handle["usage"][()]
        rows = np.flatnonzero(np.isin(usage, [SPLITS.index(s) for s in splits]))
        images, labels = handle["images"][()][rows], handle["labels"][()][rows]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in handle.attrs["class_names"]]
    header = {"shape": list(images.shape), "class_names": names, "splits": splits,
              "sha256": hashlib.sha256(images.tobytes()).hexdigest()}
    buffer = io.BytesIO()
    np.savez(buffer, residuals=encode(images), labels=labels, usage=usage[rows].astype(np.uint8),
             header=np.array(json.dumps(header)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.compress(buffer.getvalue(), preset=9))
    print(f"{out}: {len(rows)} images ({', '.join(splits)}), {out.stat().st_size / 1e6:.1f} MB")


def unpack(packed: Path, h5_path: Path) -> None:
    with np.load(io.BytesIO(lzma.decompress(packed.read_bytes())), allow_pickle=False) as arrays:
        header = json.loads(str(arrays["header"]))
        images = decode(arrays["residuals"])
        labels, usage = arrays["labels"], arrays["usage"]
    if hashlib.sha256(images.tobytes()).hexdigest() != header["sha256"]:
        raise SystemExit(f"{packed}: the unpacked pixels differ from the packed ones")
    h5_path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(h5_path, "w") as handle:
        handle["images"], handle["labels"], handle["usage"] = images, labels, usage
        handle.attrs["class_names"] = header["class_names"]
        handle.attrs["usage_names"] = list(SPLITS)
    print(f"{h5_path}: {len(images)} images ({', '.join(header['splits'])}), pixels verified")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("pack")
    p.add_argument("h5", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    u = verbs.add_parser("unpack")
    u.add_argument("packed", type=Path)
    u.add_argument("h5", type=Path)
    args = parser.parse_args()
    pack(args.h5, args.out, args.splits) if args.verb == "pack" else unpack(args.packed, args.h5)


if __name__ == "__main__":
    main()
