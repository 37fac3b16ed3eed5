"""RISE (Petsiuk et al. 2018): show the model many randomly masked copies of the image; a pixel's importance is
the mean class score of the copies in which it was visible. Model-agnostic (forward passes only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xai_fer.explain.attribution import Attribution, AttributionOptions
from xai_fer.explain.baselines import baseline_images
from xai_fer.explain.images import upsample
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option


@dataclass
class RiseOptions(AttributionOptions):
    masks: int = option(500, "random masks per image")
    cells: int = option(7, "mask grid: cells x cells random on/off cells, smoothly upsampled and shifted")
    keep: float = option(0.5, "probability that a cell is visible")
    fill: Literal["mid-grey", "black", "blurred"] = option("mid-grey", "what hidden pixels show")

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.masks <= 100_000:
            raise ValueError("masks must be in 1..100000")
        if not 2 <= self.cells <= 64:
            raise ValueError("cells must be in 2..64")
        if not 0 < self.keep < 1:
            raise ValueError("keep must be between 0 and 1 (exclusive)")


def random_masks(count: int, cells: int, keep: float, height: int, width: int, rng) -> np.ndarray:
    """(count, height, width) soft masks in [0, 1]: a cells x cells grid of on/off cells, upsampled bilinearly to
    one cell more than the image and cropped at a random offset, so cell edges fall anywhere (the paper's
    construction)."""
    cell_h, cell_w = int(np.ceil(height / cells)), int(np.ceil(width / cells))
    grids = (rng.random((count, cells, cells)) < keep).astype(np.float32)
    large = upsample(grids, (cells + 1) * cell_h, (cells + 1) * cell_w)
    dy, dx = rng.integers(0, cell_h, count), rng.integers(0, cell_w, count)
    return np.stack([large[i, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(count)])


class Rise(Attribution):
    name = "rise"
    description = "RISE: mean class score over randomly masked copies in which each pixel was visible"
    Options = RiseOptions
    needs_gradients = False
    figure_label = "rise"
    batch_independent = True  # one set of masks per chunk, drawn whatever its size, shared by its images
    map_description = ("sum over random masks of score(image shown through the mask) x mask, divided by "
                       "masks x keep (seeded: the same seed draws the same masks)")

    def attribute(self, engine, images, targets, options):
        height, width = images.shape[1:3]
        masks = random_masks(options.masks, options.cells, options.keep, height, width, engine.rng(salt=2))
        fills = baseline_images(images, options.fill, engine)
        maps = np.zeros(images.shape[:3], np.float32)
        # A few hundred masked copies at a time: memory stays bounded whatever the number of masks.
        step = max(1, min(options.masks, 4 * engine.batch_size))
        with engine.progress.task(f"{self.name}: masked copies", total=len(images) * options.masks) as task:
            for k, image in enumerate(images):
                for start in range(0, options.masks, step):
                    m = masks[start:start + step, :, :, None]
                    scores = engine.scores(image * m + fills[k] * (1 - m), targets[k])
                    maps[k] += np.tensordot(scores, m[..., 0], axes=1)
                    task.advance(len(m))
        return maps / (options.masks * options.keep)

    def summarise(self, context, options, maps) -> dict:
        return {"masks": options.masks, "cells": options.cells, "keep": options.keep, "fill": options.fill}


@hookimpl
def register_explainers(register):
    register(Rise())
