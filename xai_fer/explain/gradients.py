"""Gradients of one class score per image with respect to the input pixels, for every gradient explainer.

All gradients are computed inside ONE compiled function per (model, score) pair, traced once and reused for every
batch and every later call, under Keras' backend (:mod:`xai_fer.explain.backends`: ``tf.function`` under
TensorFlow, ``jax.jit`` of the stateless call under JAX). Two reasons:

* speed: an eager ``GradientTape`` re-dispatches every op per batch; the compiled function costs the same as
  a plain compiled forward+backward pass;
* safety: TensorFlow 2.21's oneDNN CPU kernels corrupt memory ("double free") in EAGER backward passes
  through some strided 1x1 convolutions. Never take input gradients eagerly; call :func:`input_gradients`.
"""

from __future__ import annotations

import weakref

from xai_fer.errors import UserError
from xai_fer.lazy import np

# model -> {kind -> compiled function}; weak so that a discarded model frees its traced graph.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_differentiable(info, who: str) -> None:
    """Refuse, in one line, what gradient explainers cannot do: run under a Keras backend the attribution core
    has no compiled gradients for (TensorFlow and JAX have), or differentiate a model whose input is cast to
    integers (``Input(dtype="uint8")``: no gradient flows back through the cast, every map would be empty)."""
    from . import backends

    try:
        backends.current()
    except UserError as exc:
        raise UserError(f"{who}: {exc.message}", exc.hint) from None
    if not info.input_dtype.startswith(("float", "bfloat")):
        raise UserError(f"{who}: model {info.name!r} takes {info.input_dtype} input, and no gradient flows back "
                        "through the cast to it", "save the model with a float32 Input to explain it with "
                        "gradients (the other explainers work as it is)")


def compiled_for(model, kind, build):
    """``build(model_ref)`` compiled once per (model, kind) and kept while the model lives. ``model_ref()``
    returns the model: the compiled function holds only a weak reference, so it does not keep its own cache
    key alive."""
    try:
        per_model = _COMPILED.setdefault(model, {})
        model_ref = weakref.ref(model)
    except TypeError:  # an unhashable or non-weak-referenceable model: no cache, still compiled
        per_model, model_ref = {}, lambda: model
    if kind not in per_model:
        per_model[kind] = build(model_ref)
    return per_model[kind]


def _compiled_gradient(model, softmax: bool):
    """The compiled ``(images, classes) -> (d score[class] / d images, scores)`` function for ``model``."""
    from . import backends

    return compiled_for(model, ("gradient", softmax),
                        lambda model_ref: backends.current().input_gradient_function(model_ref, softmax))


def input_gradients(model, images, classes, batch_size: int = 128, softmax: bool = False,
                    return_scores: bool = False):
    """Gradient of ``model(images)[i, classes[i]]`` with respect to ``images[i]``, for every row ``i``.

    ``model`` maps a float batch (N, H, W, C) to (N, classes) scores (for example
    ``ExplainContext.data_model(logits=True)``, so that gradients land on the data's pixels); ``classes`` is
    one class index per image (or a single int for all). ``softmax=True`` differentiates
    ``softmax(model(x))`` instead, for models that output logits. Returns float32 (N, H, W, C) gradients,
    and with ``return_scores`` also the (N,) differentiated scores.
    """
    images = np.asarray(images, dtype=np.float32)
    classes = np.ascontiguousarray(np.broadcast_to(np.asarray(classes, dtype=np.int32), (len(images),)))
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    gradient = _compiled_gradient(model, bool(softmax))
    grads, scores = [], []
    for start in range(0, len(images), batch_size):
        g, s = gradient(images[start:start + batch_size], classes[start:start + batch_size])
        grads.append(g)
        scores.append(s)
    if len(grads) == 1:  # one batch: its arrays as they are, no copy
        out, picked = grads[0], scores[0]
    elif grads:
        out, picked = np.concatenate(grads), np.concatenate(scores)
    else:
        out, picked = np.zeros(images.shape, np.float32), np.zeros((0,), np.float32)
    return (out, picked) if return_scores else out


def saliency_maps(gradients) -> np.ndarray:
    """Vanilla-gradient saliency: ``|gradient|``, max over channels, scaled per image to [0, 1].

    An image whose gradient is zero everywhere (or not finite) gets an all-zero map, never NaN.
    """
    g = np.nan_to_num(np.abs(np.asarray(gradients, dtype=np.float32)), nan=0.0, posinf=0.0, neginf=0.0)
    maps = g.max(axis=-1) if g.ndim == 4 else g
    peak = maps.reshape(len(maps), -1).max(axis=1) if maps.size else np.zeros(len(maps), np.float32)
    scale = np.where(peak > 0, peak, 1.0).astype(np.float32)
    return (maps / scale[:, None, None]).astype(np.float32)


def threshold_masks(maps, percentile: float) -> tuple[np.ndarray, np.ndarray]:
    """Per image, keep the pixels whose value is STRICTLY above ``np.percentile(map, percentile)``.

    Strictly above: ties at the threshold are dropped, so an all-zero (or constant) map keeps nothing rather
    than everything, and ``percentile=90`` keeps about 10% of the pixels (``np.percentile`` interpolates
    linearly, so it can be one pixel more; fewer when values tie).
    Returns the boolean masks (N, H, W) and the per-image threshold values (N,).
    """
    maps = np.asarray(maps)
    thresholds = np.array([np.percentile(m, percentile) for m in maps], dtype=np.float64)
    masks = maps > thresholds.reshape(-1, *([1] * (maps.ndim - 1)))
    return masks, thresholds
