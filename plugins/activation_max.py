"""Activation maximisation: for each selected filter of a conv layer, the input image that excites it most.

How it works
------------
All selected filters are optimised together as one batch (image ``i`` belongs to filter ``i``) in one
compiled TensorFlow loop: ``tf.function`` around ``for step in tf.range(begin, end)``, traced once and called
once per ``CHUNK`` (50) steps, so Python runs a handful of times, not once per step, and Ctrl-C still stops a
long run promptly. The objective is ``sum_i mean(activation of filter i on image i)``; images do not interact, so
each filter's result does not depend on which other filters share the batch. For a plain ``Conv2D`` or
``SeparableConv2D`` layer the objective computes only the one filter each image needs (see
:func:`filter_head`), not all of the layer's filters; the activations reported are always measured through
the model's own layer.

The image is parameterised on the data's own scale, as ``v`` in [0, 1] (= pixels / 255), at the data's
resolution and channel count, and mapped to the model through ``context.adapter`` (scaling, resize, channel
repeat), so the result is an image of the data set's kind whatever the model expects. Every step:

* jitter: the whole batch is rolled by a seeded random shift of up to ``jitter`` pixels (both axes);
* the activation gradient is normalised per image to unit RMS, which makes ``learning_rate`` and the
  regularisation weights independent of the layer's activation scale (a pre-BN conv and a post-ReLU conv
  use the same defaults);
* ``l2`` pulls pixels toward mid-grey (force ``2 * l2 * (v - 0.5)``), ``total_variation`` smooths (gradient
  of the squared-difference total variation, ``-2 * total_variation * laplacian(v)``), both measured against
  the unit-RMS activation gradient;
* ``v += learning_rate * direction`` then clip to [0, 1] (a valid image).

Defaults, chosen by trying them on the study CNN (``cnn`` plugin, early checkpoints trained on FER2013's
48x48 grayscale faces; 16 and 64 filters of block2_conv2 and block3_conv1): 100 steps of 0.02, total variation
1.0, l2 0.05, jitter 1 px, noise std 0.1. Without regularisation the patterns are salt-and-pepper pixel noise;
total variation 0.5 still leaves pixel noise on a weakly trained model; 2.0 is smooth but reaches clearly
lower activations (median ratio to the best data image 1.4 against 1.75 with 1.0); jitter 2 px looks like
1 px at this size. Settings tuned for 224x224 RGB (jitter 8+ px, no smoothing, 0-255 steps) give noise here.
The default layer is the middle one of the conv layers with a kernel larger than 1x1: stripes, blobs and
stroke textures at 48x48; the first layers only show edges, the last ones get hard to read.

Noise seeds are the same seeded noise image for every filter, and the jitter shifts are drawn once from
``context.seed``: two runs with the same seed produce identical images.

Gradients are only ever taken inside ``tf.function``: eager backward passes through strided 1x1 convs crash
TensorFlow's oneDNN CPU kernels.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from xai_fer.errors import UserError
from xai_fer.explain import backends
from xai_fer.explain.artifact import Artifact
from xai_fer.explain.gradients import check_differentiable
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.models.introspect import get_layer_path, layer_output_model
from xai_fer.options import option

NOISE_STD = 0.1  # noise seed: mid-grey + N(0, 0.1) on the [0, 1] scale (about +-25 grey levels)
CHUNK = 50  # steps per call of the compiled loop (see optimise)
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
    close = difflib.get_close_matches(name, valid, n=1)
    prefix = f"did you mean {close[0]!r}? " if close else ""
    return f"{prefix}valid conv layers: {', '.join(valid) or 'none'}"


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
    """An image file as a float32 (H, W, C) array on the 0-255 scale, in the data's channels and size."""
    from PIL import Image, UnidentifiedImageError

    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"image file {str(file)!r} does not exist", "check the image_file path")
    height, width, channels = data_shape
    try:
        with Image.open(file) as image:
            converted = image.convert("L" if channels == 1 else "RGB")
            resized = converted.resize((width, height), Image.Resampling.BILINEAR)
            array = np.asarray(resized, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"cannot read image file {str(file)!r}: {exc}", "pass a PNG, JPEG or similar") from None
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
# The compiled optimisation.


def feature_model(model, name: str):
    """The model cut at the output of layer ``name`` (top-level, or ``submodel/layer`` in a nested model)."""
    try:
        return layer_output_model(model, name, name=f"{model.name}_{name.replace('/', '_')}_features")
    except (AttributeError, ValueError) as exc:  # e.g. a layer shared between several places
        raise UserError(f"cannot take the output of layer {name!r}: {exc}",
                        "pick a conv layer that is used once, at the top level of the model or of a "
                        "sub-model called once") from None


_ELEMENTWISE = {"linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "sigmoid",
                "hard_sigmoid", "hard_silu", "hard_swish", "tanh", "softplus", "softsign", "mish", "exponential"}


def filter_head(model, layer):
    """A cheaper objective for a plain ``Conv2D`` or ``SeparableConv2D``: ``head(x, picked) -> (F, h, w)``
    computes only filter ``picked[i]`` on image ``i``, from the model input. For ``Conv2D`` that is one
    depthwise convolution over the batch laid side by side; for ``SeparableConv2D`` the (cheap) depthwise step
    then one pointwise column per image. The layer's other filters are computed in neither the forward nor
    the backward pass. ``None`` for anything else (then the full layer output is used)."""
    import keras
    import tensorflow as tf

    separable = type(layer) is keras.layers.SeparableConv2D
    if not (separable or type(layer) is keras.layers.Conv2D) or layer.compute_dtype != "float32":
        return None
    config = layer.get_config()
    strides, activation = tuple(config["strides"]), getattr(layer.activation, "__name__", "")
    if (config.get("groups", 1) != 1 or config.get("data_format") != "channels_last"
            or tuple(config["dilation_rate"]) != (1, 1) or config["padding"] not in ("valid", "same")
            or strides[0] != strides[1] or activation not in _ELEMENTWISE):
        return None
    try:
        source = layer.input
    except (AttributeError, ValueError):
        return None
    trunk = None
    if source is not model.inputs[0]:
        try:
            trunk = keras.Model(model.inputs[0], source, name=f"{model.name}_{layer.name}_trunk")
        except ValueError:  # the layer sits in a nested sub-model: its input is not in this graph
            return None
    padding, stride = config["padding"].upper(), [1, strides[0], strides[1], 1]
    bias = layer.bias if layer.use_bias else None

    def conv_one_filter(x, picked):
        shape = tf.shape(x)
        count, channels = shape[0], x.shape[-1]
        weights = tf.gather(tf.convert_to_tensor(layer.kernel), picked, axis=3)  # (kh, kw, C, F)
        kh, kw = weights.shape[0], weights.shape[1]
        weights = tf.reshape(tf.transpose(weights, [0, 1, 3, 2]), [kh, kw, count * channels, 1])
        side_by_side = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, shape[1], shape[2], count * channels])
        out = tf.nn.depthwise_conv2d(side_by_side, weights, stride, padding)
        out_shape = tf.shape(out)
        out = tf.reduce_sum(tf.reshape(out, [out_shape[1], out_shape[2], count, channels]), axis=-1)
        return tf.transpose(out, [2, 0, 1])

    def separable_one_filter(x, picked):
        depthwise = tf.nn.depthwise_conv2d(x, tf.convert_to_tensor(layer.depthwise_kernel), stride, padding)
        pointwise = tf.gather(tf.convert_to_tensor(layer.pointwise_kernel)[0, 0], picked, axis=1)  # (C*m, F)
        return tf.einsum("bhwc,cb->bhw", depthwise, pointwise)

    def head(x, picked):
        if trunk is not None:
            x = trunk(x, training=False)
        out = separable_one_filter(x, picked) if separable else conv_one_filter(x, picked)
        if bias is not None:
            out = out + tf.gather(tf.convert_to_tensor(bias), picked)[:, None, None]
        return layer.activation(out)

    return head


def _laplacian(v):
    """Discrete Laplacian with mirrored (zero-flux) borders; ``-2 * laplacian`` is the gradient of the
    squared-difference total variation."""
    import tensorflow as tf

    p = tf.pad(v, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4.0 * v


def make_optimiser(features, adapter, head=None, ascent=None):
    """A compiled ``run(v0, picked, shifts, begin, end, lr, l2, tv) -> v``: steps ``begin..end-1`` of the
    ascent in one graph (a ``tf.range`` loop), and a compiled ``measure(v, picked)`` of the exact activations
    (through the full layer).

    ``v0``: (F, H, W, C) start images on the [0, 1] scale; ``picked``: (F,) int32, the filter each image
    maximises; ``shifts``: (steps, 2) int32 jitter offsets, one row per step. ``head`` (see
    :func:`filter_head`) computes the objective more cheaply; without it the full layer output is used.
    ``ascent``: a model computing the same as ``features`` faster (batch norm folded, see
    :mod:`xai_fer.models.fold`) for the objective; ``measure`` always uses ``features`` itself.
    """
    from keras import ops

    count = int(features.outputs[0].shape[-1])

    def scores(v, picked, model=features):
        activation = ops.cast(model(adapter(v * 255.0), training=False), "float32")  # float16 under mixed precision
        return ops.sum(ops.mean(activation, axis=(1, 2)) * ops.one_hot(picked, count), axis=-1)

    if backends.name() != "tensorflow":  # JAX: the same ascent, through the backend-neutral compiled gradient
        model = ascent or features
        return _stepwise_optimiser(lambda v, picked: ops.sum(scores(v, picked, model)), scores, (features, model))
    import tensorflow as tf

    def objective(v, picked):
        if head is None:
            return tf.reduce_sum(scores(v, picked, ascent or features))
        return tf.reduce_sum(tf.reduce_mean(head(adapter(v * 255.0), picked), axis=[1, 2]))

    @tf.function(reduce_retracing=True)
    def run(v0, picked, shifts, begin, end, lr, l2, tv):
        v = v0
        for step in tf.range(begin, end):
            with tf.GradientTape() as tape:
                tape.watch(v)
                score = objective(tf.roll(v, shifts[step], axis=[1, 2]), picked)
            grad = tape.gradient(score, v)
            rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=[1, 2, 3], keepdims=True))
            direction = grad / (rms + 1e-12) - 2.0 * l2 * (v - 0.5) + 2.0 * tv * _laplacian(v)
            v = tf.clip_by_value(v + lr * direction, 0.0, 1.0)
        return v

    @tf.function(reduce_retracing=True)
    def measure(v, picked):
        return scores(v, picked)

    return run, measure


def optimise(start, filters, steps, learning_rate, l2, total_variation, jitter, seed, optimiser):
    """Run the ascent with ``optimiser = make_optimiser(...)``; returns (images (F, H, W, C) on [0, 1],
    activations at the start, activations reached)."""
    run, measure = optimiser
    rng = np.random.default_rng([seed, 1])
    shifts = rng.integers(-jitter, jitter + 1, size=(steps, 2)) if jitter else np.zeros((steps, 2))
    picked = _constant(filters, "int32")
    v0 = _constant(np.broadcast_to(start, (len(filters), *start.shape)), "float32")
    before = np.asarray(measure(v0, picked))
    shifts = _constant(shifts, "int32")
    hyper = [_constant(x, "float32") for x in (learning_rate, l2, total_variation)]
    v = v0
    # The same compiled loop, called once per CHUNK steps: Python gets control back between the calls, so
    # Ctrl-C / SIGTERM stop a long run within one chunk (a single graph call cannot be interrupted).
    for begin in range(0, steps, CHUNK):
        v = run(v, picked, shifts, _constant(begin, "int32"), _constant(min(begin + CHUNK, steps), "int32"), *hyper)
    after = np.asarray(measure(v, picked))
    return np.asarray(v), before, after


def _constant(value, dtype: str):
    """An argument of the compiled functions: a ``tf.constant`` under TensorFlow (a new value must not retrace
    them), a numpy array under JAX (``jax.jit`` traces arrays by shape anyway)."""
    if backends.name() != "tensorflow":
        return np.asarray(value, dtype=dtype)
    import tensorflow as tf

    return tf.constant(np.asarray(value, dtype=dtype))


def _laplacian_numpy(v):
    """:func:`_laplacian` on a numpy batch (the JAX path's update runs in numpy between compiled gradients)."""
    p = np.pad(v, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="symmetric")
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4.0 * v


def _stepwise_optimiser(objective, scores, models):
    """``(run, measure)`` as :func:`make_optimiser` returns them, for backends without TensorFlow's compiled
    loop: each step's gradient is one compiled call of ``backends.value_and_gradient`` (the roll's gradient is
    the inverse roll), the update the same arithmetic as the TensorFlow loop, in numpy."""
    backend = backends.current()
    gradient = backend.value_and_gradient(objective, models)
    measure = backend.compiled(scores, models)

    def run(v, picked, shifts, begin, end, lr, l2, tv):
        v = np.asarray(v, np.float32)
        for step in range(int(begin), int(end)):
            shift = (int(shifts[step][0]), int(shifts[step][1]))
            _, grad = gradient(np.roll(v, shift, axis=(1, 2)), picked)
            grad = np.roll(grad, (-shift[0], -shift[1]), axis=(1, 2))
            rms = np.sqrt(np.mean(np.square(grad), axis=(1, 2, 3), keepdims=True))
            direction = grad / (rms + 1e-12) - 2.0 * l2 * (v - 0.5) + 2.0 * tv * _laplacian_numpy(v)
            v = np.clip(v + lr * direction, 0.0, 1.0).astype(np.float32)
        return v

    return run, measure


def make_forward(features, adapter):
    """A compiled ``forward(images 0-255, picked) -> (N, len(picked))`` mean activations of the picked filters."""
    from keras import ops

    def forward(x, picked):
        activation = ops.cast(features(adapter(x), training=False), "float32")
        return ops.take(ops.mean(activation, axis=(1, 2)), picked, axis=1)

    return backends.current().compiled(forward, (features,))


def data_maxima(features, context, filters, limit: int = 0, forward=None) -> tuple[np.ndarray, np.ndarray, int]:
    """Each filter's highest mean activation over the data images (batched, compiled forward passes):
    (maxima, index of the image reaching it, images scanned)."""
    forward = forward or make_forward(features, context.adapter)
    total = len(context.dataset) if not limit else min(limit, len(context.dataset))
    if total == 0:
        return np.full(len(filters), np.nan), np.full(len(filters), -1), 0
    picked = np.asarray(filters, np.int32)
    best = np.full(len(filters), -np.inf, np.float32)
    where = np.zeros(len(filters), np.int64)
    for start in range(0, total, context.batch_size):
        stop = min(start + context.batch_size, total)
        means = forward(context.images(slice(start, stop)), picked)
        rows = means.argmax(axis=0)
        values = means[rows, np.arange(len(filters))]
        better = values > best
        best[better], where[better] = values[better], rows[better] + start
    return best, where, total


def ascent_optimiser(model, name: str, features, adapter):
    """The optimiser activation-max runs for layer ``name``: batch norm folded into the convolutions where that
    gives the same outputs (checked on two noise images of the adapter's data shape), and the one-filter head.
    A layer inside a nested sub-model gets the plain objective through ``features``."""
    from xai_fer.models.fold import fold_batch_norm

    if "/" in name:
        return make_optimiser(features, adapter)
    noise = np.random.default_rng(0).uniform(0, 255, (2, *adapter.data_shape)).astype(np.float32)
    ascent = fold_batch_norm(features, check_input=np.asarray(adapter(noise)))
    source = ascent or model
    head = filter_head(source, source.get_layer(name)) if backends.name() == "tensorflow" else None  # TF code
    return make_optimiser(features, adapter, head, ascent)


def compiled(context, name: str):
    """Feature model and compiled functions for layer ``name``, built once per context (no retracing when the
    same run explains the layer again)."""
    key = ("activation-max", name)
    if key not in context.cache:
        features = feature_model(context.model, name)
        optimiser = ascent_optimiser(context.model, name, features, context.adapter)
        context.cache[key] = (features, optimiser, make_forward(features, context.adapter))
    return context.cache[key]


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
    figure = Figure(figsize=(1.45 * cols, 1.6 * rows + 0.4))
    axes = figure.subplots(rows, cols, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (img, title) in zip(axes.flat, panels, strict=False):
        shown, kwargs = _display(img)
        axis.imshow(shown, **kwargs)
        axis.set_title(title, fontsize=8)
    figure.suptitle(f"activation maximisation: {layer_name} (filter #index  mean activation reached)",
                    fontsize=9)
    figure.tight_layout()
    return figure


def _number(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


class ActivationMax:
    name = "activation-max"
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

    def _resolve(self, context, options: ActivationMaxOptions):
        name, layer = _resolve_layer(context.model, context.info, options.layer)
        features, optimiser, forward = compiled(context, name)  # cached: built once per run
        filters = _resolve_filters(options, name, int(features.outputs[0].shape[-1]))
        if options.seed_from == "image" and not options.image_file:
            index = options.image_index or 0
            if index >= len(context.dataset):
                raise UserError(f"image_index {index} is out of range: the data has {len(context.dataset)} images",
                                f"use 0-{len(context.dataset) - 1}")
        return name, layer, features, optimiser, forward, filters

    def explain(self, context, options: ActivationMaxOptions) -> Artifact:
        adapter = context.adapter
        name, layer, features, optimiser, forward, filters = self._resolve(context, options)
        count = int(features.outputs[0].shape[-1])
        data_shape = tuple(int(d) for d in adapter.data_shape)
        start, seed_info = _seed_image(context, options, data_shape)

        images, before, after = optimise(start, filters, options.steps, options.learning_rate, options.l2,
                                         options.total_variation, options.jitter, context.seed, optimiser)
        natural, natural_index, scanned = data_maxima(features, context, filters, options.data_images, forward)

        order = np.argsort(-after, kind="stable")
        filters_sorted = np.asarray(filters, np.int64)[order]
        images = images[order] * 255.0
        before, after = before[order], after[order]
        natural, natural_index = natural[order], natural_index[order]

        seed_panel = None
        if options.seed_from == "image":
            label = f"seed: row {seed_info['image_index']}" if "image_index" in seed_info else "seed: file"
            seed_panel = (start * 255.0, label)
        figure = grid_figure(images, filters_sorted, after, name, options.columns, seed_panel)

        rows = []
        for f, a, b, m, mi in zip(filters_sorted, after, before, natural, natural_index, strict=True):
            ratio = a / m if m > 0 else None
            rows.append({"filter": int(f), "activation": _number(a), "activation_start": _number(b),
                         "data_max": _number(m), "data_max_image": int(mi) if scanned else None,
                         "ratio_to_data_max": _number(ratio) if ratio is not None else None})
        squeeze = images.shape[-1] == 1
        arrays = {
            "images": images[..., 0] if squeeze else images,
            "filters": filters_sorted,
            "activation": after.astype(np.float32),
            "activation_start": before.astype(np.float32),
            "data_max": natural.astype(np.float32),
        }
        if seed_panel is not None:
            arrays["seed_image"] = start[..., 0] * 255.0 if squeeze else start * 255.0
        summary = {
            "explainer": self.name,
            "layer": name,
            "layer_type": type(layer).__name__,
            "layer_filters": count,
            "layer_default": options.layer is None,
            "parameterisation": "pixels/255 in [0, 1] at data resolution, mapped through the input adapter",
            "adapter": adapter.describe(),
            "seed_image": seed_info,
            "context_seed": context.seed,
            "data_images_scanned": scanned,
            "raised": int(np.sum(after > before)),
            "filters": rows,
            "options": dataclasses.asdict(options),
        }
        return Artifact(figures={"filters": figure}, arrays=arrays, summary=summary)


@hookimpl
def register_explainers(register):
    register(ActivationMax())
