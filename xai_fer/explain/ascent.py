"""Gradient ascent on the input: for each filter of a conv layer, the image that excites it most
(activation maximisation's engine, beside the gradient core of the attribution methods).

All filters are optimised together as one batch (image ``i`` belongs to filter ``i``) in one compiled
TensorFlow loop: ``tf.function`` around ``for step in tf.range(begin, end)``, traced once and called once per
:data:`CHUNK` steps, so Python runs a handful of times, not once per step, while Ctrl-C still stops a long run
promptly and the progress display moves. The objective is ``sum_i mean(activation of filter i on image i)``;
images do not interact, so each filter's result does not depend on which other filters share the batch. For a
plain ``Conv2D`` or ``SeparableConv2D`` the objective computes only the one filter each image needs
(:func:`~xai_fer.explain.filter_head.filter_head`) on the model with batch norm folded into its convolutions
(:mod:`xai_fer.models.fold`); the activations reported are always measured through the model's own layer.

The image is parameterised on the data's own scale, as ``v`` in [0, 1] (= pixels / 255), at the data's
resolution and channel count, and mapped to the model through the input adapter (scaling, resize, channel
repeat), so the result is an image of the data set's kind whatever the model expects. What each step does
besides following the gradient, normalised per image to unit RMS (which makes the learning rate and the
regularisation weights independent of the layer's activation scale), is a list of input modifiers and
regularisers (:mod:`xai_fer.explain.ascent_pieces`) in an :class:`AscentRecipe`.

Gradients are only ever taken inside ``tf.function``: eager backward passes through strided 1x1 convs crash
TensorFlow's oneDNN CPU kernels. Under Keras' JAX backend each step's gradient is one call of the backend-neutral
compiled gradient (:func:`xai_fer.explain.backends.current` ``.value_and_gradient``: ``jax.jit`` of
``jax.value_and_grad``), the rest of the step the same arithmetic in ``keras.ops``, and the objective the full
layer output (the one-filter head is TensorFlow code).
"""

from __future__ import annotations

from dataclasses import dataclass

from xai_fer.interrupts import holding_interrupts
from xai_fer.lazy import np

from . import backends
from .ascent_pieces import Jitter, TotalVariation, TowardGrey, trace_key
from .filter_head import feature_model, filter_head
from .progress import NoProgress

CHUNK = 10  # steps per call of the compiled loop: the progress display and Ctrl-C act between calls


@dataclass(frozen=True)
class AscentRecipe:
    """One ascent: ``steps`` of ``learning_rate`` (on the [0, 1] pixel scale, along the unit-RMS gradient), the
    input ``modifiers`` applied in order before the objective, and the ``regularizers`` whose penalty gradients
    are subtracted from each step's direction, in order. See :mod:`xai_fer.explain.ascent_pieces` for the protocol."""

    steps: int = 100
    learning_rate: float = 0.02
    modifiers: tuple = (Jitter(1),)
    regularizers: tuple = (TowardGrey(0.05), TotalVariation(1.0))


class AscentOptimiser:
    """The compiled ascent for one layer: ``features`` is the model cut at the layer (it measures the
    activations reported). ``head`` (:func:`filter_head`) computes the objective more cheaply; without it the
    full layer output is used. ``ascent``: a model computing the same as ``features`` faster (batch norm folded)
    for the objective. The loop is compiled once per list of pieces and reused for every call."""

    def __init__(self, features, adapter, head=None, ascent=None):
        self.features, self.adapter, self.head, self.ascent = features, adapter, head, ascent
        self.count = int(features.outputs[0].shape[-1])
        self._loops: dict = {}
        if backends.name() == "tensorflow":
            import tensorflow as tf

            self.measure = tf.function(self._scores, reduce_retracing=True)
        else:
            self.measure = backends.current().compiled(self._scores, (features,))

    def _scores(self, v, picked, model=None):
        """Each image's mean activation of its own filter (F,), through ``model`` (default the layer's own)."""
        from keras import ops

        model = model or self.features
        activation = ops.cast(model(self.adapter(v * 255.0), training=False), "float32")  # float16: mixed precision
        return ops.sum(ops.mean(activation, axis=(1, 2)) * ops.one_hot(picked, self.count), axis=-1)

    def _objective(self, x, picked):
        import tensorflow as tf

        if self.head is None:
            return tf.reduce_sum(self._scores(x, picked, self.ascent or self.features))
        return tf.reduce_sum(tf.reduce_mean(self.head(self.adapter(x * 255.0), picked), axis=[1, 2]))

    def loop(self, recipe: AscentRecipe):
        """The compiled ``run(v0, picked, begin, end, lr, weights, draws) -> v``: steps ``begin..end-1`` in one
        graph, ``weights`` one float32 scalar per regulariser, ``draws`` one (steps, ...) tensor per modifier."""
        key = (tuple(map(trace_key, recipe.modifiers)), tuple(map(trace_key, recipe.regularizers)))
        if key not in self._loops:
            compile_loop = self._compile if backends.name() == "tensorflow" else self._stepwise
            self._loops[key] = compile_loop(recipe.modifiers, recipe.regularizers)
        return self._loops[key]

    def _stepwise(self, modifiers, regularizers):
        """``run`` as :meth:`_compile` makes it, for backends without TensorFlow's compiled loop: one compiled
        gradient per step (the modifiers inside it, so the gradient flows back through them to ``v``)."""
        from keras import ops

        def objective(v, picked, *drawn):
            x = v
            for modifier, row in zip(modifiers, drawn, strict=True):
                x = modifier.apply(x, row)
            return ops.sum(self._scores(x, picked, self.ascent or self.features))

        models = (self.features, self.ascent or self.features)
        gradient = backends.current().value_and_gradient(objective, models)

        def run(v0, picked, begin, end, lr, weights, draws):
            v = np.asarray(v0, np.float32)
            for step in range(int(begin), int(end)):
                _, grad = gradient(v, picked, *(drawn[step] for drawn in draws))
                rms = np.sqrt(np.mean(np.square(grad), axis=(1, 2, 3), keepdims=True))
                direction = grad / (rms + 1e-12)
                for regularizer, weight in zip(regularizers, weights, strict=True):
                    direction = direction - np.asarray(regularizer.gradient(v, weight))
                v = np.clip(v + lr * direction, 0.0, 1.0).astype(np.float32)
            return v

        return run

    def _compile(self, modifiers, regularizers):
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def run(v0, picked, begin, end, lr, weights, draws):
            v = v0
            for step in tf.range(begin, end):
                with tf.GradientTape() as tape:
                    tape.watch(v)
                    x = v
                    for modifier, drawn in zip(modifiers, draws, strict=True):
                        x = modifier.apply(x, drawn[step])
                    score = self._objective(x, picked)
                grad = tape.gradient(score, v)
                rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=[1, 2, 3], keepdims=True))
                direction = grad / (rms + 1e-12)
                for regularizer, weight in zip(regularizers, weights, strict=True):
                    direction = direction - regularizer.gradient(v, weight)
                v = tf.clip_by_value(v + lr * direction, 0.0, 1.0)
            return v

        return run


def optimise(start, filters, recipe: AscentRecipe, seed: int, optimiser: AscentOptimiser, progress=None,
             description: str = "gradient ascent steps"):
    """Run the ascent from ``start`` ((H, W, C) on [0, 1], the same for every filter); returns (images
    (F, H, W, C) on [0, 1], activations at the start, activations reached). ``progress`` (a
    :mod:`~xai_fer.explain.progress` object) is advanced by the steps done."""
    run, measure = holding_interrupts(optimiser.loop(recipe)), holding_interrupts(optimiser.measure)
    draws = tuple(_drawn(modifier, recipe.steps, seed) for modifier in recipe.modifiers)
    picked = _constant(filters, "int32")
    v0 = _constant(np.broadcast_to(start, (len(filters), *start.shape)), "float32")
    before = np.asarray(measure(v0, picked))
    lr = _constant(recipe.learning_rate, "float32")
    weights = tuple(_constant(r.weight, "float32") for r in recipe.regularizers)
    v = v0
    with (progress or NoProgress()).task(description, total=recipe.steps) as task:
        # One compiled loop, called once per CHUNK steps: Python gets control back between the calls, so
        # Ctrl-C / SIGTERM stop a long run within one chunk (a single graph call cannot be interrupted).
        for begin in range(0, recipe.steps, CHUNK):
            end = min(begin + CHUNK, recipe.steps)
            v = run(v, picked, _constant(begin, "int32"), _constant(end, "int32"), lr, weights, draws)
            task.advance(end - begin)
    after = np.asarray(measure(v, picked))
    return np.asarray(v), before, after


def _constant(value, dtype: str):
    """An argument of the compiled functions: a ``tf.constant`` under TensorFlow (a new value must not retrace
    them), a numpy array under JAX (``jax.jit`` traces arrays by shape anyway)."""
    value = np.asarray(value, dtype=dtype)
    if backends.name() != "tensorflow":
        return value
    import tensorflow as tf

    return tf.constant(value)


def _drawn(modifier, steps: int, seed: int):
    """The modifier's random parameters for every step, seeded by the run's seed and its salt; whole numbers
    (shifts) go to the graph as int32, any others as float32."""
    drawn = np.asarray(modifier.draw(steps, np.random.default_rng([seed, modifier.salt])))
    return _constant(drawn, "int32" if np.issubdtype(drawn.dtype, np.integer) else "float32")


def make_forward(features, adapter):
    """A compiled ``forward(images 0-255, picked) -> (N, len(picked))`` mean activations of the picked filters."""
    from keras import ops

    def forward(x, picked):
        activation = ops.cast(features(adapter(x), training=False), "float32")
        return ops.take(ops.mean(activation, axis=(1, 2)), picked, axis=1)

    return backends.current().compiled(forward, (features,))


def data_maxima(context, forward, filters, limit: int = 0, progress=None,
                description: str = "data images scanned") -> tuple[np.ndarray, np.ndarray, int]:
    """Each filter's highest mean activation over the data images (batched, compiled forward passes):
    (maxima, index of the image reaching it, images scanned)."""
    total = len(context.dataset) if not limit else min(limit, len(context.dataset))
    if total == 0:
        return np.full(len(filters), np.nan), np.full(len(filters), -1), 0
    picked = np.asarray(filters, np.int32)
    best = np.full(len(filters), -np.inf, np.float32)
    where = np.zeros(len(filters), np.int64)
    with (progress or NoProgress()).task(description, total=total) as task:
        for start in range(0, total, context.batch_size):
            stop = min(start + context.batch_size, total)
            means = forward(context.images(slice(start, stop)), picked)
            rows = means.argmax(axis=0)
            values = means[rows, np.arange(len(filters))]
            better = values > best
            best[better], where[better] = values[better], rows[better] + start
            task.advance(stop - start)
    return best, where, total


def ascent_optimiser(model, name: str, features, adapter) -> AscentOptimiser:
    """The optimiser for layer ``name``: batch norm folded into the convolutions where that gives the same
    outputs (checked on two noise images of the adapter's data shape), and the one-filter head. A layer inside
    a nested sub-model gets the plain objective through ``features``."""
    from xai_fer.models.fold import fold_batch_norm

    if "/" in name:
        return AscentOptimiser(features, adapter)
    noise = np.random.default_rng(0).uniform(0, 255, (2, *adapter.data_shape)).astype(np.float32)
    ascent = fold_batch_norm(features, check_input=np.asarray(adapter(noise)))
    source = ascent or model
    head = filter_head(source, source.get_layer(name)) if backends.name() == "tensorflow" else None  # TF code
    return AscentOptimiser(features, adapter, head, ascent)


@dataclass
class CompiledLayer:
    """What one layer's ascent and data scan need, built once per run (``compiled``)."""

    features: object
    optimiser: AscentOptimiser
    forward: object

    @property
    def filters(self) -> int:
        return self.optimiser.count


def compiled(context, name: str) -> CompiledLayer:
    """Feature model and compiled functions for layer ``name``, built once per context (no retracing when the
    same run explains the layer again)."""
    key = ("activation-max", name)
    if key not in context.cache:
        features = feature_model(context.model, name)
        context.cache[key] = CompiledLayer(features, ascent_optimiser(context.model, name, features, context.adapter),
                                           make_forward(features, context.adapter))
    return context.cache[key]
