"""Augmentation as Keras preprocessing layers: part of the training model, so it runs on whatever device
(and backend: TensorFlow or JAX) trains, and is inactive at inference."""

from __future__ import annotations

from .config import TrainConfig


def build_augmentation(config: TrainConfig):
    """The enabled augmentation layers as one ``Sequential``, or None when every augmentation is off (Keras
    cannot build an empty ``Sequential``)."""
    import keras
    from keras import layers

    steps = []
    if config.flip:
        steps.append(layers.RandomFlip("horizontal", seed=_seed(config, 0), name="aug_flip"))
    if config.rotation > 0:
        steps.append(layers.RandomRotation(config.rotation / 360.0, fill_mode="nearest", seed=_seed(config, 1),
                                           name="aug_rotation"))
    if config.shift > 0:
        steps.append(layers.RandomTranslation(config.shift, config.shift, fill_mode="nearest",
                                              seed=_seed(config, 2), name="aug_shift"))
    if config.zoom > 0:
        steps.append(layers.RandomZoom(config.zoom, config.zoom, fill_mode="nearest", seed=_seed(config, 3),
                                       name="aug_zoom"))
    return keras.Sequential(steps, name="augmentation") if steps else None


def _seed(config: TrainConfig, layer: int) -> int:
    """One seed per augmentation layer, kept in 0..2**32-1: JAX holds seeds as uint32."""
    return (config.seed + layer) % 2**32
