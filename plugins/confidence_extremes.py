"""Confidence extremes: the images of each class the model is surest and least sure of, with every method's map.

Images are grouped by their true class (by the predicted class without labels) and ranked by the model's
softmax probability of that class: the most confident are the class's clearest cases for the model, the least
confident (with labels) those it is furthest from calling right. Among the images every attribution method of the
run explained (all of them on a whole split, ``--all-images``); one figure per class, the image and each
method's map over it.
"""

from __future__ import annotations

from dataclasses import dataclass

from xai_fer.explain.artifact import Artifact
from xai_fer.explain.views import (
    DatasetView,
    ViewOptions,
    chosen_results,
    common_positions,
    grouping,
    images_with_maps,
)
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option


@dataclass
class ConfidenceExtremesOptions(ViewOptions):
    count: int = option(2, "most and least confident images shown per class")

    def __post_init__(self):
        if not 1 <= self.count <= 50:
            raise ValueError("count must be in 1..50")


def extremes(groups, scores, classes: int, count: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per class: positions of its ``count`` highest and ``count`` lowest scores (highest first, lowest first;
    ties by position). A class with fewer than ``2 * count`` images shows each of them once."""
    out = {}
    for c in range(classes):
        members = np.flatnonzero(groups == c)
        if not len(members):
            continue
        ranked = members[np.lexsort((members, -scores[members]))]
        most = ranked[:count]
        least = [p for p in ranked[::-1][:count] if p not in set(most.tolist())]
        out[c] = (most, np.asarray(least, dtype=np.int64))
    return out


def class_figure(context, class_name: str, picked, rows, results: dict, positions: dict, scores, labels_of):
    chosen = np.concatenate(picked)
    tags = ["most confident"] * len(picked[0]) + ["least confident"] * len(picked[1])
    titles = [f"row {rows[p]}: p={scores[p]:.2f}" for p in chosen]
    labels = [f"{tag}\n{labels_of(p)}" for tag, p in zip(tags, chosen, strict=True)]
    return images_with_maps(context, rows, chosen, results, positions, titles, labels,
                            f"{class_name}: the images the model is most and least sure of")


class ConfidenceExtremes(DatasetView):
    name = "confidence-extremes"
    description = "the most and least confident images of each class, with every method's map"
    Options = ConfidenceExtremesOptions
    per_class_view = True

    def explain(self, context, options) -> Artifact:
        results = chosen_results(context, options)
        rows, positions = common_positions(results)
        groups, predicted, grouped_by = grouping(context, rows)
        k = context.info.num_classes
        scores = context.probabilities[rows, np.clip(groups, 0, k - 1)]
        names = list(context.class_names)
        picked = extremes(groups, scores, k, options.count)

        def labels_of(position):
            true = f"true {names[groups[position]]}, " if grouped_by == "true" else ""
            return f"{true}pred {names[predicted[position]]}"

        figures, classes = {}, {}
        for c, (most, least) in picked.items():
            figures[f"class_{c}"] = class_figure(context, names[c], (most, least), rows, results, positions, scores,
                                                 labels_of)
            classes[names[c]] = {kind: [{"row": int(rows[p]), "probability": round(float(scores[p]), 4),
                                         "predicted": names[predicted[p]], **context.dataset.row_label(int(rows[p]))}
                                        for p in chosen]
                                 for kind, chosen in (("most_confident", most), ("least_confident", least))}
        summary = {"grouped_by": f"{grouped_by} class", "ranked_by": f"softmax probability of the {grouped_by} class",
                   "methods": list(results), "images": int(len(rows)), "classes": classes}
        most = np.full((k, options.count), -1, np.int64)
        least = np.full((k, options.count), -1, np.int64)
        for c, (top, bottom) in picked.items():
            most[c, :len(top)], least[c, :len(bottom)] = rows[top], rows[bottom]
        return Artifact(figures=figures, arrays={"most_confident_rows": most, "least_confident_rows": least},
                        summary=summary)


@hookimpl
def register_explainers(register):
    register(ConfidenceExtremes())
