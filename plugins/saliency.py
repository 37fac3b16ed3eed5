"""Vanilla-gradient saliency: how much each input pixel moves the target class score.

For each selected image: the gradient of the class score with respect to the data's pixels (through the input
adaptation, so maps come back in the data's resolution), absolute value, max over channels, scaled per image
to [0, 1]. The mask keeps the pixels whose saliency is STRICTLY above ``np.percentile(map, p)``: ties at the
threshold are dropped, so an all-zero map keeps nothing and p=90 keeps about 10% of the pixels (fewer on ties).
Selection, targets, masks, figures and files come from the attribution core (``xai_fer.explain.attribution``).
"""

from __future__ import annotations

from dataclasses import dataclass

from xai_fer.explain.attribution import Attribution, AttributionOptions
from xai_fer.explain.gradients import saliency_maps
from xai_fer.hookspecs import hookimpl


@dataclass
class SaliencyOptions(AttributionOptions):
    """Only the options every attribution method has."""


class Saliency(Attribution):
    name = "saliency"
    description = "vanilla gradient saliency maps (|d score / d pixel|), masks above a percentile, overlays"
    Options = SaliencyOptions
    figure_label = "saliency"
    batch_independent = True
    map_description = ("|gradient| of the target score w.r.t. data pixels, max over channels, scaled to [0, 1] per "
                       "image (all-zero when the gradient is zero)")

    def attribute(self, engine, images, targets, options):
        return saliency_maps(engine.gradients(images, targets))


@hookimpl
def register_explainers(register):
    register(Saliency())
