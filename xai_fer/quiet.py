"""Importing TensorFlow without its C++ start-up chatter (oneDNN notices, CUDA probes), which its
``TF_CPP_MIN_LOG_LEVEL`` no longer silences because it is printed before absl logging starts."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras and probe devices once, with the file descriptor 2 silenced meanwhile.

    An import that fails is retried loudly so the real error is visible.
    """
    if "tensorflow" in sys.modules:
        return
    try:
        with _stderr_to_devnull():
            import keras

            if keras.backend.backend() == "tensorflow":  # under KERAS_BACKEND=jax, TensorFlow is not needed
                import tensorflow as tf

                tf.config.list_logical_devices()
    except Exception:
        import keras  # noqa: F401  (repeat without silencing: the user must see why it failed)


# Keras advice meant for whoever writes a model, not whoever explains it (the CLI filters the same two).
_KERAS_ADVICE = (r"The structure of .?inputs.? doesn't match", r"Do not pass an .?input_shape.?/.?input_dim.? argument")


def quiet_for_api() -> None:
    """What the Python API does before it first needs TensorFlow, as the CLI does before a command: C++ logs
    off (unless ``TF_CPP_MIN_LOG_LEVEL`` is set), the start-up chatter silenced, Keras' advice to model authors
    filtered. ``XAI_FER_DEBUG=1`` leaves everything as TensorFlow does it."""
    if os.environ.get("XAI_FER_DEBUG"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as xai_fer.cli.main; only read before TensorFlow starts
    import warnings

    for message in _KERAS_ADVICE:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
    import_tensorflow_quietly()
