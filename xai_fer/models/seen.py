"""A model seen from a dataset's images: the input adapter (size, channels, and the scaling ``--preprocess``
asks for or ``auto`` measures) between the data and any loaded model, and the class probabilities computed
through it once. Evaluating a model, asking distillation's teachers, the scaling search and explaining (whose
:class:`~xai_fer.explain.context.ExplainContext` is a :class:`SeenModel`) all start here, so they see a model the
same way."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np

from ..data import FER2013_CLASSES, Dataset
from ..display import short
from ..errors import UserError, reason
from .adapt import InputAdapter, resolve_scaling
from .introspect import ModelInfo, inspect_model, logits_model, make_scope_safe, output_layer
from .scaling_choice import ScalingWarning, choose_scaling


@dataclass
class SeenModel:
    """``model`` seen from ``dataset``'s images through ``adapter``: a Keras model from data-space images to class
    probabilities (:meth:`data_model`), those probabilities on every image (:attr:`probabilities`, computed once),
    a one-output model as two classes, and the checks that labels and outputs make sense."""

    model: object
    info: ModelInfo
    dataset: Dataset
    adapter: InputAdapter
    seed: int = 0  # for the random choices of whoever works from this view (an explainer's noise)
    batch_size: int = 128
    # Models built once (the model seen from the data, its pre-softmax twin) and anything else computed once and
    # shared, under a key its maker chooses: ("plugin name", ...) keeps plugins apart.
    cache: dict = field(default_factory=dict, repr=False)
    # How the input scaling was decided (xai_fer.models.scaling_choice.ScalingChoice); None when built by hand.
    scaling_choice: object = None
    # Layers renamed in memory because TensorFlow refuses their names as name scopes: {old path: new name}.
    renamed: dict = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The dataset's class names when they match the model's output size, else ``class 0..K-1``."""
        if len(self.dataset.class_names) == self.info.num_classes:
            return tuple(self.dataset.class_names)
        return tuple(f"class {i}" for i in range(self.info.num_classes))

    def images(self, index=None) -> np.ndarray:
        """Data-space float32 images (0-255 scale), all or the selected rows."""
        chosen = self.dataset.images if index is None else self.dataset.images[index]
        return chosen.astype(np.float32)

    def data_model(self, logits: bool = False, model=None):
        """The model seen from the data: a Keras model from data-space images (0-255, the data's resolution and
        channels) to class probabilities, or with ``logits`` to pre-softmax scores. The input adaptation
        (scaling, resizing, channels) sits inside it, so gradients taken through it land on the data's pixels.
        A model that outputs logits gets a softmax appended, so ``logits=False`` always means probabilities.

        ``model``: another model of the same architecture (a copy with other weights, e.g. randomised for a
        sanity check) seen the same way; default the run's model."""
        key = ("data_model", logits, model)  # the model itself: an id could be reused once it is freed
        if key not in self.cache:
            import keras

            adapted = self._adapted(logits, model)
            if self.info.binary_output:
                self.cache[key] = self._two_classes(adapted, logits)
            elif logits or self.outputs_are_probabilities:
                self.cache[key] = adapted
            else:
                self.cache[key] = keras.Model(adapted.inputs, keras.layers.Softmax(name="probabilities")(
                    adapted.outputs[0]))
        return self.cache[key]

    def _two_classes(self, adapted, logits: bool):
        """A one-output (binary) model as two classes: probabilities ``[1 - p, p]``, and pre-softmax scores
        ``[-z/2, z/2]`` for its logit ``z`` (their softmax is ``[1 - sigmoid(z), sigmoid(z)]``, and each class's
        score has a gradient, unlike ``[0, z]``)."""
        import keras

        output = adapted.outputs[0]
        if logits:
            kind = "logit" if self.pre_softmax_available else "probability"
            return keras.Model(adapted.inputs, _TwoClasses(kind, name="two_class_scores")(output))
        if self.outputs_are_probabilities:
            return keras.Model(adapted.inputs, _TwoClasses("probability", name="probabilities")(output))
        scores = _TwoClasses("logit", name="two_class_scores")(output)
        return keras.Model(adapted.inputs, keras.layers.Softmax(name="probabilities")(scores))

    def _adapted(self, logits: bool, model=None):
        """The model (or its pre-softmax twin) behind the input adapter, outputs as they are."""
        key = ("adapted", logits, model)  # the model itself: an id could be reused once it is freed
        if key not in self.cache:
            import keras

            model = self.model if model is None else model
            target = logits_model(model, self.info) if logits else model
            adapter = self.adapter

            class AdaptInput(keras.layers.Layer):
                def call(self, x):
                    return adapter(x)

            inputs = keras.Input(self.adapter.data_shape, name="data_image")
            self.cache[key] = keras.Model(inputs, target(AdaptInput(name="adapt_input")(inputs)))
        return self.cache[key]

    @cached_property
    def outputs_are_probabilities(self) -> bool:
        """Whether the model's own outputs already are probabilities: a softmax or sigmoid the inspection
        found, or rows that sum to one on the first images (a softmax it could not see, e.g. in a custom
        layer). Otherwise they are logits, and ``data_model`` adds the softmax."""
        if self.info.output_activation in ("softmax", "sigmoid"):
            return True
        if not len(self.dataset):
            return False
        first = _backend_predict()(self._adapted(False), self.images(slice(0, 32)), 32)
        if self.info.binary_output:
            # One column: a layer with a linear activation gives the logit (even when it happens to lie in
            # [0, 1]); a layer without one (a custom layer) gives a probability where every value lies in [0, 1].
            if hasattr(output_layer(self.model), "activation"):
                return False
            return bool(((first >= 0) & (first <= 1)).all())
        return _are_probabilities(first)

    @property
    def pre_softmax_available(self) -> bool:
        """Whether ``data_model(logits=True)`` really gives pre-softmax scores: the softmax was found and
        removed, or there never was one."""
        return self.info.softmax_layer is not None or not self.outputs_are_probabilities

    def model_inputs(self, index=None) -> np.ndarray:
        """Images adapted to the model's own input space (scaling, size, channels)."""
        return np.asarray(self.adapter(self.images(index)))

    @cached_property
    def probabilities(self) -> np.ndarray:
        """(N, classes) probabilities for the whole dataset, computed in batches once per run."""
        model, predict, size = self.data_model(logits=False), _backend_predict(), self.batch_size
        out = [predict(model, self.images(slice(s, s + size)), size) for s in range(0, len(self.dataset), size)]
        probabilities = np.concatenate(out) if out else np.zeros((0, self.info.num_classes), np.float32)
        check_finite_outputs(probabilities, self.dataset)
        return probabilities

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def labels(self) -> np.ndarray | None:
        return self.dataset.labels

    def check_labels_fit(self, who: str, hint: str = "use data whose classes match the model's outputs") -> None:
        """Refuse labels the model has no output for (data of another label set): every accuracy, confusion
        count or true-class gradient taken on them would be meaningless. ``who`` starts the message."""
        labels = self.labels
        if labels is None or not len(labels):
            return
        k, top = self.info.num_classes, int(np.max(labels))
        if int(np.min(labels)) < 0 or top >= k:
            names = self.dataset.class_names
            named = f" ({short(names[top])})" if 0 <= top < len(names) else ""
            if self.dataset.format == "image-folder" and set(names) <= set(FER2013_CLASSES):
                hint = ("folders named after FER2013 classes keep FER2013's label indices (0-6); for a model of "
                        "other classes, save the images as an .npz with labels and class_names in its order")
            raise UserError(f"{who}: labels go up to {top}{named} but the model has {k} classes (0..{k - 1})", hint)


def seen_from_data(model, dataset, preprocess: str = "auto", seed: int = 0, batch_size: int = 128, *,
                   as_class: type[SeenModel] = SeenModel):
    """``model`` seen from ``dataset``'s images: a :class:`SeenModel` (or ``as_class``, a subclass such as the
    explainers' :class:`~xai_fer.explain.context.ExplainContext`) with the scaling chosen as
    :func:`~xai_fer.models.scaling_choice.choose_scaling` says; a close call warns (``ScalingWarning``). A
    ``Dataset`` made in Python gets its pixels put on the 0-255 scale, as ``load_dataset`` does
    (``Dataset.put_on_255_scale``)."""
    dataset.put_on_255_scale()
    # Names legal in Keras that TensorFlow refuses as name scopes ("conv a [1]") would fail every compiled
    # gradient: renamed in memory (the context and the manifest say so), in the API as on the command line.
    renamed = make_scope_safe(model)
    info = inspect_model(model)
    data_shape = tuple(dataset.images.shape[1:])
    adapter = InputAdapter.for_model(resolve_scaling(preprocess, info.scales_its_input), data_shape, info.input_shape)
    if None in info.input_shape and len(dataset):  # before the scaling search, which feeds the model images
        _check_open_size(model, info, adapter, dataset)
    choice, probabilities = choose_scaling(model, info, dataset, preprocess, seed=seed, batch_size=batch_size)
    if choice.warning:
        warnings.warn(choice.warning, ScalingWarning, stacklevel=3)  # where the caller's caller asked for it
    adapter = InputAdapter.for_model(choice.scaling, data_shape, info.input_shape)
    seen = as_class(model=model, info=info, dataset=dataset, adapter=adapter, seed=seed, batch_size=batch_size,
                    scaling_choice=choice, renamed=renamed)
    if probabilities is not None:  # the search saw every image with this scaling: no second pass over them
        seen.__dict__["probabilities"] = probabilities
    return seen


def _check_open_size(model, info, adapter, dataset) -> None:
    """A model of any image size (``(None, None, C)``) still needs images large enough for its convolutions and
    pooling: one image through it says so before any work, in one line."""
    import keras

    try:
        # The shapes every layer computes (no new nodes are added to the model), then one real image.
        model.compute_output_spec(keras.KerasTensor((None, *(adapter.model_input or adapter.model_shape))))
        model(adapter(dataset.images[:1].astype("float32")), training=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types; the user needs the reason
        height, width = adapter.data_shape[:2]
        raise UserError(f"model {info.name!r} cannot take the data's {height}x{width} images: {type(exc).__name__}: "
                        f"{reason(exc)}", "use larger images, or the size the model was trained on") from None


def check_finite_outputs(probabilities: np.ndarray, dataset) -> None:
    """Refuse a model whose outputs are NaN or infinite on these (finite) images: argmax would call every such
    image class 0, and accuracies, confusion counts and maps would be quietly wrong."""
    bad = np.flatnonzero(~np.isfinite(probabilities).all(axis=1))
    if len(bad):
        raise UserError(f"the model outputs NaN or infinite values for {len(bad)} of {len(probabilities)} images of "
                        f"{dataset.source} (first: row {bad[0]})",
                        "its weights are probably broken (e.g. by a training run that diverged): retrain it or "
                        "export it again")


@cache
def _two_classes_layer():
    import keras

    class TwoClasses(keras.layers.Layer):
        """(N, 1) -> (N, 2): ``[1 - p, p]`` for a probability, ``[-z/2, z/2]`` for a logit."""

        def __init__(self, kind: str, **kwargs):
            super().__init__(**kwargs)
            self.kind = kind

        def call(self, x):
            from keras import ops

            if self.kind == "logit":
                return ops.concatenate([-x / 2, x / 2], axis=-1)
            return ops.concatenate([1 - x, x], axis=-1)

    return TwoClasses


def _TwoClasses(kind: str, name: str):  # noqa: N802 - reads as the layer it builds
    return _two_classes_layer()(kind, name=name)


def _are_probabilities(scores: np.ndarray) -> bool:
    return bool(len(scores)) and bool((scores >= 0).all()) and bool(np.allclose(scores.sum(axis=1), 1.0, atol=1e-3))


def _backend_predict():
    """The Keras backend's batched forward pass (compiled under JAX, and shared with the attribution engine).
    It lives with the attribution core's backends, so it is imported when first needed."""
    from ..explain.backends import current

    return current().predict
