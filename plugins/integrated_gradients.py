"""Integrated Gradients (Sundararajan et al. 2017): gradients averaged along the straight path from a baseline
to the image, times the difference. Complete: the attributions add up to f(image) - f(baseline), and how close a
run comes is reported per image (the completeness error), so too few steps show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xai_fer.explain.attribution import Attribution, AttributionOptions, Maps
from xai_fer.explain.baselines import baseline_images
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option


@dataclass
class IntegratedGradientsOptions(AttributionOptions):
    baseline: Literal["black", "mid-grey", "blurred"] = option(
        "black", "path start: black (0), mid-grey, or a blurred copy of the image")
    steps: int = option(64, "intervals of the path (trapezoid rule; more steps, smaller completeness error)")

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.steps <= 4096:
            raise ValueError("steps must be in 1..4096")


class IntegratedGradients(Attribution):
    name = "integrated-gradients"
    description = "Integrated Gradients from a black, mid-grey or blurred baseline, with each image's completeness"
    Options = IntegratedGradientsOptions
    signed = True
    figure_label = "|integrated gradients|"
    map_description = ("sum over channels of (pixel - baseline) x the path-averaged gradient (trapezoid rule); "
                       "signed, shown and masked by magnitude; the maps add up to f(image) - f(baseline)")

    def attribute(self, engine, images, targets, options):
        baseline = baseline_images(images, options.baseline, engine)
        difference = images - baseline
        # Trapezoid rule on steps + 1 points: end points weigh half. One compiled call per point for the whole
        # chunk keeps memory at one chunk of images, whatever the number of steps.
        path_sum = np.zeros_like(images)
        end_scores = {}
        for k in range(options.steps + 1):
            alpha = k / options.steps
            weight = 0.5 if k in (0, options.steps) else 1.0
            gradients, scores = engine.gradients(baseline + alpha * difference, targets, return_scores=True)
            path_sum += weight * gradients
            if k in (0, options.steps):
                end_scores[k] = scores
        maps = (difference * path_sum / options.steps).sum(axis=-1)
        change = end_scores[options.steps] - end_scores[0]
        total = maps.reshape(len(maps), -1).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            error = np.abs(total - change) / np.abs(change)  # inf/nan where the score does not change: None
        return Maps(maps, per_image={"completeness_error": error.astype(np.float32),
                                     "score_change": change.astype(np.float32)},
                    notes={"completeness": "completeness_error = |sum of attributions - (f(image) - f(baseline))| / "
                                           "|f(image) - f(baseline)| per image (0 = exact)",
                           "baseline": options.baseline, "steps": options.steps})

    def summarise(self, context, options, maps) -> dict:
        errors = maps.per_image["completeness_error"]
        finite = errors[np.isfinite(errors)]
        return {"completeness_error_median": float(np.median(finite)) if len(finite) else None,
                "completeness_error_max": float(finite.max()) if len(finite) else None,
                "completeness_undefined": int(len(errors) - len(finite))}


@hookimpl
def register_explainers(register):
    register(IntegratedGradients())
