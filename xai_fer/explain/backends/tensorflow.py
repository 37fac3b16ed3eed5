"""The attribution core's computations under Keras' TensorFlow backend: ``tf.function`` traced once per model
with an unknown batch size, gradients from a ``GradientTape`` inside it (never eagerly: TensorFlow 2.21's
oneDNN CPU kernels corrupt memory in EAGER backward passes through some strided 1x1 convolutions)."""

from __future__ import annotations

from ...interrupts import holding_interrupts
from .tapping import only_output, tapped


def _image_spec(model):
    import tensorflow as tf

    return tf.TensorSpec((None, *(int(d) for d in model.inputs[0].shape[1:])), tf.float32)


def _numpy(out):
    return tuple(o.numpy() for o in out) if isinstance(out, (tuple, list)) else out.numpy()


def _eager_in_out(function):
    """``function`` called on numpy arrays, numpy back; ``.compiled`` is the ``tf.function`` (its tracing count)."""
    import tensorflow as tf

    @holding_interrupts  # Ctrl-C while TensorFlow traces it breaks TensorFlow: raised once the call returns
    def call(*arrays):
        return _numpy(function(*(tf.constant(a) for a in arrays)))

    call.compiled = function
    return call


def _picked_total(scores, classes):
    import tensorflow as tf

    # Images in a batch are independent (inference mode), so the gradient of the sum of each image's own
    # class score is, row by row, the gradient of that image's score.
    picked = tf.gather(scores, classes, axis=1, batch_dims=1)
    return picked, tf.reduce_sum(picked)


def input_gradient_function(model_ref, softmax: bool):
    import tensorflow as tf

    @tf.function(input_signature=[_image_spec(model_ref()), tf.TensorSpec((None,), tf.int32)],
                 reduce_retracing=True)
    def gradient(images, classes):
        with tf.GradientTape() as tape:
            tape.watch(images)
            scores = model_ref()(images, training=False)
            if softmax:
                scores = tf.nn.softmax(scores, axis=-1)
            picked, total = _picked_total(scores, classes)
        return tape.gradient(total, images), picked

    return _eager_in_out(gradient)


def forward_function(model_ref):
    import tensorflow as tf

    @tf.function(input_signature=[_image_spec(model_ref())], reduce_retracing=True)
    def forward(images):
        return model_ref()(images, training=False)

    return _eager_in_out(forward)


def layer_gradient_function(model_ref, layer, layer_path: str):
    import tensorflow as tf

    @tf.function(input_signature=[_image_spec(model_ref()), tf.TensorSpec((None,), tf.int32)],
                 reduce_retracing=True)
    def function(images, classes):
        captured = []

        def watch(out):
            tape.watch(out)
            captured.append(out)
            return out

        with tf.GradientTape() as tape:
            with tapped(layer, watch):
                scores = model_ref()(images, training=False)
            _, total = _picked_total(scores, classes)
        activation = only_output(captured, layer_path)
        return activation, tape.gradient(total, activation)

    return _eager_in_out(function)


def value_and_gradient(function, models=()):
    """``function(v, *args) -> scalar`` (keras.ops, may call ``models``) compiled: ``(v, *args) -> (value,
    d value / d v)``, numpy in and out. ``models`` are read as they are when traced (TensorFlow reads variables
    at each call anyway)."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def compiled_gradient(v, *args):
        with tf.GradientTape() as tape:
            tape.watch(v)
            value = function(v, *args)
        return value, tape.gradient(value, v)

    return _eager_in_out(compiled_gradient)


def compiled(function, models=()):
    """``function(*args)`` (keras.ops, may call ``models``) compiled, numpy in and out."""
    import tensorflow as tf

    return _eager_in_out(tf.function(function, reduce_retracing=True))


def predict(model, images, batch_size: int):
    """``model`` on ``images`` batch by batch, numpy back: eager calls (forward passes are safe eagerly, and
    tracing a function for a model used once, such as each candidate of the scaling search, costs more)."""
    import numpy as np

    out = [np.asarray(model(images[s:s + batch_size], training=False)) for s in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else None
