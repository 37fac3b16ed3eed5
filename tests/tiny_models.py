"""Tiny Keras models of the shapes users bring, for fast tests. Each builder is seeded and returns a model."""

import zipfile

import keras
import numpy as np
from keras import layers


class SavesAZip:
    """Stands in for a Keras model where only ``save`` is used (checkpoint bookkeeping): writes a small,
    complete zip archive, as a ``.keras`` file is."""

    def save(self, path):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model", "weights")


def sequential_fused_softmax(input_shape=(48, 48, 1), classes=7):
    """Sequential, softmax fused into the last Dense layer."""
    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(4, 3, activation="relu", name="conv_a"),
        layers.MaxPooling2D(2),
        layers.Conv2D(6, 3, activation="relu", name="conv_b"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(classes, activation="softmax", name="out"),
    ], name="seq_fused")


def functional_separate_softmax(input_shape=(48, 48, 1), classes=7):
    """Functional, softmax as its own Activation layer."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv_b")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, layers.Activation("softmax", name="softmax")(x), name="func_separate")


def residual_separable_rgb64(input_shape=(64, 64, 3), classes=7):
    """Functional with a residual add, separable convs and a 1x1 stride-2 conv at 64x64x3 (the input shape
    whose eager backward pass crashes TF's oneDNN CPU kernels: gradients must be compiled)."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    shortcut = layers.Conv2D(8, 1, strides=2, name="shortcut_1x1_s2")(x)
    y = layers.SeparableConv2D(8, 3, padding="same", activation="relu", name="sep_a")(x)
    y = layers.MaxPooling2D(2)(y)
    x = layers.Add()([shortcut, y])
    x = layers.SeparableConv2D(8, 3, padding="same", activation="relu", name="sep_b")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(classes)(x)
    return keras.Model(inputs, layers.Activation("softmax")(x), name="residual_rgb64")


def batch_norm_branches(input_shape=(48, 48, 1), classes=7):
    """Functional with batch norm after convs (foldable) and after a conv whose output also feeds a residual
    add (not foldable), with random moving statistics so that folding is not an identity."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(6, 3, padding="same", use_bias=False, name="conv_a")(inputs)
    x = layers.BatchNormalization(name="bn_a")(x)
    x = layers.Activation("relu")(x)
    branch = layers.Conv2D(6, 3, padding="same", name="conv_branch")(x)
    y = layers.BatchNormalization(name="bn_branch")(branch)
    x = layers.Add()([branch, layers.Activation("relu")(y)])
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="conv_b")(x)
    x = layers.BatchNormalization(name="bn_b")(x)
    x = layers.Conv2D(8, 3, padding="same", name="conv_top")(layers.Activation("relu")(x))
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(classes, activation="softmax")(x), name="bn_branches")
    rng = np.random.default_rng(4)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            shape = layer.gamma.shape
            layer.set_weights([rng.uniform(0.5, 2, shape), rng.normal(0, 0.5, shape), rng.normal(0, 1, shape),
                               rng.uniform(0.5, 2, shape)])
    return model


def sequential_softmax_layer(input_shape=(48, 48, 1), classes=7):
    """Sequential ending in ``keras.layers.Softmax`` (a layer with no ``activation`` attribute)."""
    keras.utils.set_random_seed(5)
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(4, 3, strides=2, activation="relu", name="conv_a"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(classes, name="logits"),
        layers.Softmax(name="softmax"),
    ], name="seq_softmax_layer")


def nested_softmax(input_shape=(48, 48, 1), classes=7):
    """A functional model whose last layer is a whole sub-model with the softmax inside it."""
    inner = sequential_softmax_layer(input_shape, classes)
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, inner(inputs), name="nested_softmax")


ALL = {
    "sequential_fused_softmax": sequential_fused_softmax,
    "functional_separate_softmax": functional_separate_softmax,
    "residual_separable_rgb64": residual_separable_rgb64,
    "sequential_softmax_layer": sequential_softmax_layer,
}
