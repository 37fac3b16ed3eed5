"""Confusion maps: where the model looks when it takes class A for class B.

For the most frequent confusions among the images the run's attribution methods explained (true A predicted as
B), and for each method: the mean map of those images beside the mean maps of A taken for A and of B taken for
B, and a table of how much they differ: the Pearson correlation of the mean maps and their total-variation
distance (half the L1 distance of the maps scaled to sum 1: 0 = the same attention, 1 = disjoint). A confusion
whose map is closer to B->B than to A->A says the model looked where it looks for B. Each image's map is scaled
to its own maximum before the means. Needs labels. Reads ``context.attributions`` a block of rows at a time, so it
works on a whole split (``--all-images``) as on an ordinary run.
"""

from __future__ import annotations

from dataclasses import dataclass

from xai_fer.errors import UserError
from xai_fer.explain.artifact import Artifact
from xai_fer.explain.views import (
    DatasetView,
    ViewOptions,
    cell_sums,
    chosen_results,
    common_positions,
    draw_map,
    empty_axis,
    map_correlation,
    map_distance,
    mean_of,
    rounded,
)
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option


@dataclass
class ConfusionMapsOptions(ViewOptions):
    cells: int = option(4, "the most frequent confusions (true A predicted as B) shown")

    def __post_init__(self):
        if not 1 <= self.cells <= 42:
            raise ValueError("cells must be in 1..42")


def top_confusions(true, predicted, classes: int, count: int) -> list[tuple[int, int, int]]:
    """The ``count`` most frequent (A, B, n) with A != B, most frequent first (ties by A, then B)."""
    counts = np.bincount(np.asarray(true) * classes + np.asarray(predicted), minlength=classes * classes)
    cells = [(int(n), a, b) for (a, b), n in np.ndenumerate(counts.reshape(classes, classes)) if a != b and n]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [(a, b, n) for n, a, b in cells[:count]]


def compare_cell(sums, counts, a: int, b: int) -> dict:
    """The three mean maps of a confusion (A->B, A->A, B->B), their counts and how much they differ."""
    means = {"confused": mean_of(sums[a, b], counts[a, b]), "true_class": mean_of(sums[a, a], counts[a, a]),
             "predicted_class": mean_of(sums[b, b], counts[b, b])}
    entry = {"n_confused": int(counts[a, b]), "n_true_class": int(counts[a, a]), "n_predicted_class": int(counts[b, b])}
    for other, n in (("true_class", counts[a, a]), ("predicted_class", counts[b, b])):
        entry[f"correlation_with_{other}"] = rounded(map_correlation(means["confused"], means[other])) if n else None
        entry[f"distance_to_{other}"] = rounded(map_distance(means["confused"], means[other])) if n else None
    near_true, near_predicted = entry["distance_to_true_class"], entry["distance_to_predicted_class"]
    if near_true is not None and near_predicted is not None and near_true != near_predicted:
        entry["closer_to"] = "true class (A->A)" if near_true < near_predicted else "predicted class (B->B)"
    else:
        entry["closer_to"] = None
    return {"means": means, "entry": entry}


def cells_figure(names, cells, compared: dict):
    from matplotlib.figure import Figure

    methods = list(compared)
    figure = Figure(figsize=(1.5 * 3 * len(methods) + 0.6, 1.7 * len(cells) + 0.6), layout="constrained")
    axes = np.asarray(figure.subplots(len(cells), 3 * len(methods), squeeze=False))
    for i, (a, b, _) in enumerate(cells):
        for m, method in enumerate(methods):
            result = compared[method][i]
            panels = [("confused", f"{names[a]}->{names[b]}", "n_confused"),
                      ("true_class", f"{names[a]}->{names[a]}", "n_true_class"),
                      ("predicted_class", f"{names[b]}->{names[b]}", "n_predicted_class")]
            for j, (key, label, count) in enumerate(panels):
                ax = axes[i, 3 * m + j]
                n = result["entry"][count]
                title = f"{method}: {label} (n={n})" if j == 0 else f"{label} (n={n})"
                draw_map(ax, result["means"][key], title) if n else empty_axis(ax, "no images")
                if not n:
                    ax.set_title(title, fontsize=7)
    figure.suptitle("mean map of each confusion (true -> predicted) beside the two classes taken for themselves",
                    fontsize=9)
    return figure


class ConfusionMaps(DatasetView):
    name = "confusion-maps"
    description = "mean maps of the most frequent confusions (A taken for B) beside A->A and B->B, and how they differ"
    Options = ConfusionMapsOptions
    per_class_view = True

    def check(self, context, options) -> None:
        if context.labels is None:
            raise UserError(f"{self.name}: confusions need labels, and the data has none",
                            "use labelled data, or -e class-maps (by predicted class)")
        super().check(context, options)

    def explain(self, context, options) -> Artifact:
        results = chosen_results(context, options)
        rows, _ = common_positions(results)
        names = list(context.class_names)
        k = context.info.num_classes
        cells = top_confusions(np.asarray(context.labels)[rows], context.predictions[rows], k, options.cells)
        summary = {"methods": list(results), "images": int(len(rows)),
                   "chosen_from": "images every method explained", "cells": [], "distance": (
                       "total-variation distance of the mean maps scaled to sum 1 (0 = same, 1 = disjoint)"),
                   "map_scale": "each image's map scaled to its own maximum before the mean"}
        if not cells:
            summary["note"] = "no confusions among the images every method explained"
            return Artifact(summary=summary)
        compared = {}
        for method, result in results.items():
            sums, counts = cell_sums(context, method, result)
            compared[method] = [compare_cell(sums, counts, a, b) for a, b, _ in cells]
        for i, (a, b, n) in enumerate(cells):
            summary["cells"].append({"true": names[a], "predicted": names[b], "images": n,
                                     "methods": {method: compared[method][i]["entry"] for method in compared}})
        arrays = {"cells": np.array([[a, b, n] for a, b, n in cells], dtype=np.int64)}
        for method, entries in compared.items():
            arrays[f"{method}.means"] = np.stack([np.stack([e["means"][key] for key in
                                                            ("confused", "true_class", "predicted_class")])
                                                  for e in entries])
        return Artifact(figures={"confusion_maps": cells_figure(names, cells, compared)}, arrays=arrays,
                        summary=summary)


@hookimpl
def register_explainers(register):
    register(ConfusionMaps())
