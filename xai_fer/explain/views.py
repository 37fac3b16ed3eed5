"""What the dataset-level views share (the class-maps, confusion-maps, confidence-extremes and method-disagreement
explainers): the run's maps read a block of rows at a time, whether they are arrays (an ordinary run) or HDF5
datasets (a whole-split run's ``maps.h5``), so memory stays bounded on any number of images.

Every map is first put on one scale per image (:func:`~xai_fer.explain.attribution.display_maps`: the magnitude of
a signed map, the positive part of the others, divided by its maximum), so that every image weighs the same in a
mean and maps of different methods can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from ..lazy import np
from ..options import option
from .attribution import Attribution, display_maps, selection_mode, show_image

BLOCK = 1024  # rows read at once


@dataclass
class ViewOptions:
    """Options every dataset view has."""

    methods: tuple[str, ...] = option((), "attribution methods to show, e.g. saliency,grad-cam (empty = every one "
                                          "the run made)")


def planned_methods(context) -> list[str]:
    """Attribution methods that have run or will run before the view (the planner puts views after them)."""
    planned = [item.name for item in context.plan if isinstance(item.explainer, Attribution)
               and item.name not in context.skipped]
    return list(dict.fromkeys([*context.attributions, *planned]))


def check_methods(context, options: ViewOptions, who: str, minimum: int = 1) -> None:
    """Refuse, before any work, a view without the attribution methods it reads."""
    planned = planned_methods(context)
    unknown = [name for name in options.methods if name not in planned]
    if unknown:
        raise UserError(f"{who}: methods {', '.join(unknown)} do not run in this run",
                        f"methods of this run: {', '.join(planned) or 'none'}; add them with -e")
    count = len(options.methods or planned)
    if count < minimum:
        needed = "an attribution method" if minimum == 1 else f"{minimum} attribution methods"
        raise UserError(f"{who}: needs {needed} in the same run, and it has {count}",
                        "add them, e.g. -e saliency -e grad-cam -e smoothgrad")
    context.check_labels_fit(who)


def one_image_per_class(context, options: ViewOptions) -> bool:
    """True when every method the view reads explains a single image per class (``select=per_class`` with
    ``per_class=1``, as ``--preset quick`` sets) and not every image of the split."""
    if context.whole_split is not None:
        return False
    names = set(options.methods or planned_methods(context))
    chosen = [item.options for item in context.plan if item.name in names and isinstance(item.explainer, Attribution)]
    return bool(chosen) and all(selection_mode(chosen_options) == "per_class" and chosen_options.per_class == 1
                                for chosen_options in chosen)


class DatasetView:
    """What every dataset view shares: it reads the run's attribution maps (so it is planned after them), its
    report section is "dataset", and it refuses before any work a run without the methods it reads
    (``minimum_methods`` of them). A view sets ``name``, ``description``, ``Options`` and ``explain``; one that
    groups images by class sets ``per_class_view`` and is refused (skipped, with this reason, when nobody asked
    for it) on one image per class, where a class's mean or extremes would only repeat that image's map."""

    reads_attributions = True
    report_group = "dataset"
    minimum_methods = 1
    per_class_view = False

    def check(self, context, options) -> None:
        check_methods(context, options, self.name, minimum=self.minimum_methods)
        if self.per_class_view and one_image_per_class(context, options):
            raise UserError(f"{self.name}: the attribution methods explain one image per class, so each class's "
                            "view would only repeat that image's map",
                            "give them per_class=2 or more (-o NAME.per_class=N), or explain every image "
                            "with --all-images")


def chosen_results(context, options: ViewOptions) -> dict:
    names = options.methods or tuple(context.attributions)
    return {name: context.attributions[name] for name in names}


def blocks(result, size: int = BLOCK):
    """``(start, stop, shown)`` over a method's maps: positions ``start..stop-1`` on the per-image scale."""
    for start in range(0, len(result.rows), size):
        stop = min(start + size, len(result.rows))
        yield start, stop, display_maps(result.maps[start:stop], result.signed)


def take(maps, positions) -> np.ndarray:
    """Rows ``positions`` (any order, repeats allowed) of an array or an HDF5 dataset (which reads only increasing
    indices)."""
    positions = np.asarray(positions, dtype=np.int64)
    if isinstance(maps, np.ndarray):
        return maps[positions]
    unique, inverse = np.unique(positions, return_inverse=True)
    return np.asarray(maps[unique.tolist()])[inverse] if len(unique) else np.zeros((0, *maps.shape[1:]), np.float32)


def shown_at(result, positions) -> np.ndarray:
    return display_maps(take(result.maps, positions), result.signed)


def grouping(context, rows) -> tuple[np.ndarray, np.ndarray, str]:
    """Per row the class it belongs to (true class with labels, else predicted), the predicted class, and which."""
    predicted = context.predictions[rows]
    if context.labels is None:
        return predicted, predicted, "predicted"
    return np.asarray(context.labels)[rows].astype(np.int64), predicted, "true"


def cell_sums(context, name: str, result) -> tuple[np.ndarray, np.ndarray]:
    """Sums of the per-image-scaled maps of a method per (true, predicted) cell, (K, K, H, W), and the images per
    cell (K, K); grouped by predicted class twice without labels. Computed once per run and method."""
    key = ("dataset-views", "cell-sums", name)
    if key not in context.cache:
        k = context.info.num_classes
        true, predicted, _ = grouping(context, result.rows)
        sums = np.zeros((k * k, *result.maps.shape[1:]), np.float64)
        for start, stop, shown in blocks(result):
            cells = true[start:stop] * k + predicted[start:stop]
            for cell in np.unique(cells):
                sums[cell] += shown[cells == cell].sum(axis=0)
        counts = np.bincount(true * k + predicted, minlength=k * k)
        context.cache[key] = (sums.reshape(k, k, *sums.shape[1:]), counts.reshape(k, k))
    return context.cache[key]


def mean_of(sums, counts) -> np.ndarray:
    """A mean map from a sum and a count; all zero for no images."""
    return (sums / counts).astype(np.float32) if counts else np.zeros(sums.shape, np.float32)


def map_correlation(first, second) -> float | None:
    """Pearson correlation of two maps' pixels; None when either is constant."""
    a, b = np.ravel(first).astype(np.float64), np.ravel(second).astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def map_distance(first, second) -> float | None:
    """Half the L1 distance of two maps each scaled to sum 1 (the total-variation distance: 0 = the same
    distribution of attention over the pixels, 1 = disjoint); None when either is all zero."""
    a, b = np.ravel(first).astype(np.float64), np.ravel(second).astype(np.float64)
    if a.sum() <= 0 or b.sum() <= 0:
        return None
    return float(0.5 * np.abs(a / a.sum() - b / b.sum()).sum())


def common_positions(results: dict) -> tuple[np.ndarray, dict]:
    """Dataset rows every method explained (sorted), and for each method where they sit in its maps."""
    rows = None
    for result in results.values():
        rows = np.asarray(result.rows) if rows is None else np.intersect1d(rows, result.rows)
    rows = np.unique(rows) if rows is not None else np.zeros(0, np.int64)
    positions = {}
    for name, result in results.items():
        order = np.argsort(result.rows, kind="stable")
        positions[name] = order[np.searchsorted(np.asarray(result.rows)[order], rows)]
    return rows, positions


def draw_map(ax, shown, title: str = "", image=None) -> None:
    """A map on its own scale (brightest = its maximum), over the image when one is given."""
    peak = float(np.max(shown)) if np.size(shown) else 0.0
    if image is not None:
        show_image(ax, image)
        ax.imshow(shown, cmap="jet", vmin=0, vmax=peak or 1, alpha=0.5)
    else:
        ax.imshow(shown, cmap="hot", vmin=0, vmax=peak or 1)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def images_with_maps(context, rows, chosen, results: dict, positions: dict, titles, labels, heading: str):
    """A figure with a row per image (``chosen`` positions among the common ``rows``): the image (titled
    ``titles[i]``, labelled ``labels[i]``), then every method's map over it."""
    from matplotlib.figure import Figure

    maps = {name: shown_at(result, positions[name][chosen]) for name, result in results.items()}
    figure = Figure(figsize=(1.6 * (1 + len(results)) + 0.4, 1.75 * len(chosen) + 0.5), layout="constrained")
    axes = np.asarray(figure.subplots(len(chosen), 1 + len(results), squeeze=False))
    for i, position in enumerate(chosen):
        image = context.images([int(rows[position])])[0]
        show_image(axes[i, 0], image)
        axes[i, 0].set_xticks([])
        axes[i, 0].set_yticks([])
        axes[i, 0].set_title(titles[i], fontsize=7)
        axes[i, 0].set_ylabel(labels[i], fontsize=7)
        for j, name in enumerate(results, start=1):
            draw_map(axes[i, j], maps[name][i], name if i == 0 else "", image=image)
    figure.suptitle(heading, fontsize=9)
    return figure


def empty_axis(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def rounded(value, digits: int = 3):
    return None if value is None else round(float(value), digits)
