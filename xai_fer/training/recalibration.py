"""Batch-norm recalibration: recompute a trained model's batch-norm statistics on clean training images.

During training the moving mean and variance of every batch-norm layer follow *augmented* images (shifted,
rotated, zoomed, with padded borders) seen *through dropout*, which scales the kept activations up and so
inflates the variance seen by any batch-norm layer behind it. At test time neither happens, and the stored
statistics no longer match what the layer receives (the "variance shift" of Li et al., 2019, "Understanding the
disharmony between dropout and batch normalization"). Recomputing them on the un-augmented training images, in
inference mode, removes that mismatch without touching a single learned weight (the reference CNN's
``metrics.json`` records what it did there).

The statistics are exact population values, not running averages: layer by layer in graph order, each
batch-norm layer's input is streamed over the images (with the layers before it already recalibrated); each
image's per-channel mean and centred variance are computed in float32 inside the compiled graph and combined
in float64 (the variance of the whole is the mean of the images' variances plus the variance of their means).
Only batch-norm layers at the top level of a functional model, each called once, are recalibrated: the others
are counted and left as they are.
"""

from __future__ import annotations

import numpy as np


def batch_norm_layers(model) -> list:
    """The batch-norm layers that can be recalibrated, in graph order: at the top level of ``model`` (a
    sub-model ending at their input reaches them) and called once (a shared layer's ``input`` is its first
    call's only)."""
    return [layer for layer in all_batch_norm_layers(model) if _reachable(model, layer)]


def all_batch_norm_layers(model) -> list:
    import keras

    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def _reachable(model, layer) -> bool:
    return any(layer is top for top in getattr(model, "layers", [])) and len(layer._inbound_nodes) == 1


def recalibrate_batch_norm(model, images: np.ndarray, batch_size: int = 256) -> int:
    """Set the moving statistics of every recalibratable batch-norm layer of functional ``model`` (see
    ``batch_norm_layers``) to the exact mean and variance of its input over ``images`` (model-ready, not
    augmented). Returns how many layers changed."""
    layers = batch_norm_layers(model)
    for layer in layers:
        mean, variance = _channel_moments(model, layer, images, batch_size)
        layer.moving_mean.assign(mean.astype(np.float32).reshape(layer.moving_mean.shape))
        layer.moving_variance.assign(variance.astype(np.float32).reshape(layer.moving_variance.shape))
    return len(layers)


def _channel_moments(model, layer, images, batch_size):
    """Per-channel mean and variance of ``layer``'s input over all ``images`` and positions. Each image is
    reduced to its own mean and centred variance inside the compiled graph (in float32, whatever the model's
    compute dtype), so only (images, channels) arrays leave it; every image has as many positions, so the
    images' moments combine exactly."""
    import keras

    inputs = keras.ops.cast(layer.input, "float32")
    axes = {a % len(inputs.shape) for a in (layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis])}
    reduce = [i for i in range(1, len(inputs.shape)) if i not in axes]
    if reduce:
        mean = keras.ops.mean(inputs, axis=reduce, keepdims=True)
        moments = [keras.ops.squeeze(mean, axis=reduce),
                   keras.ops.mean(keras.ops.square(inputs - mean), axis=reduce)]
    else:  # one value per channel and image (a dense layer's output): nothing to reduce inside an image
        moments = [inputs, keras.ops.zeros_like(inputs)]
    means, variances = (np.asarray(m, dtype=np.float64)
                        for m in keras.Model(model.inputs, moments).predict(images, batch_size=batch_size, verbose=0))
    return means.mean(axis=0), variances.mean(axis=0) + means.var(axis=0)


def validation_scores(model, x: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0) -> tuple[float, float]:
    """(loss, accuracy): the loss is the mean cross-entropy with the training's label smoothing, as the
    ``val_loss`` that picks the best epoch."""
    from ..evaluation import predict_probabilities

    probs = np.clip(predict_probabilities(model, x), 1e-7, 1.0)
    labels = np.asarray(labels)
    classes = probs.shape[1]
    targets = np.full(probs.shape, label_smoothing / classes)
    targets[np.arange(len(labels)), labels] += 1.0 - label_smoothing
    return float(-(targets * np.log(probs)).sum(axis=1).mean()), float((probs.argmax(axis=1) == labels).mean())


def recalibrate_if_better(model, x_train, x_val, y_val, label_smoothing: float = 0.0, max_images: int = 8192,
                          seed: int = 0) -> dict:
    """Recalibrate ``model`` in place and keep it when that lowers the validation loss; otherwise restore its
    statistics. Returns the record of what was measured and which was kept.

    The statistics come from at most ``max_images`` of ``x_train``, drawn with ``seed``: every layer costs a
    forward pass up to it, and a few thousand images (times the positions of a feature map) already pin a
    channel's mean and variance down far below what changes a prediction."""
    import time

    started = time.perf_counter()
    x_train = sample_images(x_train, max_images, seed)
    layers = batch_norm_layers(model)
    record = {"layers": 0, "left_alone": len(all_batch_norm_layers(model)) - len(layers),
              "images": int(len(x_train)), "validation_loss_before": None, "validation_loss_after": None,
              "validation_accuracy_before": None, "validation_accuracy_after": None, "kept": False}
    if not layers:  # nothing to recompute: spare the two validation passes
        return {**record, "seconds": 0.0}
    statistics = [v for layer in layers for v in (layer.moving_mean, layer.moving_variance)]
    saved = [np.array(v.numpy()) for v in statistics]
    before, accuracy_before = validation_scores(model, x_val, y_val, label_smoothing)
    recalibrate_batch_norm(model, x_train)
    after, accuracy_after = validation_scores(model, x_val, y_val, label_smoothing)
    kept = after < before  # a tie (or a NaN) keeps the statistics training left
    if not kept:
        for variable, value in zip(statistics, saved, strict=True):
            variable.assign(value)
    return {**record, "layers": len(layers), "validation_loss_before": before, "validation_loss_after": after,
            "validation_accuracy_before": accuracy_before, "validation_accuracy_after": accuracy_after,
            "kept": bool(kept), "seconds": round(time.perf_counter() - started, 1)}


def sample_images(images: np.ndarray, max_images: int, seed: int) -> np.ndarray:
    """At most ``max_images`` of ``images``, drawn with ``seed`` and kept in their order."""
    if len(images) <= max_images:
        return images
    return images[np.sort(np.random.default_rng(seed).choice(len(images), max_images, replace=False))]


def describe(record: dict) -> str:
    """One line for a ``recalibrate_if_better`` record, as the CLI prints it and the reference README lists it."""
    if not record["layers"]:
        return "batch-norm statistics not recomputed: no batch-norm layer at the top level of the model"
    return (f"batch-norm statistics recomputed on {record['images']:,} training images ({record['layers']} layers): "
            f"validation loss {record['validation_loss_before']:.4f} -> {record['validation_loss_after']:.4f}, "
            f"accuracy {record['validation_accuracy_before']:.2%} -> {record['validation_accuracy_after']:.2%}, "
            f"{'kept' if record['kept'] else 'not kept'}")
