"""What every explainer needs to know about a loaded model, and its pre-softmax twin."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from ..errors import UserError

CONV_TYPES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose")
_SCALING_LAYERS = ("Rescaling", "Normalization")
_SOFTMAXES = ("softmax", "log_softmax")
# Layers that may precede a model's own input scaling without computing anything from the pixels' scale.
_PASS_THROUGH = ("InputLayer", "Resizing", "CenterCrop", "Cropping2D", "ZeroPadding2D", "Reshape", "Permute")


@dataclass
class ModelInfo:
    name: str
    input_shape: tuple  # (H, W, C) (H and W None for any size), (H, W) or (H*W*C,): as the model declares it
    num_classes: int
    output_activation: str
    softmax_layer: str | None
    softmax_is_separate_layer: bool
    conv_layers: list[str] = field(default_factory=list)
    parameters: int = 0
    layer_count: int = 0
    scales_its_input: bool = False
    input_dtype: str = "float32"
    # One output (a sigmoid probability or a logit of class 1): explained as two classes, see ExplainContext.
    binary_output: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _activation_name(layer) -> str | None:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", str(activation))


def _check_io(model) -> None:
    try:
        inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    except (AttributeError, ValueError):  # a Sequential model saved before it was built has no inputs yet
        raise UserError(f"model {model.name!r} was saved before it was built, so it has no input shape",
                        "build it (model.build((None, H, W, C)), or call it on a batch) and save it again") from None
    if len(inputs) != 1:
        raise UserError(f"model {model.name!r} has {len(inputs)} inputs", "xai-fer explains single-image models")
    if len(outputs) != 1:
        raise UserError(f"model {model.name!r} has {len(outputs)} outputs",
                        "save a model with one classification output")
    shape = tuple(inputs[0].shape)
    # Images (H, W, C), possibly of any size (None, None, C); also (H, W) and flat vectors (H*W*C,), as
    # homework models on FER2013's pixel strings often take: the input adapter reshapes the images for them.
    if len(shape) not in (2, 3, 4) or shape[-1] is None or (len(shape) == 3 and None in shape[1:]):
        raise UserError(f"model {model.name!r} takes input of shape {shape}, not images (batch, H, W, C), "
                        "(batch, H, W) or flat pixels (batch, H*W*C)", "xai-fer explains image classifiers")
    if len(outputs[0].shape) != 2:
        raise UserError(f"model {model.name!r} outputs shape {tuple(outputs[0].shape)}, not class scores",
                        "the output must be (batch, classes)")


@dataclass
class _Head:
    """How a (sub-)model ends: what ``logits_model`` needs to take its softmax off."""

    output_activation: str
    softmax_layer: str | None
    softmax_is_separate_layer: bool


def _is_nested_model(layer) -> bool:
    """A whole sub-model (a classifier wrapped in a functional model, or a head on a backbone's features)
    called once as a model's last layer, with one input and one output."""
    return (bool(getattr(layer, "layers", None)) and len(getattr(layer, "inputs", None) or []) == 1
            and len(getattr(layer, "outputs", None) or []) == 1 and len(getattr(layer, "_inbound_nodes", [])) == 1)


def _output_activation(last, binary: bool = False) -> tuple[str, str | None, bool]:
    """(activation, softmax layer name or None, softmax is a separate layer) of a model's last layer; for a
    nested sub-model, of its own last layer, wherever the softmax sits. The sigmoid of a ``binary`` model (one
    output) plays the softmax's part: below it is the one score the two classes differ by."""
    if _is_nested_model(last):
        activation, softmax_layer, separate = _output_activation(last.layers[-1], binary)
        return activation, f"{last.name}/{softmax_layer}" if softmax_layer else None, separate
    kind = type(last).__name__
    # keras.layers.Softmax has no `activation` attribute: it is a separate softmax all the same.
    activation = "softmax" if kind == "Softmax" else _activation_name(last) or "linear"
    # A log-softmax output is log-probabilities: its pre-softmax scores are taken off the same way.
    strips = activation in _SOFTMAXES or (binary and activation == "sigmoid")
    return activation, last.name if strips else None, kind in ("Activation", "Softmax") and strips


def _scales_its_input(layers) -> bool:
    """Whether a Rescaling or Normalization layer made for 0-255 pixels comes before the first layer that
    computes features. Augmentation (RandomFlip, ...), resizing and cropping may come first; nested models are
    looked into."""
    return _first_scaling(layers) is True


def _first_scaling(layers) -> bool | None:
    """True when a scaling layer for 0-255 pixels comes first, False when a layer that computes features (or a
    scaling layer for 0-1 pixels) does, None when every layer only passes the pixels on (then the layers after
    this block decide)."""
    for layer in layers:
        kind = type(layer).__name__
        if kind in _SCALING_LAYERS:
            return _takes_raw_pixels(layer)
        if hasattr(layer, "layers"):  # a nested Sequential/Functional: an augmentation block, or the backbone
            found = _first_scaling(layer.layers)
            if found is not None:
                return found
        elif not (kind in _PASS_THROUGH or kind.startswith("Random")):
            return False
    return None


def _takes_raw_pixels(layer) -> bool:
    """Whether a scaling layer was made for 0-255 pixels: a Rescaling by a small factor (1/255, 1/127.5), or a
    Normalization whose mean lies beyond the 0-1 range. ``Rescaling(2, offset=-1)`` or a Normalization
    adapted on pixels / 255 expect 0-1 input. When the numbers can't be read, 0-255 (the common case)."""
    import numpy as np

    try:
        if type(layer).__name__ == "Rescaling":
            return float(np.max(np.abs(np.asarray(layer.scale, dtype=np.float64)))) < 0.1
        mean = getattr(layer, "mean", None)
        return mean is None or float(np.max(np.abs(np.asarray(mean, dtype=np.float64)))) > 2.0
    except (TypeError, ValueError):
        return True


def output_layer(model):
    """The layer that computes the model's output: its last layer, or a nested sub-model's last layer."""
    last = model.layers[-1]
    return output_layer(last) if _is_nested_model(last) else last


def _is_binary(model) -> bool:
    """A binary classifier with one output (the probability, or the logit, of class 1)."""
    return int(model.outputs[0].shape[-1]) == 1


def inspect_model(model) -> ModelInfo:
    _check_io(model)
    layers = model.layers
    binary = _is_binary(model)
    activation, softmax_layer, separate = _output_activation(layers[-1], binary)
    return ModelInfo(
        name=model.name,
        input_shape=tuple(None if d is None else int(d) for d in model.inputs[0].shape[1:]),
        num_classes=2 if binary else int(model.outputs[0].shape[-1]),
        binary_output=binary,
        output_activation=activation,
        softmax_layer=softmax_layer,
        softmax_is_separate_layer=separate,
        conv_layers=conv_layer_paths(model),
        parameters=int(model.count_params()),
        layer_count=len(layers),
        scales_its_input=_scales_its_input(layers),
        input_dtype=str(getattr(model.inputs[0], "dtype", "float32")),
    )


def conv_layer_paths(model, prefix: str = "") -> list[str]:
    """The conv layers of ``model`` in order, those of a nested sub-model (a backbone called once, as in
    transfer learning) named ``submodel/layer``."""
    paths = []
    for layer in model.layers:
        if type(layer).__name__ in CONV_TYPES:
            paths.append(prefix + layer.name)
        elif _is_nested_model(layer):
            paths.extend(conv_layer_paths(layer, f"{prefix}{layer.name}/"))
    return paths


def get_layer_path(model, path: str):
    """The layer named ``path`` (``submodel/layer`` for a nested one); ValueError when there is none."""
    for part in path.split("/"):
        model = model.get_layer(part)
    return model


def layer_output_model(model, path: str, name: str | None = None):
    """A model from ``model``'s input to the output of the layer at ``path``: for a nested layer, the outer
    layers up to the sub-model, then the sub-model cut at its layer (as ``logits_model`` does for heads)."""
    import keras

    first, _, rest = path.partition("/")
    layer = model.get_layer(first)
    if rest:
        inner = layer_output_model(layer, rest)
        feeding = layer._inbound_nodes[0].input_tensors  # the tensors this model feeds into the sub-model
        output = inner(feeding[0] if len(feeding) == 1 else feeding)
    else:
        output = layer.output
    return keras.Model(model.inputs[0], output, name=name)


def logits_model(model, info: ModelInfo | _Head):
    """The same network without its final softmax (returns ``model`` itself when there is none).

    Gradients of a softmax output mix all classes and saturate; explainers want the class score before it.
    """
    import keras

    if info.softmax_layer is None:
        return model
    last = model.layers[-1]
    if _is_nested_model(last):  # the softmax sits inside a sub-model: take that one's logits twin
        inner = logits_model(last, _Head(*_output_activation(last.layers[-1], _is_binary(model))))
        feeding = last._inbound_nodes[0].input_tensors  # the tensors this model feeds into the sub-model
        return keras.Model(model.inputs, inner(feeding[0] if len(feeding) == 1 else feeding),
                           name=f"{model.name}_logits")
    if info.softmax_is_separate_layer:
        return keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
    # Softmax fused into the last layer: rebuild that layer with a linear activation on the same weights.
    config = last.get_config() | {"activation": "linear"}
    twin = type(last).from_config(config)
    features = last.input
    outputs = twin(features)
    twin.set_weights(last.get_weights())
    return keras.Model(model.inputs, outputs, name=f"{model.name}_logits")


# What TensorFlow accepts as a (root) name scope; Keras opens one per model and layer call inside a tf.function,
# so a name with a space or a bracket ("conv a [1]"), legal in Keras, fails every compiled gradient.
_SCOPE_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")
RENAMED_WHY = "TensorFlow refuses these names as name scopes: renamed in memory for this run, the file is unchanged"


def scope_safe_name(name: str) -> str:
    """``name`` with every character TensorFlow refuses in a name scope replaced by '_' (and a leading one
    that may not start a scope prefixed), e.g. ``"conv a [1]"`` -> ``"conv_a__1_"``."""
    if _SCOPE_NAME.match(name):
        return name
    safe = re.sub(r"[^A-Za-z0-9_.\\>-]", "_", name) or "_"
    return safe if _SCOPE_NAME.match(safe) else f"x{safe}"


def make_scope_safe(model) -> dict[str, str]:
    """Rename, in place, the model and every layer (nested models included) whose name TensorFlow refuses as a
    name scope; returns {old path: new name} of what was renamed (empty for most models). The weights and the
    file are untouched; only the names the explainers show change, and the manifest records the renaming."""
    renamed = {}

    def visit(owner, prefix: str) -> None:
        taken = {layer.name for layer in owner.layers}
        for layer in owner.layers:
            new = scope_safe_name(layer.name)
            if new != layer.name:
                base, count = new, 1
                while new in taken:
                    count += 1
                    new = f"{base}_{count}"
                taken.add(new)
                renamed[f"{prefix}{layer.name}"] = new
                layer.name = new
            if hasattr(layer, "layers"):
                visit(layer, f"{prefix}{layer.name}/")

    new = scope_safe_name(model.name)
    if new != model.name:
        renamed[model.name] = new
        model.name = new
    visit(model, "")
    return renamed
