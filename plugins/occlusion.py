"""Occlusion (Zeiler & Fergus 2014): hide one square of the image at a time and measure how far the class score
falls. Model-agnostic (forward passes only): it needs no gradient and works on any model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xai_fer.explain.attribution import Attribution, AttributionOptions
from xai_fer.explain.baselines import baseline_images
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option


@dataclass
class OcclusionOptions(AttributionOptions):
    patch: int = option(8, "side of the hiding square, in data pixels")
    stride: int = option(4, "step between square positions, in data pixels")
    fill: Literal["mid-grey", "black", "blurred"] = option("mid-grey", "what the square shows instead")

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.stride <= self.patch:
            raise ValueError("stride must be in 1..patch (a larger step leaves pixels never hidden)")
        if self.patch > 4096:
            raise ValueError("patch must be at most 4096")


def patch_starts(size: int, patch: int, stride: int) -> list[int]:
    """Offsets every ``stride`` pixels, plus one flush with the far edge, so every pixel is hidden at least once."""
    last = max(size - patch, 0)
    return sorted(set(range(0, last + 1, stride)) | {last})


class Occlusion(Attribution):
    name = "occlusion"
    description = "occlusion: the class score's fall while a square hides each region (forward passes only)"
    Options = OcclusionOptions
    signed = True
    needs_gradients = False
    figure_label = "occlusion"
    batch_independent = True
    map_description = ("per pixel, the mean fall of the target score over the square positions hiding it "
                       "(signed: negative where hiding raises the score), shown and masked by magnitude")

    def attribute(self, engine, images, targets, options):
        height, width = images.shape[1:3]
        p = options.patch
        rows, columns = patch_starts(height, p, options.stride), patch_starts(width, p, options.stride)
        spots = [(y, x) for y in rows for x in columns]
        covered = np.zeros((height, width), np.float32)
        for y, x in spots:
            covered[y:y + p, x:x + p] += 1
        fills = baseline_images(images, options.fill, engine)
        maps = np.zeros(images.shape[:3], np.float32)
        with engine.progress.task(f"{self.name}: occluded copies", total=len(images) * len(spots)) as task:
            for k, image in enumerate(images):
                batch = np.repeat(image[None], len(spots) + 1, axis=0)  # row 0 stays whole
                for j, (y, x) in enumerate(spots, start=1):
                    batch[j, y:y + p, x:x + p] = fills[k, y:y + p, x:x + p]
                scores = engine.scores(batch, targets[k])
                for (y, x), fall in zip(spots, scores[0] - scores[1:], strict=True):
                    maps[k, y:y + p, x:x + p] += fall
                task.advance(len(spots))
        return maps / np.maximum(covered, 1)

    def summarise(self, context, options, maps) -> dict:
        return {"patch": options.patch, "stride": options.stride, "fill": options.fill}


@hookimpl
def register_explainers(register):
    register(Occlusion())
