"""sha256 fingerprints that records keep of what they were made from: the model in an explain manifest, the
teachers and starting model of a training run, the images a run trains and validates on. Shared by the explain
and training sides, so that neither imports the other for it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def arrays_sha256(*arrays) -> str:
    """One digest of the arrays' bytes, in order (C order, whatever their memory layout)."""
    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
