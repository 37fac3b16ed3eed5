"""Ceilings on what xai-fer reads, checked against the sizes a file DECLARES before anything is read.

A few kilobytes can declare gigabytes: a zip member that inflates a thousandfold, an ``.npy`` header or an HDF5
dataset shape that nobody wrote the data for, a PNG whose header claims 12000x12000 pixels. Reading such a
file would exhaust the memory (or the patience) of the machine long after the command started, so the declared
sizes are compared with these limits first and anything over one is refused in one line that names the file,
the size, the limit and the environment variable that raises it. The defaults fit FER-sized work (FER2013 is
83 MB of pixels) with a wide margin; memory use runs to a few times the data limit (pixels are converted to
float32 for the model).

- ``XAI_FER_MAX_DATA_BYTES`` (default 1G): a data source: its arrays as declared (.npz, HDF5), its images
  once decoded, the size of a CSV file;
- ``XAI_FER_MAX_IMAGE_PIXELS`` (50M): width x height of one image file (Pillow's decompression-bomb check
  follows it);
- ``XAI_FER_MAX_MODEL_BYTES`` (4G): a model: the unpacked members of a .keras archive, the datasets of an .h5
  as declared;
- ``XAI_FER_MAX_CONFIG_BYTES`` (64M): a model's architecture (config.json and metadata.json of a .keras,
  the model_config of an .h5) and a run's records (checkpoints/state.json, the metrics read beside a model).

Sizes take the suffixes K, M, G, T (powers of 1024 for bytes, of 1000 for pixels); ``0`` lifts a limit.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class Limit:
    variable: str
    default: int
    unit: str  # "bytes" or "pixels"
    what: str  # what it bounds, for the message: "xai-fer's data limit"

    def value(self) -> int:
        """The limit in force (the environment variable, else the default); 0 means none."""
        text = os.environ.get(self.variable, "").strip()
        if not text:
            return self.default
        found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", text, re.IGNORECASE)
        if not found:
            raise UserError(f"{self.variable}={text!r} is not a size",
                            f"write a number with an optional K, M, G or T, e.g. {self.variable}="
                            f"{self.show(self.default * 4, exact=False)}")
        base = 1024 if self.unit == "bytes" else 1000
        power = " KMGT".index(found.group(2).upper() or " ")
        return int(float(found.group(1)) * base**power)

    def show(self, amount: int, exact: bool = True) -> str:
        """``amount`` in this limit's unit, readable: '1.5 GiB', '144 megapixels'."""
        if self.unit == "pixels":
            if not exact:
                return f"{math.ceil(amount / 1e6)}M"
            if amount < 10**6:
                return f"{amount:,} pixels"
            return f"{amount / 1e6:.3g} megapixels" if amount < 10**9 else f"{amount / 1e9:.3g} gigapixels"
        if not exact:  # a value to type: the next whole number of the largest unit that fits
            for suffix, size in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("K", 2**10)):
                if amount >= size:
                    return f"{math.ceil(amount / size)}{suffix}"
            return str(amount)
        for suffix, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if amount >= size:
                return f"{amount / size:.3g} {suffix}"
        return f"{amount} bytes"

    def check(self, amount: int, where: str, declared: str = "") -> None:
        """Refuse ``amount`` (what ``where`` declares, described by ``declared``) over the limit in force."""
        limit = self.value()
        if limit and amount > limit:
            raise UserError(f"{where}{declared} is {self.show(amount)}, over {self.what} of {self.show(limit)}",
                            f"if that is what you meant, raise the limit: {self.variable}={self.show(amount, False)}")


DATA_BYTES = Limit("XAI_FER_MAX_DATA_BYTES", 2**30, "bytes", "xai-fer's data limit")
IMAGE_PIXELS = Limit("XAI_FER_MAX_IMAGE_PIXELS", 50_000_000, "pixels", "xai-fer's limit per image")
MODEL_BYTES = Limit("XAI_FER_MAX_MODEL_BYTES", 4 * 2**30, "bytes", "xai-fer's model limit")
CONFIG_BYTES = Limit("XAI_FER_MAX_CONFIG_BYTES", 64 * 2**20, "bytes", "xai-fer's limit for a model's architecture")
ALL = (DATA_BYTES, IMAGE_PIXELS, MODEL_BYTES, CONFIG_BYTES)


def array_bytes(shape, dtype) -> int:
    """What an array of ``shape`` and ``dtype`` (numpy or h5py) takes in memory, without creating it."""
    return math.prod(int(n) for n in shape) * int(dtype.itemsize)
