"""SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of the image, which keeps what is
stable and cancels the pixel-level noise of a single gradient. With zero noise it is vanilla saliency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xai_fer.explain.attribution import Attribution, AttributionOptions
from xai_fer.explain.gradients import saliency_maps
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option


@dataclass
class SmoothGradOptions(AttributionOptions):
    samples: int = option(16, "noisy copies per image")
    noise: float = option(0.15, "noise standard deviation as a fraction of the input range (0-255)")
    variant: Literal["mean", "squared", "variance"] = option(
        "mean", "mean: |mean gradient| (SmoothGrad); squared: mean of squared gradients; variance: their "
                "variance (VarGrad)")

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.samples <= 1024:
            raise ValueError("samples must be in 1..1024")
        if not 0 <= self.noise <= 1:
            raise ValueError("noise must be in [0, 1] (a fraction of the input range)")


class SmoothGrad(Attribution):
    name = "smoothgrad"
    description = "SmoothGrad: gradients averaged over noisy copies of each image (also squared and VarGrad)"
    Options = SmoothGradOptions
    figure_label = "smoothgrad"
    batch_independent = False  # noise is drawn for the whole chunk at once: an image's noise depends on its size
    map_description = ("gradient statistics over noisy copies (Gaussian, sigma = noise x 255), max over channels, "
                       "scaled to [0, 1] per image")

    def attribute(self, engine, images, targets, options):
        low, high = engine.data_range
        sigma = options.noise * (high - low)
        rng = engine.rng(salt=1)
        total = np.zeros_like(images)
        squares = np.zeros_like(images)
        for _ in range(options.samples):
            noisy = images + rng.normal(0.0, sigma, images.shape).astype(np.float32) if sigma else images
            gradient = engine.gradients(noisy, targets)
            total += gradient
            squares += gradient * gradient
        mean = total / options.samples
        if options.variant == "mean":
            return saliency_maps(mean)
        if options.variant == "squared":
            return saliency_maps(squares / options.samples)
        return saliency_maps(np.maximum(squares / options.samples - mean * mean, 0))


@hookimpl
def register_explainers(register):
    register(SmoothGrad())
