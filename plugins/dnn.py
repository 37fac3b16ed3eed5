"""The study's fully connected baseline: flatten, dense layers with batch norm and dropout, softmax.
About 800k parameters at 48x48x1 with the default options."""

from dataclasses import dataclass

from xai_fer.hookspecs import hookimpl
from xai_fer.options import option

# Ceilings far above any FER network (the default is 320, 160, 64): a typo such as hidden_units=1000000000 would
# ask for terabytes of weights, and is refused in one line instead.
MAX_UNITS = 16_384
MAX_LAYERS = 32


@dataclass
class DnnOptions:
    hidden_units: tuple[int, ...] = option((320, 160, 64), "widths of the hidden dense layers")
    dropout: float = option(0.3, "dropout after each hidden layer")
    batch_norm: bool = option(True, "batch normalization after each hidden layer")

    def __post_init__(self):
        if not self.hidden_units or any(u <= 0 for u in self.hidden_units):
            raise ValueError("hidden_units must be positive whole numbers")
        if max(self.hidden_units) > MAX_UNITS or len(self.hidden_units) > MAX_LAYERS:
            raise ValueError(f"hidden_units allows at most {MAX_LAYERS} layers of at most {MAX_UNITS:,} units")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")


class Dnn:
    name = "dnn"
    description = "study DNN: fully connected layers with BN and dropout, softmax (~800k params)"
    Options = DnnOptions

    def build(self, input_shape, num_classes, options: DnnOptions):
        import keras
        from keras import layers

        inputs = keras.Input(shape=tuple(input_shape), name="image")
        x = layers.Rescaling(1 / 255.0, name="rescale")(inputs)
        x = layers.Flatten(name="flatten")(x)
        for i, units in enumerate(options.hidden_units, start=1):
            x = layers.Dense(units, name=f"dense{i}")(x)
            if options.batch_norm:
                x = layers.BatchNormalization(name=f"dense{i}_bn")(x)
            x = layers.Activation("relu", name=f"dense{i}_relu")(x)
            x = layers.Dropout(options.dropout, name=f"dense{i}_dropout")(x)
        x = layers.Dense(num_classes, name="logits")(x)
        outputs = layers.Activation("softmax", name="softmax")(x)
        return keras.Model(inputs, outputs, name="dnn")


@hookimpl
def register_models(register):
    register(Dnn())
