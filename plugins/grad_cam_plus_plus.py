"""Grad-CAM++ (Chattopadhyay et al. 2018): Grad-CAM with per-location weights from higher-order terms of the
gradient, which credits every region with evidence rather than the strongest one (several faces, two eyes)."""

from __future__ import annotations

from dataclasses import dataclass

from xai_fer_plugins.grad_cam import GradCam, GradCamOptions

from xai_fer.explain.cam import class_activation_maps, default_layer
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np


@dataclass
class GradCamPlusPlusOptions(GradCamOptions):
    """The same options as grad-cam."""


class GradCamPlusPlus(GradCam):
    name = "grad-cam-plus-plus"
    description = "Grad-CAM++: Grad-CAM weighted per location by higher-order gradient terms"
    Options = GradCamPlusPlusOptions
    figure_label = "grad-cam++"
    map_description = ("ReLU(sum over filters of w_k x A_k), w_k = sum over positions of alpha x ReLU(gradient), "
                       "alpha = g^2 / (2 g^2 + sum(A) g^3) (the exponential-score closed form), upsampled to the "
                       "data's resolution")

    def attribute(self, engine, images, targets, options):
        layer = options.layer or default_layer(engine.root_model, engine.info)
        activations, gradients = engine.layer_gradients(layer, images, targets)
        # With score exp(S), the closed form's exp(S) factors cancel in alpha and only scale w_k per image,
        # which the display normalises away; dropping them avoids overflow on large logits. And alpha x ReLU(g)
        # = g^2 ReLU(g) / (g^2 (2 + sum(A) g)) = ReLU(g) / (2 + sum(A) g): the same weights in three passes
        # over the (N, h, w, filters) arrays instead of eight, without g^3 (which underflows for small
        # gradients), and in place; this arithmetic is all Grad-CAM++ adds to Grad-CAM's cost
        # (benchmarks/attribution_speed.py).
        denominator = gradients * activations.sum(axis=(1, 2), keepdims=True)
        denominator += 2
        positive = np.maximum(gradients, 0)
        np.divide(positive, denominator, out=positive, where=(positive > 0) & (denominator != 0))
        weights = positive.sum(axis=(1, 2))
        return class_activation_maps(activations, weights, *images.shape[1:3])


@hookimpl
def register_explainers(register):
    register(GradCamPlusPlus())
