"""The study's CNN: nine 3x3 convolutions in three blocks of three, each block pooled; batch norm, dropout,
dense layers and a softmax. About 787k parameters at 48x48x1 with the default options."""

from dataclasses import dataclass

from xai_fer.hookspecs import hookimpl
from xai_fer.options import option

# Ceilings far above any FER network (the default is 32, 64, 128 filters, 64, 128 units): a typo such as
# filters=32,64,1000000 would ask for terabytes of weights, and is refused in one line instead.
MAX_FILTERS = 4_096
MAX_BLOCKS = 8
MAX_UNITS = 16_384
MAX_DENSE_LAYERS = 32


@dataclass
class CnnOptions:
    filters: tuple[int, ...] = option((32, 64, 128), "filters of the three conv blocks (three convs each)")
    dense_units: tuple[int, ...] = option((64, 128), "widths of the dense layers after flattening")
    conv_dropout: float = option(0.25, "dropout after each pooled block")
    dense_dropout: float = option(0.5, "dropout after each dense layer")
    batch_norm: bool = option(True, "batch normalization after every conv and dense layer")

    def __post_init__(self):
        if not self.filters or any(f <= 0 for f in self.filters):
            raise ValueError("filters must be positive whole numbers, one per block")
        if any(u <= 0 for u in self.dense_units):
            raise ValueError("dense_units must be positive")
        if max(self.filters) > MAX_FILTERS or len(self.filters) > MAX_BLOCKS:
            raise ValueError(f"filters allows at most {MAX_BLOCKS} blocks of at most {MAX_FILTERS:,} filters")
        if max(self.dense_units, default=0) > MAX_UNITS or len(self.dense_units) > MAX_DENSE_LAYERS:
            raise ValueError(f"dense_units allows at most {MAX_DENSE_LAYERS} layers of at most {MAX_UNITS:,} units")
        for name in ("conv_dropout", "dense_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1)")


class Cnn:
    name = "cnn"
    description = "study CNN: 3 blocks x 3 conv3x3 + pooling, BN, dropout, dense, softmax (~787k params)"
    Options = CnnOptions

    def build(self, input_shape, num_classes, options: CnnOptions):
        import keras
        from keras import layers

        inputs = keras.Input(shape=tuple(input_shape), name="image")
        # Models take 0-255 pixels: the scaling travels with the model, so a user never has to guess it.
        x = layers.Rescaling(1 / 255.0, name="rescale")(inputs)
        for block, filters in enumerate(options.filters, start=1):
            for conv in range(1, 4):
                x = layers.Conv2D(filters, 3, padding="same", use_bias=not options.batch_norm,
                                  name=f"block{block}_conv{conv}")(x)
                if options.batch_norm:
                    x = layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
                x = layers.Activation("relu", name=f"block{block}_relu{conv}")(x)
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
            x = layers.Dropout(options.conv_dropout, name=f"block{block}_dropout")(x)
        x = layers.Flatten(name="flatten")(x)
        for i, units in enumerate(options.dense_units, start=1):
            x = layers.Dense(units, use_bias=not options.batch_norm, name=f"dense{i}")(x)
            if options.batch_norm:
                x = layers.BatchNormalization(name=f"dense{i}_bn")(x)
            x = layers.Activation("relu", name=f"dense{i}_relu")(x)
            x = layers.Dropout(options.dense_dropout, name=f"dense{i}_dropout")(x)
        x = layers.Dense(num_classes, name="logits")(x)
        outputs = layers.Activation("softmax", name="softmax")(x)
        return keras.Model(inputs, outputs, name="cnn")


@hookimpl
def register_models(register):
    register(Cnn())
