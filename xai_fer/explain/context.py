"""Everything an explainer works from: the model, its introspection, the data, and predictions computed once
and shared by all explainers of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..data import Dataset
from ..models.adapt import InputAdapter
from ..models.introspect import ModelInfo, logits_model


@dataclass
class ExplainContext:
    model: object
    info: ModelInfo
    dataset: Dataset
    adapter: InputAdapter
    seed: int = 0
    batch_size: int = 128
    _cache: dict = field(default_factory=dict, repr=False)

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

    def data_model(self, logits: bool = False):
        """A Keras model from data-space images (0-255, data resolution) to probabilities or pre-softmax
        scores. Gradients taken through it land on the data's pixels."""
        key = ("data_model", logits)
        if key not in self._cache:
            import keras

            target = logits_model(self.model, self.info) if logits else self.model
            adapter = self.adapter

            class AdaptInput(keras.layers.Layer):
                def call(self, x):
                    return adapter(x)

            inputs = keras.Input(self.adapter.data_shape, name="data_image")
            self._cache[key] = keras.Model(inputs, target(AdaptInput(name="adapt_input")(inputs)))
        return self._cache[key]

    def model_inputs(self, index=None) -> np.ndarray:
        """Images adapted to the model's own input space (scaling, size, channels)."""
        return np.asarray(self.adapter(self.images(index)))

    @cached_property
    def probabilities(self) -> np.ndarray:
        """(N, classes) probabilities for the whole dataset, computed in batches once per run."""
        model = self.data_model(logits=False)
        out = [np.asarray(model(self.images(slice(s, s + self.batch_size)), training=False))
               for s in range(0, len(self.dataset), self.batch_size)]
        probs = np.concatenate(out) if out else np.zeros((0, self.info.num_classes), np.float32)
        if self.info.output_activation not in ("softmax", "sigmoid") and not _are_probabilities(probs):
            # Logit outputs: turn them into probabilities so every explainer sees the same thing. Outputs that
            # already are probabilities (a softmax hidden in a nested sub-model) are left as they are.
            shifted = probs - probs.max(axis=1, keepdims=True)
            probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        return probs

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def labels(self) -> np.ndarray | None:
        return self.dataset.labels


def _are_probabilities(scores: np.ndarray) -> bool:
    return bool(len(scores)) and bool((scores >= 0).all()) and bool(np.allclose(scores.sum(axis=1), 1.0, atol=1e-3))
