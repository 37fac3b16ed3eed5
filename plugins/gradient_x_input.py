"""Gradient x input: the first-order estimate of how much each pixel's value, measured from a baseline, adds to
the class score. Signed: positive pixels push the score up, negative ones down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xai_fer.explain.attribution import Attribution, AttributionOptions
from xai_fer.explain.baselines import baseline_images
from xai_fer.hookspecs import hookimpl
from xai_fer.options import option


@dataclass
class GradientXInputOptions(AttributionOptions):
    baseline: Literal["black", "mid-grey", "blurred"] = option(
        "black", "what the input is measured from: black (0), mid-grey, or a blurred copy of the image")


class GradientXInput(Attribution):
    name = "gradient-x-input"
    description = "gradient x (input - baseline), summed over channels: signed first-order contributions"
    Options = GradientXInputOptions
    signed = True
    figure_label = "|gradient x input|"
    batch_independent = True
    map_description = ("sum over channels of d score / d pixel x (pixel - baseline), in data pixels (0-255); "
                       "signed, shown and masked by magnitude")

    def attribute(self, engine, images, targets, options):
        difference = images - baseline_images(images, options.baseline, engine)
        return (engine.gradients(images, targets) * difference).sum(axis=-1)


@hookimpl
def register_explainers(register):
    register(GradientXInput())
