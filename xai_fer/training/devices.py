"""Splitting the CPU into several logical TensorFlow devices, so ``--strategy mirrored`` can run (and be tested)
on a machine without GPUs: ``XAI_FER_CPU_DEVICES=2`` gives MirroredStrategy two CPU replicas.

TensorFlow fixes its logical devices when its runtime starts (the first device query or op), so the split must
happen before that: ``configure_cpu_devices()`` is cheap and imports TensorFlow only when the variable is set.
Also here: the ``--strategy`` a run trains under, and the seeding (and determinism) it trains with.
"""

from __future__ import annotations

import contextlib
import os

from ..errors import UserError

CPU_DEVICES_ENV = "XAI_FER_CPU_DEVICES"


def requested_cpu_devices() -> int | None:
    """The number of logical CPU devices asked for in ``XAI_FER_CPU_DEVICES``, or None when unset."""
    text = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if not text:
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise UserError(f"{CPU_DEVICES_ENV}={text!r} is not a positive whole number", f"e.g. {CPU_DEVICES_ENV}=2")
    return count


def split_cpu(count: int) -> None:
    """Expose the first physical CPU as ``count`` logical devices (TensorFlow backend only).

    Must run before TensorFlow initialises its runtime; calling it again afterwards with the same count is
    harmless, a different count is a UserError.
    """
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")  # physical devices only: does not initialise the runtime
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # already initialised: fine when it already has the wanted split
        have = len(tf.config.list_logical_devices("CPU"))
        if have != count:
            raise UserError(
                f"TensorFlow already started with {have} logical CPU device(s), cannot split it into {count}",
                "the split must happen before anything uses TensorFlow: call "
                "xai_fer.training.devices.configure_cpu_devices() first",
            ) from None


def configure_cpu_devices() -> None:
    """Apply ``XAI_FER_CPU_DEVICES`` (if set) to TensorFlow; a no-op otherwise or under another backend."""
    count = requested_cpu_devices()
    if count is None:
        return
    import keras

    if keras.backend.backend() == "tensorflow":
        split_cpu(count)


def distribution_strategy(strategy: str | None):
    """None (Keras' default placement) or a ``tf.distribute`` strategy for ``--strategy``."""
    if strategy in (None, "none", ""):
        return None
    if strategy != "mirrored":
        raise UserError(f"unknown strategy {strategy!r}", "use 'mirrored' or leave it out")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise UserError("--strategy mirrored needs the TensorFlow backend", "unset KERAS_BACKEND")
    configure_cpu_devices()  # XAI_FER_CPU_DEVICES=N: N CPU replicas where there is no GPU
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()


@contextlib.contextmanager
def seeded(config, deterministic: bool):
    """Seed Keras (Python, NumPy and backend generators); with ``deterministic`` also make TensorFlow's ops
    deterministic for the duration of the run (a process-wide switch, restored afterwards)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    if not (deterministic and keras.backend.backend() == "tensorflow"):
        yield
        return
    import tensorflow as tf

    try:  # TensorFlow exports only the switch on; the query and the switch off live in its config module
        from tensorflow.python.framework import config as tf_config

        restore = not tf_config.is_op_determinism_enabled() and tf_config.disable_op_determinism
    except (ImportError, AttributeError):
        restore = None
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if restore:
            restore()
