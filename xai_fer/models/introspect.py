"""What every explainer needs to know about a loaded model, and its pre-softmax twin."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import UserError

CONV_TYPES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose")
_SCALING_LAYERS = ("Rescaling", "Normalization")


@dataclass
class ModelInfo:
    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    output_activation: str
    softmax_layer: str | None
    softmax_is_separate_layer: bool
    conv_layers: list[str] = field(default_factory=list)
    parameters: int = 0
    layer_count: int = 0
    scales_its_input: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _activation_name(layer) -> str | None:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", str(activation))


def _check_io(model) -> None:
    inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    if len(inputs) != 1:
        raise UserError(f"model {model.name!r} has {len(inputs)} inputs", "xai-fer explains single-image models")
    if len(outputs) != 1:
        raise UserError(f"model {model.name!r} has {len(outputs)} outputs",
                        "save a model with one classification output")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise UserError(f"model {model.name!r} takes input of shape {shape}, not images (batch, H, W, C)",
                        "xai-fer explains image classifiers with a fixed input size")
    if len(outputs[0].shape) != 2:
        raise UserError(f"model {model.name!r} outputs shape {tuple(outputs[0].shape)}, not class scores",
                        "the output must be (batch, classes)")


def inspect_model(model) -> ModelInfo:
    _check_io(model)
    layers = model.layers
    last = layers[-1]
    kind = type(last).__name__
    # keras.layers.Softmax has no `activation` attribute: it is a separate softmax all the same.
    activation = "softmax" if kind == "Softmax" else _activation_name(last) or "linear"
    separate = kind in ("Activation", "Softmax") and activation == "softmax"
    first = next((layer for layer in layers if type(layer).__name__ != "InputLayer"), None)
    return ModelInfo(
        name=model.name,
        input_shape=tuple(int(d) for d in model.inputs[0].shape[1:]),
        num_classes=int(model.outputs[0].shape[-1]),
        output_activation=activation,
        softmax_layer=last.name if activation == "softmax" else None,
        softmax_is_separate_layer=separate,
        conv_layers=[layer.name for layer in layers if type(layer).__name__ in CONV_TYPES],
        parameters=int(model.count_params()),
        layer_count=len(layers),
        scales_its_input=first is not None and type(first).__name__ in _SCALING_LAYERS,
    )


def logits_model(model, info: ModelInfo):
    """The same network without its final softmax (returns ``model`` itself when there is none).

    Gradients of a softmax output mix all classes and saturate; explainers want the class score before it.
    """
    import keras

    if info.softmax_layer is None:
        return model
    last = model.layers[-1]
    if info.softmax_is_separate_layer:
        return keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
    # Softmax fused into the last layer: rebuild that layer with a linear activation on the same weights.
    config = last.get_config() | {"activation": "linear"}
    twin = type(last).from_config(config)
    features = last.input
    outputs = twin(features)
    twin.set_weights(last.get_weights())
    return keras.Model(model.inputs, outputs, name=f"{model.name}_logits")
