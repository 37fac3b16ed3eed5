"""Attribution methods on one core: a method computes maps, this layer does everything else.

A method is a small class (one per method, as in xplique): ``name``, ``description``, an ``Options``
dataclass that extends :class:`AttributionOptions`, and one call::

    def attribute(self, engine, images, targets, options) -> np.ndarray   # (N, H, W) float32

``engine`` is the compiled, batched machinery (:class:`~xai_fer.explain.engine.AttributionEngine`: input
gradients, forward scores, conv-layer gradients, seeded random numbers), ``images`` the data-space images of one
chunk (0-255, the data's resolution), ``targets`` one class per image. A method never writes its own
``GradientTape`` (see the engine's docstring for why). It may return :class:`Maps` instead of an array, to add
per-image numbers (Integrated Gradients' completeness error) and notes to the summary.

Subclassing :class:`Attribution` gives the method everything else every attribution needs: image selection
(indices, per_class, misclassified), the target (predicted, true, a class), the score (logit or probability),
the study's masking (map | original | masked) with an overlay, the grid and per-image figures, ``arrays.npz``
and ``summary.json``, chunking, and a record in ``context.attributions`` for later explainers (faithfulness).
It registers through ``register_explainers`` like any explainer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

from xai_fer.errors import UserError
from xai_fer.lazy import np
from xai_fer.options import option

from .artifact import Artifact
from .gradients import check_differentiable, threshold_masks

_SELECT_MAX = 100_000  # images one attribution run may select: a typo such as per_class=1e9 is refused, not run


@dataclass
class AttributionOptions:
    """The options every attribution method shares; a method's ``Options`` extends this dataclass."""

    select: Literal["auto", "per_class", "indices", "misclassified"] = option(
        "auto", "which images: per_class (N per true class), indices (the given rows), misclassified (the "
                "first N); auto = indices when given, else per_class")
    indices: tuple[int, ...] = option((), "dataset rows to explain (select=indices), e.g. 0,5,17")
    per_class: int = option(2, "images per true class (select=per_class; per predicted class without labels)")
    count: int = option(8, "how many misclassified images (select=misclassified)")
    target: str = option("predicted", "class whose score is explained: predicted, true, a class index or name")
    score: Literal["logit", "probability"] = option(
        "logit", "explain the pre-softmax score (logit) or the softmax probability")
    threshold_percentile: float = option(
        90.0, "mask keeps pixels whose map value is strictly above this percentile of the image's map")
    batch_size: int = option(0, "images per compiled batch; 0 = the run's batch size")
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
        for name in ("per_class", "count"):
            if getattr(self, name) > _SELECT_MAX:
                raise ValueError(f"{name} must be at most {_SELECT_MAX}")
        if self.batch_size < 0:
            raise ValueError("batch_size must be >= 0 (0 = the run's batch size)")
        if self.batch_size > 4096:
            raise ValueError("batch_size must be at most 4096")
        if not 0 <= self.threshold_percentile <= 100:
            raise ValueError("threshold_percentile must be in [0, 100]")


@dataclass
class Maps:
    """What ``attribute`` may return instead of a bare array: the (N, H, W) maps, per-image numbers (each an
    (N,) array, written into every image's summary entry and into ``arrays.npz``) and notes for the summary."""

    values: np.ndarray
    per_image: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


@dataclass
class AttributionResult:
    """One method's maps in a run, as later explainers (faithfulness) read them."""

    method: object
    options: AttributionOptions
    rows: np.ndarray  # dataset rows
    targets: np.ndarray  # class explained per row
    # (N, H, W) float32, as the method returned them (signed where the method is); in a whole-split run
    # (--all-images) an h5py Dataset of maps.h5: read it in slices, maps[i:j].
    maps: np.ndarray
    signed: bool
    score: str  # the score actually differentiated: "logit" or "probability"


# ---------------------------------------------------------------------------------------------------------
# Image selection and targets.


def selection_mode(options: AttributionOptions) -> str:
    if options.select == "auto":
        return "indices" if options.indices else "per_class"
    return options.select


def check_selection(context, options: AttributionOptions, who: str) -> None:
    """What can be checked without predictions: row indices and the labels a mode or target needs."""
    n = len(context.dataset)
    mode = selection_mode(options)
    if mode == "indices":
        bad = [i for i in options.indices if i >= n]
        if bad:
            raise UserError(f"{who}: indices {bad} out of range: the data has {n} images", f"use rows 0..{n - 1}")
    if mode == "misclassified" and context.labels is None:
        raise UserError(f"{who}: select=misclassified needs labels, and the data has none",
                        "use select=per_class or indices=...")
    fixed_target(context, options, who)
    # per_class groups the images by their true class when there are labels: one beyond the model's classes
    # would silently leave its images out.
    if mode in ("misclassified", "per_class") or options.target == "true":
        context.check_labels_fit(who, "use data whose classes match the model's outputs, or pick rows with "
                                      "indices=...")


def fixed_target(context, options: AttributionOptions, who: str) -> int | None:
    """The class index for target=INDEX or NAME; None for predicted and true (checked to have labels)."""
    target = options.target
    if target == "predicted":
        return None
    if target == "true":
        if context.labels is None:
            raise UserError(f"{who}: target=true needs labels, and the data has none",
                            "use target=predicted or a class index")
        return None
    names = [name.lower() for name in context.class_names]
    if target.isdigit():
        return int(target)
    if target.lower() in names:
        return names.index(target.lower())
    raise UserError(f"{who}: unknown target {target!r}",
                    f"use predicted, true, 0..{context.info.num_classes - 1} or one of "
                    f"{', '.join(context.class_names)}")


def select_rows(context, options: AttributionOptions, who: str) -> tuple[np.ndarray, dict]:
    """The dataset rows to explain and a description of how they were chosen."""
    check_selection(context, options, who)
    labels = context.labels
    mode = selection_mode(options)
    if mode == "indices":
        rows = np.array(list(dict.fromkeys(options.indices)), dtype=np.int64)  # unique, order kept
        return rows, {"mode": "indices", "indices": rows.tolist()}
    if mode == "misclassified":
        wrong = np.flatnonzero(context.predictions != labels)
        if len(wrong) == 0:
            raise UserError(f"{who}: no misclassified images in the data", "use select=per_class")
        rows = wrong[: options.count]
        return rows, {"mode": "misclassified", "count": options.count, "misclassified_total": int(len(wrong))}
    grouping = labels if labels is not None else context.predictions
    rows = np.concatenate([np.flatnonzero(grouping == c)[: options.per_class]
                           for c in range(context.info.num_classes)] or [np.zeros(0, np.int64)])
    return rows.astype(np.int64), {"mode": "per_class", "per_class": options.per_class,
                                   "grouped_by": "true" if labels is not None else "predicted"}


def target_classes(context, options: AttributionOptions, rows: np.ndarray, who: str) -> np.ndarray:
    index = fixed_target(context, options, who)
    if index is not None:
        return np.full(len(rows), index, dtype=np.int64)
    if options.target == "predicted":
        return context.predictions[rows].astype(np.int64)
    return np.asarray(context.labels)[rows].astype(np.int64)


# ---------------------------------------------------------------------------------------------------------
# From raw maps to what is shown.


def display_maps(maps, signed: bool) -> np.ndarray:
    """Per image, the map's magnitude (signed maps) or its positive part scaled to [0, 1]; an image whose map
    is zero everywhere (or not finite) stays all zero, never NaN. This is what masks and overlays use."""
    values = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    values = np.abs(values) if signed else np.maximum(values, 0)
    peak = values.reshape(len(values), -1).max(axis=1) if values.size else np.zeros(len(values), np.float32)
    scale = np.where(peak > 0, peak, 1.0).astype(np.float32)
    return (values / scale[:, None, None]).astype(np.float32)


def _class_name(names, index: int) -> str:
    """A label's class name; labels beyond the model's classes (shown with target=predicted) by index."""
    return names[index] if 0 <= index < len(names) else f"class {index}"


def show_image(ax, image: np.ndarray) -> None:
    """A data-space image (0-255) on a matplotlib axis, gray or RGB."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(np.clip(image / 255.0, 0, 1))


def draw_row(axes, image, shown, mask, heading: str, label: str) -> None:
    """The study's figure row: map | original | masked, then the map over the image."""
    axes[0].imshow(shown, cmap="hot", vmin=0, vmax=1)
    axes[0].set_title(label, fontsize=8)
    show_image(axes[1], image)
    axes[1].set_title("original", fontsize=8)
    show_image(axes[2], image * mask[..., None])
    axes[2].set_title(f"masked ({mask.mean():.0%} kept)", fontsize=8)
    show_image(axes[3], image)
    axes[3].imshow(shown, cmap="jet", vmin=0, vmax=1, alpha=0.5)
    axes[3].set_title("overlay", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel(heading, fontsize=7)


def _heading(info: dict) -> str:
    true = f"true {info['true']}, " if info["true"] is not None else ""
    # The image as the user knows it: its file name, or its line in a CSV file; else its row in the data.
    shown = info.get("name") or f"row {info['row']}"
    return f"{shown}: {true}pred {info['predicted']} ({info['probability']:.2f})\ntarget {info['target']}"


def attribution_figures(title: str, label: str, data_images, rows, shown, masks, per_image,
                        options: AttributionOptions) -> dict:
    """The grid, and one figure per image made lazily (built when written, then dropped), so that explaining
    thousands of images never holds thousands of figures. ``data_images`` is the dataset's array; only the
    displayed rows are read from it."""
    from matplotlib.figure import Figure

    def image(k):
        return np.asarray(data_images[rows[k]], dtype=np.float32)

    def image_figure(k):
        figure = Figure(figsize=(9, 2.6), layout="constrained")
        axes = figure.subplots(1, 4)
        draw_row(axes, image(k), shown[k], masks[k], "", label)
        figure.suptitle(_heading(per_image[k]).replace("\n", ", "), fontsize=9)
        return figure

    figures = {}
    if options.image_figures:
        for k, info in enumerate(per_image):
            figures[f"image_{info['row']}"] = functools.partial(image_figure, k)
    count = min(len(per_image), options.grid_rows)
    grid = Figure(figsize=(8.5, 2.3 * count + 0.4), layout="constrained")
    axes = np.asarray(grid.subplots(count, 4, squeeze=False))
    for k in range(count):
        draw_row(axes[k], image(k), shown[k], masks[k], _heading(per_image[k]), label)
    more = f" (first {count} of {len(per_image)})" if count < len(per_image) else ""
    grid.suptitle(f"{title} ({options.score} score, mask > p{options.threshold_percentile:g}){more}", fontsize=10)
    figures["grid"] = grid
    return figures


# ---------------------------------------------------------------------------------------------------------
# The base class.


class Attribution:
    """Base class of attribution explainers: subclass it, set ``name``, ``description``, ``Options`` (a
    dataclass extending :class:`AttributionOptions`) and write :meth:`attribute`.

    Class attributes a method may set: ``signed`` (maps carry a sign: masks and faithfulness rank by
    magnitude), ``needs_gradients`` (refuse models no gradient flows through), ``needs_conv_layers``,
    ``map_description`` (one sentence for the summary), ``figure_label`` (the map panel's title) and
    ``batch_independent`` (each image's map is the same whatever other images share its chunk).
    """

    name: str = ""
    description: str = ""
    Options: type = AttributionOptions
    signed: bool = False
    needs_gradients: bool = True
    needs_conv_layers: bool = False
    map_description: str = ""
    figure_label: str = ""
    # True when nothing random is drawn per chunk in a way that depends on the chunk's size (noise drawn for
    # the whole batch at once does): an image's map is then the same in any chunk, and the randomisation check
    # takes the run's maps as the trained model's instead of computing them again. False is always safe.
    batch_independent: bool = False

    def attribute(self, engine, images: np.ndarray, targets: np.ndarray, options) -> np.ndarray | Maps:
        """(N, H, W) float32 maps for data-space ``images`` (N, H, W, C) and one target class each."""
        raise NotImplementedError(f"{type(self).__name__} must define attribute(engine, images, targets, options)")

    def summarise(self, context, options, maps: Maps) -> dict:
        """Method-specific entries for the summary (e.g. the layer read, aggregate errors); default none."""
        return {}

    # Checks -------------------------------------------------------------------------------------------------

    def validate(self, info, options) -> None:
        if self.needs_gradients:
            check_differentiable(info, self.name)
        if self.needs_conv_layers and not info.conv_layers:
            raise UserError(f"{self.name}: model {info.name!r} has no conv layers",
                            "use an explainer that works on any model: saliency, smoothgrad, integrated-gradients, "
                            "occlusion")
        if options.target.isdigit() and int(options.target) >= info.num_classes:
            raise UserError(f"{self.name}: target class {options.target} does not exist",
                            f"the model has {info.num_classes} classes: use 0..{info.num_classes - 1}")

    def check(self, context, options) -> None:
        """Rows, labels and the target class against the data and model, before any explainer runs
        (predictions are computed once per run and shared, so asking for them here costs nothing)."""
        self.validate(context.info, options)
        check_selection(context, options, self.name)
        if selection_mode(options) == "misclassified" and not (context.predictions
                                                                != np.asarray(context.labels)).any():
            raise UserError(f"{self.name}: no misclassified images in the data", "use select=per_class or indices=...")

    # The run ------------------------------------------------------------------------------------------------

    def compute(self, context, rows: np.ndarray, targets: np.ndarray, options, model=None) -> Maps:
        """The method's maps for dataset ``rows``, chunk by chunk (one chunk = one batch of images), with
        its per-image numbers joined. ``model``: another model of the same architecture (sanity checks), or the
        run's own model holding other weights (its compiled functions serve, as for ``None``)."""
        engine = context.attribution_engine(options.score, model=None if model is context.model else model,
                                            batch_size=options.batch_size or None)
        chunk = engine.batch_size
        height, width = context.dataset.images.shape[1:3]
        values = np.empty((len(rows), height, width), np.float32)
        per_image: dict[str, list] = {}
        notes: dict = {}
        which = "" if model is None else " (randomised model)"
        with context.progress.task(f"{self.name}: images{which}", total=len(rows)) as task:
            for start in range(0, len(rows), chunk):
                part = slice(start, start + chunk)
                maps = self._chunk(engine, context.images(rows[part]), targets[part], options, (height, width))
                values[part] = maps.values
                for key, column in maps.per_image.items():
                    per_image.setdefault(key, []).append(np.asarray(column))
                notes.update(maps.notes)
                task.advance(len(rows[part]))
        return Maps(values, {k: np.concatenate(v) for k, v in per_image.items()}, notes)

    def _chunk(self, engine, images, targets, options, size: tuple[int, int]) -> Maps:
        """``attribute`` on one chunk, its maps checked to be one per image at the data's resolution."""
        out = self.attribute(engine, images, targets, options)
        maps = out if isinstance(out, Maps) else Maps(np.asarray(out))
        got = np.asarray(maps.values)
        if got.shape != (len(images), *size):
            raise ValueError(f"attribute returned maps of shape {got.shape}, expected {(len(images), *size)} (one "
                             "map per image at the data's resolution)")
        return Maps(got, maps.per_image, maps.notes)

    def explain(self, context, options):
        if context.whole_split is not None and self.name in context.attributions:  # maps already in maps.h5
            from .wholesplit import explain_stored

            return explain_stored(self, context, options)
        self.validate(context.info, options)
        rows, selection = select_rows(context, options, self.name)
        if len(rows) == 0:
            raise UserError(f"{self.name}: no images selected", "the data is empty")
        targets = target_classes(context, options, rows, self.name)
        engine_score = context.differentiated_score(options.score)
        result = self.compute(context, rows, targets, options)
        maps = result.values
        context.attributions[self.name] = AttributionResult(self, options, rows, targets, maps, self.signed,
                                                            engine_score)
        shown = display_maps(maps, self.signed)
        masks, thresholds = threshold_masks(shown, options.threshold_percentile)
        per_image = self._per_image(context, rows, targets, shown, masks, thresholds, result.per_image)
        label = self.figure_label or self.name
        figures = attribution_figures(self.name, label, context.dataset.images, rows, shown, masks, per_image,
                                      options)
        summary = {
            "method": self.name,
            "selection": selection,
            "target": options.target,
            "score": options.score,
            "score_note": _score_note(context, options, engine_score),
            "threshold_percentile": options.threshold_percentile,
            "mask_rule": "pixel kept where the shown map > np.percentile(map, threshold_percentile) (strictly "
                         "above; ties at the threshold dropped, so an all-zero map keeps nothing)",
            "map": self.map_description or self.description,
            "signed": self.signed,
            "map_shape": list(maps.shape[1:]),
            "num_images": len(rows),
            "grid_rows": min(len(rows), options.grid_rows),
            **result.notes,
            **self.summarise(context, options, result),
            "images": per_image,
        }
        arrays = {"indices": rows, "maps": maps, "masks": masks, "target_classes": targets,
                  "thresholds": thresholds.astype(np.float32)}
        for key, column in result.per_image.items():
            arrays.setdefault(key, column)
        return Artifact(figures=figures, arrays=arrays, summary=summary)

    @staticmethod
    def _per_image(context, rows, targets, shown, masks, thresholds, extra: dict) -> list[dict]:
        probabilities = context.probabilities[rows]
        predicted = context.predictions[rows]
        labels = None if context.labels is None else np.asarray(context.labels)[rows]
        names = context.class_names
        per_image = []
        for k, row in enumerate(rows):
            entry = {
                "row": int(row),
                "true": None if labels is None else _class_name(names, int(labels[k])),
                "true_index": None if labels is None else int(labels[k]),
                "predicted": names[int(predicted[k])],
                "predicted_index": int(predicted[k]),
                "target": names[int(targets[k])],
                "target_index": int(targets[k]),
                "probability": float(probabilities[k, predicted[k]]),
                "target_probability": float(probabilities[k, targets[k]]),
                "threshold": float(thresholds[k]),
                "fraction_kept": float(masks[k].mean()),
                "zero_gradient": bool(shown[k].max() == 0),
            }
            entry.update(context.dataset.row_label(int(row)))  # file name or row in the source file
            for key, column in extra.items():
                value = np.asarray(column[k]).item()
                entry[key] = value if not isinstance(value, float) or np.isfinite(value) else None
            per_image.append(entry)
        return per_image


def _score_note(context, options, engine_score: str) -> str:
    if engine_score == "logit":
        return "pre-softmax class score"
    if options.score == "probability":
        return "softmax probability"
    return ("the model's output probability: no pre-softmax score could be taken off this model "
            f"({context.info.output_activation} output), so score=logit fell back to it")
