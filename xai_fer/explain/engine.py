"""The compiled, batched machinery every attribution method works through (:class:`AttributionEngine`).

A method never writes its own ``GradientTape`` (nor ``jax.grad``): the engine computes under Keras' backend,
TensorFlow or JAX, through :mod:`xai_fer.explain.backends`, so a method runs unchanged on both. Never eagerly:
TensorFlow 2.21's oneDNN CPU kernels corrupt memory ("double free", exit 139) in EAGER backward passes through
some strided 1x1 convolutions, and an eager tape re-dispatches every op per batch. The engine's calls are
compiled once per (model, kind) and reused for every batch, and they split any number of images into batches, so
a method's memory is bounded by the batch size, not the input.

Everything happens in the data's space: images on the 0-255 scale at the data's resolution (the model's own
scaling, resizing and channel conversion sit inside the model the engine differentiates), so gradients and maps
land on the data's pixels whatever the model expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xai_fer.lazy import np

from . import backends
from .gradients import compiled_for as _compiled
from .gradients import input_gradients
from .progress import NoProgress

# The data's pixel scale (ExplainContext.images): noise levels and baselines are fractions of it.
DATA_RANGE = (0.0, 255.0)


def _batched(function, batch_size: int, *arrays):
    """``function`` over slices of ``batch_size`` rows of every array; outputs (numpy) in a list, one per batch."""
    return [function(*(a[start:start + batch_size] for a in arrays)) for start in range(0, len(arrays[0]), batch_size)]


def joined(parts: list):
    """The batches' arrays end to end; a single batch as it is (a copy of Grad-CAM's activations and gradients
    costs as much as the arithmetic on them)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


@dataclass
class AttributionEngine:
    """What an attribution method computes with. Made by ``ExplainContext.attribution_engine(score)``.

    ``model`` maps data-space images (N, H, W, C), 0-255 at the data's resolution, to (N, classes) scores:
    pre-softmax scores for ``score="logit"``, probabilities otherwise. ``probability_model`` always gives
    probabilities (for perturbation methods that score a probability drop). ``seed`` seeds :meth:`rng`.
    """

    model: object
    probability_model: object
    score: str
    batch_size: int = 128
    seed: int = 0
    find_layer: object = None  # (layer path) -> the layer object inside ``model``
    root_model: object = None  # the Keras model itself (its layers, as ``ModelInfo`` names them)
    info: object = None  # its ``ModelInfo``
    # Where a method reports a long loop inside one chunk (``with engine.progress.task(...) as task``): the
    # run's progress display (xai_fer.explain.progress), silent by default.
    progress: object = field(default_factory=NoProgress)

    data_range: tuple[float, float] = DATA_RANGE

    @property
    def mid_grey(self) -> float:
        """The data-space value that is mid-grey on every input scaling (0.5 on [0, 1], 0 on [-1, 1])."""
        return (self.data_range[0] + self.data_range[1]) / 2

    def rng(self, salt: int = 0):
        """A seeded generator: the same run with the same seed draws the same noise, masks and baselines."""
        return np.random.default_rng([self.seed, salt])

    def gradients(self, images, classes, return_scores: bool = False):
        """d score[class] / d pixel for every image (float32, (N, H, W, C)), compiled and batched; with
        ``return_scores`` also the (N,) scores differentiated."""
        return input_gradients(self.model, images, classes, batch_size=self.batch_size,
                               return_scores=return_scores)

    def scores(self, images, classes, probabilities: bool = False):
        """Each image's score for its class ((N,) float32), forward passes only, compiled and batched. The
        engine's score (logit or probability) unless ``probabilities``."""
        model = self.probability_model if probabilities else self.model
        out = self.predict(images, model=model)
        classes = np.broadcast_to(np.asarray(classes, dtype=np.int64), (len(out),))
        return out[np.arange(len(out)), classes].astype(np.float32)

    def predict(self, images, model=None) -> np.ndarray:
        """(N, classes) outputs of ``model`` (default: the engine's score model), compiled and batched."""
        model = model if model is not None else self.model
        images = np.asarray(images, dtype=np.float32)
        forward = _compiled(model, "forward", lambda model_ref: backends.current().forward_function(model_ref))
        out = _batched(forward, self.batch_size, images)
        if not out:
            return np.zeros((0, int(model.outputs[0].shape[-1])), np.float32)
        return joined(out).astype(np.float32, copy=False)

    def layer_gradients(self, layer: str, images, classes):
        """Activations of the layer at path ``layer`` (``backbone/conv3`` inside a nested model) and the
        gradient of each image's class score with respect to them, both (N, h, w, filters), compiled and
        batched: Grad-CAM's raw material."""
        if self.find_layer is None:
            raise ValueError("this engine was made without access to the model's layers")
        target = self.find_layer(layer)
        function = _compiled(self.model, ("layer_gradients", layer),
                             lambda model_ref: backends.current().layer_gradient_function(model_ref, target, layer))
        images = np.asarray(images, dtype=np.float32)
        classes = np.ascontiguousarray(np.broadcast_to(np.asarray(classes, dtype=np.int32), (len(images),)))
        parts = _batched(function, self.batch_size, images, classes)
        if not parts:
            raise ValueError("no images given")
        return joined([p[0] for p in parts]), joined([p[1] for p in parts])
