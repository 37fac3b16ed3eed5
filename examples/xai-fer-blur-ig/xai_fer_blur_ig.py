"""Blur Integrated Gradients (Xu et al., CVPR 2020): Integrated Gradients along a path from a heavily blurred
copy of the image to the image itself, so no black or grey baseline puts features that are not there into the
map. The maps add up to f(image) - f(blurred copy); each image's completeness error shows too few steps."""

from dataclasses import dataclass

import numpy as np

from xai_fer.explain.attribution import Attribution, AttributionOptions, Maps
from xai_fer.hookspecs import hookimpl
from xai_fer.options import option


@dataclass
class BlurIGOptions(AttributionOptions):  # selection, target, score, masks and figures come with it
    max_sigma: float = option(8.0, "blur at the path's start: Gaussian sigma in data pixels")
    steps: int = option(32, "intervals of the path (trapezoid rule; more steps, smaller completeness error)")

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.max_sigma <= 100 or not 1 <= self.steps <= 1024:
            raise ValueError("max_sigma must be in (0, 100] and steps in 1..1024")


def blur(images, sigma: float):
    from scipy.ndimage import gaussian_filter  # imported when used: `xai-fer --help` stays instant

    return gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="reflect") if sigma > 0 else images


class BlurIG(Attribution):
    name = "blur-ig"
    description = "Blur Integrated Gradients: path-integrated gradients from a blurred copy to the image"
    Options = BlurIGOptions
    signed = True  # a pixel can lower the score: masks and faithfulness rank by magnitude
    figure_label = "|blur IG|"

    def attribute(self, engine, images, targets, options):
        # images: (N, H, W, C) float32, 0-255, at the data's resolution; targets: one class per image.
        sigmas = np.linspace(options.max_sigma, 0.0, options.steps + 1)  # most blurred first, the image last
        point = blur(images, sigmas[0])
        gradient, start = engine.gradients(point, targets, return_scores=True)  # compiled, batched: no tape
        total = np.zeros_like(images)
        for sigma in sigmas[1:]:
            following = blur(images, sigma)
            following_gradient, end = engine.gradients(following, targets, return_scores=True)
            total += (gradient + following_gradient) / 2 * (following - point)
            point, gradient = following, following_gradient
        maps = total.sum(axis=-1)  # (N, H, W): one signed map per image
        change = end - start  # f(image) - f(most blurred), which the maps should add up to
        error = np.abs(maps.sum(axis=(1, 2)) - change) / np.maximum(np.abs(change), 1e-12)
        return Maps(maps, per_image={"completeness_error": error.astype(np.float32)},
                    notes={"path": f"Gaussian blur, sigma {options.max_sigma:g} to 0 in {options.steps} steps"})


@hookimpl
def register_explainers(register):
    register(BlurIG())
