"""Grad-CAM (Selvaraju et al. 2017): a conv layer's feature maps weighted by the spatial mean of the class
score's gradient over each, through a ReLU, upsampled to the image: where the evidence for the class lies, at
the resolution of that layer."""

from __future__ import annotations

from dataclasses import dataclass

from xai_fer.explain.attribution import Attribution, AttributionOptions
from xai_fer.explain.cam import check_layer, class_activation_maps, default_layer
from xai_fer.hookspecs import hookimpl
from xai_fer.options import option


@dataclass
class GradCamOptions(AttributionOptions):
    layer: str = option("", "conv layer to read (backbone/layer inside a nested model); empty = the last conv "
                            "layer with a spatial output")


class GradCam(Attribution):
    name = "grad-cam"
    description = "Grad-CAM: a conv layer's feature maps weighted by their mean gradient, upsampled to the image"
    Options = GradCamOptions
    needs_conv_layers = True
    figure_label = "grad-cam"
    batch_independent = True
    map_description = ("ReLU(sum over filters of mean(d score / d A_k) x A_k) at the chosen conv layer, bilinearly "
                       "upsampled to the data's resolution")

    def validate(self, info, options) -> None:
        super().validate(info, options)
        if options.layer:
            check_layer(info, options.layer, self.name)

    def attribute(self, engine, images, targets, options):
        layer = options.layer or default_layer(engine.root_model, engine.info)
        activations, gradients = engine.layer_gradients(layer, images, targets)
        weights = gradients.mean(axis=(1, 2))
        return class_activation_maps(activations, weights, *images.shape[1:3])

    def summarise(self, context, options, maps) -> dict:
        return {"layer": options.layer or default_layer(context.model, context.info)}


@hookimpl
def register_explainers(register):
    register(GradCam())
