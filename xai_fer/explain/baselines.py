"""Reference images that path and perturbation methods measure from (Integrated Gradients' baseline, the fill
of occlusion and RISE): each a data-space batch like the images it stands for."""

from __future__ import annotations

from xai_fer.lazy import np

from .images import gaussian_blur

BASELINES = ("black", "mid-grey", "blurred")


def baseline_images(images, kind: str, engine) -> np.ndarray:
    """``black``: 0 (the data's darkest value); ``mid-grey``: the middle of the data's range, which every input
    scaling maps to its own middle (0.5 on [0, 1], 0 on [-1, 1]); ``blurred``: a Gaussian-blurred copy
    (sigma 5 px at 48x48, scaled with size), which removes detail but keeps brightness."""
    images = np.asarray(images, dtype=np.float32)
    if kind == "black":
        return np.full_like(images, engine.data_range[0])
    if kind == "mid-grey":
        return np.full_like(images, engine.mid_grey)
    if kind == "blurred":
        return gaussian_blur(images)
    raise ValueError(f"unknown baseline {kind!r}: use one of {', '.join(BASELINES)}")
