"""Class maps: where a model looks, per class and per attribution method, over the images it explained.

For each class and each attribution method of the run: the mean of the maps of the class's images (every image
scaled to its own maximum first, so each weighs the same), over all of them and over the ones the model got
right, drawn as a class x method grid. Reads the maps the run's attribution methods made
(``context.attributions``, streamed a block of rows at a time), so it works on a whole split (``--all-images``:
every image of it) as on an ordinary run (the images each method explained). Without labels, images are grouped
by the predicted class and there is no "correct" column.
"""

from __future__ import annotations

from dataclasses import dataclass

from xai_fer.explain.artifact import Artifact
from xai_fer.explain.views import (
    DatasetView,
    ViewOptions,
    cell_sums,
    chosen_results,
    draw_map,
    empty_axis,
    map_correlation,
    mean_of,
    rounded,
)
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np


@dataclass
class ClassMapsOptions(ViewOptions):
    """Only the options every dataset view has."""


def class_means(context, results: dict) -> dict:
    """Per method: mean maps per class over all its images (K, H, W) and over the correct ones, with counts."""
    out = {}
    for name, result in results.items():
        sums, counts = cell_sums(context, name, result)
        classes = range(counts.shape[0])
        out[name] = {
            "all": np.stack([mean_of(sums[c].sum(axis=0), counts[c].sum()) for c in classes]),
            "correct": np.stack([mean_of(sums[c, c], counts[c, c]) for c in classes]),
            "n_all": counts.sum(axis=1), "n_correct": np.diag(counts).copy(),
        }
    return out


def grid_figure(names, means: dict, labelled: bool):
    from matplotlib.figure import Figure

    kinds = ["all", "correct"] if labelled else ["all"]
    columns = [(method, kind) for method in means for kind in kinds]
    figure = Figure(figsize=(1.5 * len(columns) + 0.6, 1.6 * len(names) + 0.6), layout="constrained")
    axes = np.asarray(figure.subplots(len(names), len(columns), squeeze=False))
    for c, class_name in enumerate(names):
        for j, (method, kind) in enumerate(columns):
            count = int(means[method][f"n_{kind}"][c])
            title = f"{method}, {kind} (n={count})" if c == 0 else f"{kind} (n={count})"
            if count:
                draw_map(axes[c, j], means[method][kind][c], title)
            else:
                empty_axis(axes[c, j], "no images")
                axes[c, j].set_title(title, fontsize=7)
        axes[c, 0].set_ylabel(class_name, fontsize=9)
    grouped = "true class" if labelled else "predicted class"
    figure.suptitle(f"mean map per {grouped} and method (each image scaled to its maximum; each panel to its own)",
                    fontsize=9)
    return figure


class ClassMaps(DatasetView):
    name = "class-maps"
    description = "mean attribution map per class and method (all images and correct ones), a class x method grid"
    Options = ClassMapsOptions
    per_class_view = True

    def explain(self, context, options) -> Artifact:
        results = chosen_results(context, options)
        means = class_means(context, results)
        labelled = context.labels is not None
        names = list(context.class_names)
        classes = {}
        for c, class_name in enumerate(names):
            first = means[next(iter(means))]
            entry = {"images": int(first["n_all"][c])}
            if labelled:
                entry["correct"] = int(first["n_correct"][c])
                # How much the correct images' mean differs from all images' mean (1 = the same pattern).
                entry["correct_vs_all_correlation"] = {
                    method: rounded(map_correlation(m["correct"][c], m["all"][c])) for method, m in means.items()}
            classes[class_name] = entry
        summary = {
            "grouped_by": "true class" if labelled else "predicted class (the data has no labels)",
            "methods": list(results),
            "images_per_method": {name: int(len(result.rows)) for name, result in results.items()},
            "map_scale": "each image's map scaled to its own maximum (magnitude for signed maps) before the mean",
            "classes": classes,
        }
        arrays = {f"{method}.mean_all": m["all"] for method, m in means.items()}
        arrays.update({f"{method}.mean_correct": m["correct"] for method, m in means.items() if labelled})
        arrays["images_per_class"] = means[next(iter(means))]["n_all"]
        return Artifact(figures={"class_maps": grid_figure(names, means, labelled)}, arrays=arrays, summary=summary)


@hookimpl
def register_explainers(register):
    register(ClassMaps())
