"""The attribution core's computations under Keras' JAX backend: the model's stateless call
(``model.stateless_call(trainable, non_trainable, images)``) under ``jax.value_and_grad``, compiled with
``jax.jit``. The weights are arguments of the compiled function, not constants baked into it: XLA does not fold
787k weights into the program, and new weights in the same model need no new compile (a copy of the model, as
the faithfulness check's randomised ones, is another model and compiles anew).

``jax.jit`` compiles once per input shape: batches are padded (by repeating their last row) to the next power of
two, so a run compiles each function for a handful of batch sizes, not for every odd-sized last batch. Rows are
independent in inference mode, so the padding changes no result; it is cut off before anything is returned.
"""

from __future__ import annotations

from xai_fer.lazy import np

from .tapping import only_output, tapped


def _bucket(count: int) -> int:
    return 1 << max(count - 1, 0).bit_length()


def _padded(function):
    """``function(*arrays)`` on arrays whose first axis is padded to a power of two; outputs cut back to it."""

    def call(*arrays):
        count = len(arrays[0])
        extra = _bucket(count) - count
        if extra and count:
            arrays = tuple(np.concatenate([a, np.repeat(a[-1:], extra, axis=0)]) for a in arrays)
        out = function(*arrays)
        return tuple(o[:count] for o in out) if isinstance(out, tuple) else out[:count]

    return call


def _state(model):
    return [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]


def _scores(model, trainable, non_trainable, images):
    outputs, _ = model.stateless_call(trainable, non_trainable, images, training=False)
    return outputs


def _picked_total(scores, classes):
    import jax.numpy as jnp

    # Images in a batch are independent (inference mode): the gradient of the sum of each image's own class
    # score is, row by row, the gradient of that image's score (one backward pass for the batch).
    picked = jnp.take_along_axis(scores, classes[:, None], axis=1)[:, 0]
    return picked, jnp.sum(picked.astype("float32"))


def _float32(*arrays):
    # Copies, writable as TensorFlow's are (np.asarray of a JAX array is a read-only view of its buffer).
    return tuple(np.array(a, dtype=np.float32) for a in arrays)


def input_gradient_function(model_ref, softmax: bool):
    import jax

    def total(images, trainable, non_trainable, classes):
        scores = _scores(model_ref(), trainable, non_trainable, images)
        if softmax:
            scores = jax.nn.softmax(scores, axis=-1)
        picked, summed = _picked_total(scores, classes)
        return summed, picked

    gradient = jax.jit(jax.value_and_grad(total, has_aux=True))

    def call(images, classes):
        (_, picked), grads = gradient(images, *_state(model_ref()), classes)
        return _float32(grads, picked)

    return _padded(call)


def forward_function(model_ref):
    import jax

    forward = jax.jit(lambda trainable, non_trainable, images: _scores(model_ref(), trainable, non_trainable, images))
    return _padded(lambda images: np.array(forward(*_state(model_ref()), images)))  # a writable copy


def layer_gradient_function(model_ref, layer, layer_path: str):
    """JAX has no tape to watch an intermediate tensor with: instead the layer's output gets a zero added,
    ``delta``, and the gradient with respect to ``delta`` is the gradient with respect to the output."""
    import jax
    import jax.numpy as jnp

    def forward(delta, trainable, non_trainable, images, classes):
        captured = []

        def perturb(out):
            captured.append(out)
            return out if delta is None else out + delta.astype(out.dtype)

        with tapped(layer, perturb):
            scores = _scores(model_ref(), trainable, non_trainable, images)
        activation = only_output(captured, layer_path)
        return _picked_total(scores, classes)[1], activation

    def function(trainable, non_trainable, images, classes):
        shape = jax.eval_shape(lambda: forward(None, trainable, non_trainable, images, classes)[1])
        delta = jnp.zeros(shape.shape, "float32")
        (_, activation), grads = jax.value_and_grad(forward, has_aux=True)(
            delta, trainable, non_trainable, images, classes)
        return activation, grads

    compiled_function = jax.jit(function)

    def call(images, classes):
        return _float32(*compiled_function(*_state(model_ref()), images, classes))

    return _padded(call)


def _unique_variables(models):
    seen, variables = set(), []
    for model in models:
        for variable in model.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    return variables


def _stateless(function, models):
    """``function(values, *args)``: ``function(*args)`` with the models' variables read from ``values``."""
    import keras

    variables = _unique_variables(models)

    def traced(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return function(*args)

    return traced, variables


def value_and_gradient(function, models=()):
    """``function(v, *args) -> scalar`` (keras.ops, may call ``models``) compiled: ``(v, *args) -> (value,
    d value / d v)``, numpy in and out; the models' weights are arguments of the compiled function."""
    import jax

    traced, variables = _stateless(function, models)
    gradient = jax.jit(jax.value_and_grad(traced, argnums=1))

    def call(v, *args):
        value, grad = gradient([x.value for x in variables], v, *args)
        return np.asarray(value), np.asarray(grad)

    return call


def compiled(function, models=()):
    """``function(*args)`` (keras.ops, may call ``models``) compiled, numpy in and out."""
    import jax

    traced, variables = _stateless(function, models)
    jitted = jax.jit(traced)

    def call(*args):
        out = jitted([x.value for x in variables], *args)
        return tuple(np.asarray(o) for o in out) if isinstance(out, (tuple, list)) else np.asarray(out)

    return call


def predict(model, images, batch_size: int):
    """``model`` on ``images`` batch by batch, numpy back, compiled: eager JAX dispatches (and compiles) every
    op of the model one by one, which takes seconds even for a small model."""
    from ..gradients import compiled_for

    forward = compiled_for(model, "forward", forward_function)  # the engine's: compiled once per model
    out = [forward(images[s:s + batch_size]) for s in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else None
