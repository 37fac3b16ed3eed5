"""The few compiled computations the attribution core needs, once per Keras backend.

Keras runs on TensorFlow or on JAX (``KERAS_BACKEND``, read once when Keras is imported). Attribution methods and
activation maximisation never see which: they call the engine (``xai_fer.explain.engine``), the engine calls the
backend module picked here, and every backend module offers the same functions, numpy in and numpy out:

* ``input_gradient_function(model, softmax)``: compiled ``(images, classes) -> (d score / d images, scores)``;
* ``forward_function(model)``: compiled ``images -> model(images)``;
* ``layer_gradient_function(model, layer, path)``: compiled ``(images, classes) -> (activations of layer,
  d score / d activations)``, the raw material of Grad-CAM;
* ``value_and_gradient(function, models)`` and ``compiled(function, models)``: any function written with
  ``keras.ops`` that calls ``models`` (activation maximisation's objective), compiled, with its gradient with
  respect to its first argument.

``tensorflow``: ``tf.function`` and ``GradientTape`` (never an eager tape: TensorFlow 2.21's CPU kernels crash in
eager backward passes through strided 1x1 convolutions). ``jax``: the model's stateless call under
``jax.value_and_grad``, compiled with ``jax.jit``.
"""

from __future__ import annotations

import os
import sys

from xai_fer.errors import UserError

SUPPORTED = ("tensorflow", "jax")


def name() -> str:
    """The Keras backend in use (imports Keras)."""
    import keras

    return keras.backend.backend()


def current():
    """The backend module for Keras' backend; a UserError for one the attribution core does not support."""
    backend = name()
    if backend == "tensorflow":
        from . import tensorflow as module
    elif backend == "jax":
        from . import jax as module
    else:
        raise UserError(f"gradients are computed under Keras' TensorFlow or JAX backend, and KERAS_BACKEND is "
                        f"{backend!r}", "set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax (or --backend)")
    return module


def use_backend(backend: str | None) -> None:
    """Make Keras use ``backend`` ("tensorflow" or "jax"; None leaves ``KERAS_BACKEND`` as it is). Keras reads
    ``KERAS_BACKEND`` once, when it is first imported: this must run before that, or ask for the backend Keras
    already uses."""
    if backend is None:
        return
    if backend not in SUPPORTED:
        raise UserError(f"unknown backend {backend!r}", f"use one of: {', '.join(SUPPORTED)}")
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != backend:
            raise UserError(f"Keras already runs on {running!r} in this process and cannot switch to {backend!r}",
                            f"set KERAS_BACKEND={backend} before anything imports Keras (or start a new process)")
        return
    os.environ["KERAS_BACKEND"] = backend


def batch_sizes(count: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of ``count`` rows."""
    return [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
