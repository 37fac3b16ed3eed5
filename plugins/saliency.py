"""Vanilla-gradient saliency: how much each input pixel moves the target class score.

For each selected image: the gradient of the class score with respect to the data's pixels (through the input
adaptation, so maps come back in the data's resolution), absolute value, max over channels, scaled per image
to [0, 1]. The mask keeps the pixels whose saliency is STRICTLY above ``np.percentile(map, p)``: ties at the
threshold are dropped, so an all-zero map keeps nothing and p=90 keeps about 10% of the pixels (fewer on ties).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from xai_fer.errors import UserError
from xai_fer.explain.artifact import Artifact
from xai_fer.explain.gradients import check_differentiable, input_gradients, saliency_maps, threshold_masks
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option

_TARGET_WORDS = ("predicted", "true")


@dataclass
class SaliencyOptions:
    select: Literal["auto", "per_class", "indices", "misclassified"] = option(
        "auto", "which images: per_class (N per true class), indices (the given rows), misclassified (the "
                "first N); auto = indices when given, else per_class")
    indices: tuple[int, ...] = option((), "dataset rows to explain (select=indices), e.g. 0,5,17")
    per_class: int = option(2, "images per true class (select=per_class; per predicted class without labels)")
    count: int = option(8, "how many misclassified images (select=misclassified)")
    target: str = option("predicted", "class whose score is explained: predicted, true, a class index or name")
    score: Literal["logit", "probability"] = option(
        "logit", "differentiate the pre-softmax score (logit) or the softmax probability")
    threshold_percentile: float = option(
        90.0, "mask keeps pixels with saliency strictly above this percentile of the image's map")
    batch_size: int = option(0, "images per gradient batch; 0 = the run's batch size")
    image_figures: bool = option(True, "one figure image_<row> per selected image (besides the grid)")
    grid_rows: int = option(40, "at most this many images (rows) in the grid figure")

    def __post_init__(self):
        self.target = str(self.target).strip()
        if not self.target:
            raise ValueError("target must be predicted, true, a class index or a class name")
        if self.target.lstrip("-").isdigit() and int(self.target) < 0:
            raise ValueError(f"target class index must be >= 0, got {self.target}")
        self.indices = tuple(int(i) for i in self.indices)
        if any(i < 0 for i in self.indices):
            raise ValueError("indices must be >= 0")
        if self.select == "indices" and not self.indices:
            raise ValueError("select=indices needs indices=ROW,ROW,...")
        if self.indices and self.select not in ("auto", "indices"):
            raise ValueError(f"indices are only used with select=indices, not select={self.select}")
        for name in ("per_class", "count", "grid_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.batch_size < 0:
            raise ValueError("batch_size must be >= 0 (0 = the run's batch size)")
        if not 0 <= self.threshold_percentile <= 100:
            raise ValueError("threshold_percentile must be in [0, 100]")


def _mode(options: SaliencyOptions) -> str:
    if options.select == "auto":
        return "indices" if options.indices else "per_class"
    return options.select


def _check_selection(context, options: SaliencyOptions) -> None:
    """What can be checked without predictions: row indices and the labels a mode or target needs."""
    n = len(context.dataset)
    mode = _mode(options)
    if mode == "indices":
        bad = [i for i in options.indices if i >= n]
        if bad:
            raise UserError(f"saliency: indices {bad} out of range: the data has {n} images",
                            f"use rows 0..{n - 1}")
    if mode == "misclassified" and context.labels is None:
        raise UserError("saliency: select=misclassified needs labels, and the data has none",
                        "use select=per_class or indices=...")
    _fixed_target(context, options)
    # per_class groups the images by their true class when there are labels: one beyond the model's classes
    # would silently leave its images out.
    if mode in ("misclassified", "per_class") or options.target == "true":
        context.check_labels_fit("saliency", "use data whose classes match the model's outputs, or pick rows "
                                             "with indices=...")


def _fixed_target(context, options: SaliencyOptions) -> int | None:
    """The class index for target=INDEX or NAME; None for predicted and true (checked to have labels)."""
    target = options.target
    if target == "predicted":
        return None
    if target == "true":
        if context.labels is None:
            raise UserError("saliency: target=true needs labels, and the data has none",
                            "use target=predicted or a class index")
        return None
    names = [name.lower() for name in context.class_names]
    if target.isdigit():
        return int(target)
    if target.lower() in names:
        return names.index(target.lower())
    raise UserError(f"saliency: unknown target {target!r}",
                    f"use predicted, true, 0..{context.info.num_classes - 1} or one of "
                    f"{', '.join(context.class_names)}")


def _select_rows(context, options: SaliencyOptions) -> tuple[np.ndarray, dict]:
    _check_selection(context, options)
    labels = context.labels
    mode = _mode(options)
    if mode == "indices":
        rows = np.array(list(dict.fromkeys(options.indices)), dtype=np.int64)  # unique, order kept
        return rows, {"mode": "indices", "indices": rows.tolist()}
    if mode == "misclassified":
        wrong = np.flatnonzero(context.predictions != labels)
        if len(wrong) == 0:
            raise UserError("saliency: no misclassified images in the data", "use select=per_class")
        rows = wrong[: options.count]
        return rows, {"mode": "misclassified", "count": options.count, "misclassified_total": int(len(wrong))}
    grouping = labels if labels is not None else context.predictions
    rows = np.concatenate([np.flatnonzero(grouping == c)[: options.per_class]
                           for c in range(context.info.num_classes)] or [np.zeros(0, np.int64)])
    return rows.astype(np.int64), {"mode": "per_class", "per_class": options.per_class,
                                   "grouped_by": "true" if labels is not None else "predicted"}


def _target_classes(context, options: SaliencyOptions, rows: np.ndarray) -> np.ndarray:
    index = _fixed_target(context, options)
    if index is not None:
        return np.full(len(rows), index, dtype=np.int64)
    if options.target == "predicted":
        return context.predictions[rows]
    return np.asarray(context.labels)[rows]


def _name(names, index: int) -> str:
    """A label's class name; labels beyond the model's classes (shown with target=predicted) by index."""
    return names[index] if 0 <= index < len(names) else f"class {index}"


def _show_image(ax, image: np.ndarray) -> None:
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(np.clip(image / 255.0, 0, 1))


def _draw_row(axes, image, saliency, mask, heading: str) -> None:
    axes[0].imshow(saliency, cmap="hot", vmin=0, vmax=1)
    axes[0].set_title("saliency", fontsize=8)
    _show_image(axes[1], image)
    axes[1].set_title("original", fontsize=8)
    _show_image(axes[2], image * mask[..., None])
    axes[2].set_title(f"masked ({mask.mean():.0%} kept)", fontsize=8)
    _show_image(axes[3], image)
    axes[3].imshow(saliency, cmap="jet", vmin=0, vmax=1, alpha=0.5)
    axes[3].set_title("overlay", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel(heading, fontsize=7)


class Saliency:
    name = "saliency"
    description = "vanilla gradient saliency maps (|d score / d pixel|), masks above a percentile, overlays"
    Options = SaliencyOptions

    def validate(self, info, options: SaliencyOptions) -> None:
        check_differentiable(info, "saliency")
        if options.target.isdigit() and int(options.target) >= info.num_classes:
            raise UserError(f"saliency: target class {options.target} does not exist",
                            f"the model has {info.num_classes} classes: use 0..{info.num_classes - 1}")

    def check(self, context, options: SaliencyOptions) -> None:
        """Rows, labels and the target class against the data and model, before any explainer runs
        (predictions are computed once per run and shared, so asking for them here costs nothing)."""
        self.validate(context.info, options)
        _check_selection(context, options)
        if _mode(options) == "misclassified" and not (context.predictions != np.asarray(context.labels)).any():
            raise UserError("saliency: no misclassified images in the data", "use select=per_class or indices=...")

    def explain(self, context, options: SaliencyOptions) -> Artifact:
        self.validate(context.info, options)
        rows, selection = _select_rows(context, options)
        if len(rows) == 0:
            raise UserError("saliency: no images selected", "the data is empty")
        targets = _target_classes(context, options, rows).astype(np.int64)

        # Probabilities: data_model adds the softmax to a model that outputs logits. Where no pre-softmax score
        # exists (a sigmoid, a softmax inside a custom layer), score=logit falls back to the output, and says so.
        use_logits = options.score == "logit" and context.pre_softmax_available
        model = context.data_model(logits=use_logits)

        # Streamed: per batch, float32 images -> gradients -> maps; only the (N, H, W) maps are kept.
        batch = options.batch_size or context.batch_size
        maps = np.empty((len(rows), *context.dataset.images.shape[1:3]), np.float32)
        for start in range(0, len(rows), batch):
            chosen = slice(start, start + batch)
            grads = input_gradients(model, context.images(rows[chosen]), targets[chosen], batch_size=batch)
            maps[chosen] = saliency_maps(grads)
        masks, thresholds = threshold_masks(maps, options.threshold_percentile)

        probabilities = context.probabilities[rows]
        predicted = context.predictions[rows]
        labels = None if context.labels is None else np.asarray(context.labels)[rows]
        names = context.class_names

        per_image = []
        for k, row in enumerate(rows):
            per_image.append({
                "row": int(row),
                "true": None if labels is None else _name(names, int(labels[k])),
                "true_index": None if labels is None else int(labels[k]),
                "predicted": names[int(predicted[k])],
                "predicted_index": int(predicted[k]),
                "target": names[int(targets[k])],
                "target_index": int(targets[k]),
                "probability": float(probabilities[k, predicted[k]]),
                "target_probability": float(probabilities[k, targets[k]]),
                "threshold": float(thresholds[k]),
                "fraction_kept": float(masks[k].mean()),
                "zero_gradient": bool(maps[k].max() == 0),
            })

        figures = self._figures(context.dataset.images, rows, maps, masks, per_image, options)
        summary = {
            "selection": selection,
            "target": options.target,
            "score": options.score,
            "score_note": ("pre-softmax class score" if use_logits else "softmax probability"
                           if options.score == "probability" else
                           "the model's output probability: no pre-softmax score could be taken off this model "
                           f"({context.info.output_activation} output), so score=logit fell back to it"),
            "threshold_percentile": options.threshold_percentile,
            "mask_rule": "pixel kept where saliency > np.percentile(map, threshold_percentile) (strictly above; "
                         "ties at the threshold dropped, so an all-zero map keeps nothing)",
            "map": "|gradient| of the target score w.r.t. data pixels, max over channels, scaled to [0, 1] per "
                   "image (all-zero when the gradient is zero)",
            "map_shape": list(maps.shape[1:]),
            "num_images": len(rows),
            "grid_rows": min(len(rows), options.grid_rows),
            "images": per_image,
        }
        arrays = {
            "indices": rows,
            "maps": maps,
            "masks": masks,
            "target_classes": targets,
            "thresholds": thresholds.astype(np.float32),
        }
        return Artifact(figures=figures, arrays=arrays, summary=summary)

    @staticmethod
    def _figures(data_images, rows, maps, masks, per_image, options: SaliencyOptions) -> dict:
        """The grid, and one figure per image made lazily (built when written, then dropped), so that
        explaining thousands of images never holds thousands of figures. ``data_images`` is the dataset's
        array; only the displayed rows are read from it."""
        from matplotlib.figure import Figure

        def image(k):
            return np.asarray(data_images[rows[k]], dtype=np.float32)

        def heading(info):
            true = f"true {info['true']}, " if info["true"] is not None else ""
            return (f"row {info['row']}: {true}pred {info['predicted']} ({info['probability']:.2f})\n"
                    f"target {info['target']}")

        def image_figure(k):
            figure = Figure(figsize=(9, 2.6), layout="constrained")
            axes = figure.subplots(1, 4)
            _draw_row(axes, image(k), maps[k], masks[k], "")
            figure.suptitle(heading(per_image[k]).replace("\n", ", "), fontsize=9)
            return figure

        figures = {}
        if options.image_figures:
            for k, info in enumerate(per_image):
                figures[f"image_{info['row']}"] = functools.partial(image_figure, k)
        shown = min(len(per_image), options.grid_rows)
        grid = Figure(figsize=(8.5, 2.3 * shown + 0.4), layout="constrained")
        axes = np.asarray(grid.subplots(shown, 4, squeeze=False))
        for k in range(shown):
            _draw_row(axes[k], image(k), maps[k], masks[k], heading(per_image[k]))
        more = f" (first {shown} of {len(per_image)})" if shown < len(per_image) else ""
        grid.suptitle(f"saliency ({options.score} score, mask > p{options.threshold_percentile:g}){more}",
                      fontsize=10)
        figures["grid"] = grid
        return figures


@hookimpl
def register_explainers(register):
    register(Saliency())
