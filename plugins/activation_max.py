"""Activation maximisation: for each selected filter of a conv layer, the input image that excites it most.

This module holds the explainer's options, the choice of layer, filters and start image, and the figure; the
ascent itself (batched, compiled, one-filter objective, batch norm folded) is :mod:`xai_fer.explain.ascent`, and
what each step adds to the gradient (jitter, pull toward grey, total variation) are the composable pieces of
:mod:`xai_fer.explain.ascent_pieces`. A subclass adds its own by extending :meth:`ActivationMax.modifiers` or
:meth:`ActivationMax.regularizers`. How the defaults were chosen: docs/plugins.md, "activation-max: how the
defaults were chosen".

Noise seeds are the same seeded noise image for every filter, and the jitter shifts are drawn once from
``context.seed``: two runs with the same seed produce identical images.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from xai_fer.display import figure_name
from xai_fer.errors import UserError, did_you_mean
from xai_fer.explain.artifact import Artifact
from xai_fer.explain.ascent import AscentRecipe, compiled, data_maxima, optimise
from xai_fer.explain.ascent_pieces import Jitter, TotalVariation, TowardGrey
from xai_fer.explain.gradients import check_differentiable
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.models.introspect import get_layer_path
from xai_fer.options import option

NOISE_STD = 0.1  # noise seed: mid-grey + N(0, 0.1) on the [0, 1] scale (about +-25 grey levels)
MAX_STEPS = 100_000  # ceilings of the options (see ActivationMaxOptions.__post_init__)
MAX_FILTERS = 1024
MAX_COLUMNS = 64


@dataclass
class ActivationMaxOptions:
    layer: str | None = option(
        None, "conv layer to visualise (backbone/conv for one inside a nested sub-model; `xai-fer info` lists "
              "them); default: the middle conv layer with a kernel larger than 1x1 (index n//2 of them): "
              "mid-depth filters show textures and face parts, not just edges")
    filters: tuple[int, ...] = option((), "filter indices to visualise, e.g. 0,5,7; empty: all (see first)")
    first: int | None = option(None, "visualise only the first N filters of the layer (when filters is empty)")
    steps: int = option(100, "gradient-ascent steps")
    learning_rate: float = option(
        0.02, "step size on the [0, 1] pixel scale along the per-image normalised gradient")
    seed_from: Literal["noise", "image"] = option(
        "noise", "start from seeded grey noise, or from a data image (image_index) or file (image_file)")
    image_index: int | None = option(None, "row of the data to start from (seed_from=image; default 0)")
    image_file: str | None = option(
        None, "image file to start from (seed_from=image), converted to the data's channels and size")
    l2: float = option(0.05, "pull toward mid-grey, relative to the unit-RMS activation gradient")
    total_variation: float = option(
        1.0, "smoothness (squared-difference total variation), relative to the activation gradient")
    jitter: int = option(1, "random shift of up to this many pixels per step (robust, less noisy patterns)")
    data_images: int = option(
        0, "scan at most this many data images for each filter's highest natural activation (0: all)")
    columns: int = option(8, "panels per row in the figure")

    def __post_init__(self):
        if any(f < 0 for f in self.filters):
            raise ValueError("filters must be indices >= 0")
        if len(set(self.filters)) != len(self.filters):
            raise ValueError("filters lists an index twice")
        if self.first is not None and self.first < 1:
            raise ValueError("first must be at least 1")
        if self.filters and self.first is not None:
            raise ValueError("give filters or first, not both")
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        # Ceilings against typos (steps=1e9 once allocated 15 GiB of jitter shifts before the first step): far
        # above what a picture needs (the defaults are 100 steps, the filters of one layer), yet refused in one
        # line instead of running for days or running out of memory.
        if self.steps > MAX_STEPS:
            raise ValueError(f"steps must be at most {MAX_STEPS:,} (the default is 100; patterns settle within a few "
                             "hundred)")
        if self.first is not None and self.first > MAX_FILTERS:
            raise ValueError(f"first must be at most {MAX_FILTERS} (filters optimised together in one batch)")
        if len(self.filters) > MAX_FILTERS:
            raise ValueError(f"filters lists {len(self.filters)} indices; at most {MAX_FILTERS} are optimised in one "
                             "run")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be positive")
        for name in ("l2", "total_variation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.jitter < 0:
            raise ValueError("jitter must be >= 0 pixels")
        if self.data_images < 0:
            raise ValueError("data_images must be >= 0 (0: all)")
        if not 1 <= self.columns <= MAX_COLUMNS:
            raise ValueError(f"columns must be from 1 to {MAX_COLUMNS} (panels per row of one figure)")
        if self.image_index is not None and self.image_index < 0:
            raise ValueError("image_index must be >= 0")
        if self.seed_from == "noise" and (self.image_index is not None or self.image_file):
            raise ValueError("image_index and image_file need seed_from=image")
        if self.image_index is not None and self.image_file:
            raise ValueError("give image_index or image_file, not both")


# ---------------------------------------------------------------------------------------------------------
# Resolving the options against the model and data (everything here raises UserError before any work).


def _valid_hint(name: str, valid: list[str]) -> str:
    return f"{did_you_mean(name, valid)}valid conv layers: {', '.join(valid) or 'none'}"


def default_layer(model, info) -> str:
    """The middle conv layer (index n//2) among those with a kernel larger than 1x1 (all conv layers when
    every one is 1x1): deep enough for composite patterns, shallow enough to stay readable at 48x48."""
    candidates = []
    for name in info.conv_layers:
        kernel = getattr(get_layer_path(model, name), "kernel_size", (3, 3)) if model is not None else (3, 3)
        if max(kernel) > 1:
            candidates.append(name)
    candidates = candidates or list(info.conv_layers)
    return candidates[len(candidates) // 2]


def _require_conv_layers(info) -> None:
    if not info.conv_layers:
        raise UserError(f"model {info.name!r} has no conv layers", "activation-max visualises conv filters")


def _check_layer_name(info, name: str) -> None:
    if name not in info.conv_layers:
        raise UserError(f"layer {name!r} is not a conv layer of model {info.name!r}",
                        _valid_hint(name, info.conv_layers))


def _resolve_layer(model, info, name: str | None):
    """(name, layer): ``name`` may be ``submodel/layer`` for a conv layer inside a nested backbone."""
    _require_conv_layers(info)
    if name is None:
        name = default_layer(model, info)
    try:
        layer = get_layer_path(model, name)
    except ValueError:
        raise UserError(f"unknown layer {name!r} in model {info.name!r}",
                        _valid_hint(name, info.conv_layers)) from None
    if name not in info.conv_layers:
        raise UserError(f"layer {name!r} is a {type(layer).__name__} layer, not a conv layer",
                        _valid_hint(name, info.conv_layers))
    return name, layer


def _resolve_filters(options: ActivationMaxOptions, layer_name: str, count: int) -> list[int]:
    if options.filters:
        bad = [f for f in options.filters if f >= count]
        if bad:
            raise UserError(f"filter {bad[0]} is out of range: layer {layer_name!r} has {count} filters",
                            f"use indices 0-{count - 1}")
        return list(options.filters)
    return list(range(min(count, options.first or count)))


def read_image_file(path: str, data_shape: tuple[int, int, int]) -> np.ndarray:
    """An image file as a float32 (H, W, C) array on the 0-255 scale, in the data's channels and size. Read
    through the same checked open as image folders: special files, the pixel limit, damaged files."""
    from PIL import Image

    from xai_fer.safe_files import check_kind, open_image

    file = Path(path).expanduser()
    check_kind(file, "image_file")  # a FIFO or /dev/zero: named as such, not as missing
    if not file.exists():
        raise UserError(f"image file {str(file)!r} does not exist", "check the image_file path")
    if file.is_dir():
        raise UserError(f"image file {str(file)!r} is a folder", "pass one image file as image_file")
    height, width, channels = data_shape
    with open_image(file, "image_file") as image:
        converted = image.convert("L" if channels == 1 else "RGB")
        resized = converted.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(resized, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] != channels:  # RGB file for multi-channel (but not 3-channel) data
        array = np.repeat(array.mean(axis=-1, keepdims=True), channels, axis=-1)
    return array


def _seed_image(context, options: ActivationMaxOptions, data_shape) -> tuple[np.ndarray, dict]:
    """The start image on the [0, 1] scale, (H, W, C), and a description of where it came from."""
    if options.seed_from == "noise":
        rng = np.random.default_rng(context.seed)
        noise = 0.5 + NOISE_STD * rng.standard_normal(data_shape)
        return np.clip(noise, 0.0, 1.0).astype(np.float32), {"from": "noise", "std": NOISE_STD,
                                                             "seed": context.seed}
    if options.image_file:
        return read_image_file(options.image_file, data_shape) / 255.0, {"from": "file",
                                                                       "path": str(options.image_file)}
    index = options.image_index or 0  # in range: checked by ActivationMax.check
    image = np.clip(context.images(slice(index, index + 1))[0], 0, 255) / 255.0
    return image.astype(np.float32), {"from": "data", "image_index": index}


# ---------------------------------------------------------------------------------------------------------
# Output.


def _display(image: np.ndarray) -> tuple[np.ndarray, dict]:
    """(H, W, C) 0-255 -> what imshow wants: (H, W) gray or (H, W, 3) in [0, 1]."""
    if image.shape[-1] == 1:
        return image[..., 0], {"cmap": "gray", "vmin": 0, "vmax": 255}
    if image.shape[-1] == 3:
        return np.clip(image / 255.0, 0, 1), {}
    return image.mean(axis=-1), {"cmap": "gray", "vmin": 0, "vmax": 255}


def grid_figure(images, filters, reached, layer_name, columns, seed_panel=None):
    """One panel per filter, titled with its index and the activation it reached; optional seed panel first."""
    # A bare Figure, not pyplot: the Python API must leave the caller's backend and figure list alone.
    from matplotlib.figure import Figure

    panels = ([seed_panel] if seed_panel is not None else []) + [
        (img, f"#{f}  {a:.3g}") for img, f, a in zip(images, filters, reached, strict=True)]
    cols = min(columns, len(panels))
    rows = math.ceil(len(panels) / cols)
    # Laid out when saved (display.save_figure): names drawn literally, and no layout warning in the terminal.
    figure = Figure(figsize=(1.45 * cols, 1.6 * rows + 0.4), layout="tight")
    axes = figure.subplots(rows, cols, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (img, title) in zip(axes.flat, panels, strict=False):
        shown, kwargs = _display(img)
        axis.imshow(shown, **kwargs)
        axis.set_title(title, fontsize=8)
    figure.suptitle(f"activation maximisation: {figure_name(layer_name)} (filter #index  mean activation reached)",
                    fontsize=9)
    return figure


def _number(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


class ActivationMax:
    name = "activation-max"
    report_group = "filters"
    description = ("activation maximisation: the image each filter of a conv layer responds to most, from "
                   "noise or a data image (batched, compiled gradient ascent)")
    Options = ActivationMaxOptions

    def validate(self, info, options: ActivationMaxOptions) -> None:
        _require_conv_layers(info)
        check_differentiable(info, "activation-max")
        if options.layer is not None:
            _check_layer_name(info, options.layer)
        if options.image_file and not Path(options.image_file).expanduser().is_file():
            raise UserError(f"image file {options.image_file!r} does not exist", "check the image_file path")
        # Filter indices and image_index need the model and the data: see check.

    def check(self, context, options: ActivationMaxOptions) -> None:
        """Layer, filter indices and seed image against the model and data, before any explainer runs."""
        self._resolve(context, options)

    # What each ascent step does besides following the gradient: a subclass extends these lists.

    def modifiers(self, options: ActivationMaxOptions) -> list:
        """Input modifiers (:mod:`xai_fer.explain.ascent_pieces`), applied in order before the objective."""
        return [Jitter(options.jitter)]

    def regularizers(self, options: ActivationMaxOptions) -> list:
        """Regularisers whose penalty gradients are subtracted, in order, from each step's unit-RMS gradient."""
        return [TowardGrey(options.l2), TotalVariation(options.total_variation)]

    def recipe(self, options: ActivationMaxOptions) -> AscentRecipe:
        return AscentRecipe(options.steps, options.learning_rate, tuple(self.modifiers(options)),
                            tuple(self.regularizers(options)))

    def _resolve(self, context, options: ActivationMaxOptions):
        name, layer = _resolve_layer(context.model, context.info, options.layer)
        built = compiled(context, name)  # cached: built once per run
        filters = _resolve_filters(options, name, built.filters)
        if options.seed_from == "image" and not options.image_file:
            index = options.image_index or 0
            if index >= len(context.dataset):
                raise UserError(f"image_index {index} is out of range: the data has {len(context.dataset)} images",
                                f"use 0-{len(context.dataset) - 1}")
        return name, layer, built, filters

    def explain(self, context, options: ActivationMaxOptions) -> Artifact:
        name, layer, built, filters = self._resolve(context, options)
        data_shape = tuple(int(d) for d in context.adapter.data_shape)
        start, seed_info = _seed_image(context, options, data_shape)
        images, before, after = optimise(start, filters, self.recipe(options), context.seed, built.optimiser,
                                         context.progress, f"{self.name}: ascent steps ({len(filters)} filters)")
        natural, natural_index, scanned = data_maxima(context, built.forward, filters, options.data_images,
                                                      context.progress, f"{self.name}: data images scanned")
        order = np.argsort(-after, kind="stable")
        ranked = _Ranked(np.asarray(filters, np.int64)[order], images[order] * 255.0, before[order], after[order],
                         natural[order], natural_index[order], scanned)
        seed_panel = None
        if options.seed_from == "image":
            label = f"seed: row {seed_info['image_index']}" if "image_index" in seed_info else "seed: file"
            seed_panel = (start * 255.0, label)
        figure = grid_figure(ranked.images, ranked.filters, ranked.after, name, options.columns, seed_panel)
        arrays = ranked.arrays()
        if seed_panel is not None:
            arrays["seed_image"] = start[..., 0] * 255.0 if start.shape[-1] == 1 else start * 255.0
        summary = {
            "explainer": self.name,
            "layer": name,
            "layer_type": type(layer).__name__,
            "layer_filters": built.filters,
            "layer_default": options.layer is None,
            "parameterisation": "pixels/255 in [0, 1] at data resolution, mapped through the input adapter",
            "adapter": context.adapter.describe(),
            "seed_image": seed_info,
            "context_seed": context.seed,
            "data_images_scanned": scanned,
            "raised": int(np.sum(ranked.after > ranked.before)),
            "filters": ranked.rows(),
            "options": dataclasses.asdict(options),
        }
        return Artifact(figures={"filters": figure}, arrays=arrays, summary=summary)


@dataclass
class _Ranked:
    """The filters' results, sorted by the activation reached (highest first)."""

    filters: np.ndarray
    images: np.ndarray  # (F, H, W, C) on 0-255
    before: np.ndarray
    after: np.ndarray
    natural: np.ndarray  # each filter's highest activation on a data image
    natural_index: np.ndarray
    scanned: int

    def rows(self) -> list[dict]:
        rows = []
        for f, a, b, m, mi in zip(self.filters, self.after, self.before, self.natural, self.natural_index,
                                  strict=True):
            ratio = a / m if m > 0 else None
            rows.append({"filter": int(f), "activation": _number(a), "activation_start": _number(b),
                         "data_max": _number(m), "data_max_image": int(mi) if self.scanned else None,
                         "ratio_to_data_max": _number(ratio) if ratio is not None else None})
        return rows

    def arrays(self) -> dict:
        return {
            "images": self.images[..., 0] if self.images.shape[-1] == 1 else self.images,
            "filters": self.filters,
            "activation": self.after.astype(np.float32),
            "activation_start": self.before.astype(np.float32),
            "data_max": self.natural.astype(np.float32),
        }


@hookimpl
def register_explainers(register):
    register(ActivationMax())
