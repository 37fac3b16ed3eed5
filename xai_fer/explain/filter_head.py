"""The objective of activation maximisation: a model cut at a conv layer (:func:`feature_model`), and for a
plain ``Conv2D`` or ``SeparableConv2D`` a cheaper one that computes only the filter each image maximises
(:func:`filter_head`)."""

from __future__ import annotations

from xai_fer.errors import UserError
from xai_fer.models.introspect import layer_output_model


def feature_model(model, name: str):
    """The model cut at the output of layer ``name`` (top-level, or ``submodel/layer`` in a nested model)."""
    try:
        return layer_output_model(model, name, name=f"{model.name}_{name.replace('/', '_')}_features")
    except (AttributeError, ValueError) as exc:  # e.g. a layer shared between several places
        raise UserError(f"cannot take the output of layer {name!r}: {exc}",
                        "pick a conv layer that is used once, at the top level of the model or of a "
                        "sub-model called once") from None


_ELEMENTWISE = {"linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "sigmoid",
                "hard_sigmoid", "hard_silu", "hard_swish", "tanh", "softplus", "softsign", "mish", "exponential"}


def filter_head(model, layer):
    """A cheaper objective for a plain ``Conv2D`` or ``SeparableConv2D``: ``head(x, picked) -> (F, h, w)``
    computes only filter ``picked[i]`` on image ``i``, from the model input. For ``Conv2D`` that is one
    depthwise convolution over the batch laid side by side; for ``SeparableConv2D`` the (cheap) depthwise step
    then one pointwise column per image. The layer's other filters are computed in neither the forward nor
    the backward pass. ``None`` for anything else (then the full layer output is used)."""
    import keras
    import tensorflow as tf

    separable = type(layer) is keras.layers.SeparableConv2D
    if not (separable or type(layer) is keras.layers.Conv2D) or layer.compute_dtype != "float32":
        return None
    config = layer.get_config()
    strides, activation = tuple(config["strides"]), getattr(layer.activation, "__name__", "")
    if (config.get("groups", 1) != 1 or config.get("data_format") != "channels_last"
            or tuple(config["dilation_rate"]) != (1, 1) or config["padding"] not in ("valid", "same")
            or strides[0] != strides[1] or activation not in _ELEMENTWISE):
        return None
    try:
        source = layer.input
    except (AttributeError, ValueError):
        return None
    trunk = None
    if source is not model.inputs[0]:
        try:
            trunk = keras.Model(model.inputs[0], source, name=f"{model.name}_{layer.name}_trunk")
        except ValueError:  # the layer sits in a nested sub-model: its input is not in this graph
            return None
    padding, stride = config["padding"].upper(), [1, strides[0], strides[1], 1]
    bias = layer.bias if layer.use_bias else None

    def conv_one_filter(x, picked):
        shape = tf.shape(x)
        count, channels = shape[0], x.shape[-1]
        weights = tf.gather(tf.convert_to_tensor(layer.kernel), picked, axis=3)  # (kh, kw, C, F)
        kh, kw = weights.shape[0], weights.shape[1]
        weights = tf.reshape(tf.transpose(weights, [0, 1, 3, 2]), [kh, kw, count * channels, 1])
        side_by_side = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, shape[1], shape[2], count * channels])
        out = tf.nn.depthwise_conv2d(side_by_side, weights, stride, padding)
        out_shape = tf.shape(out)
        out = tf.reduce_sum(tf.reshape(out, [out_shape[1], out_shape[2], count, channels]), axis=-1)
        return tf.transpose(out, [2, 0, 1])

    def separable_one_filter(x, picked):
        depthwise = tf.nn.depthwise_conv2d(x, tf.convert_to_tensor(layer.depthwise_kernel), stride, padding)
        pointwise = tf.gather(tf.convert_to_tensor(layer.pointwise_kernel)[0, 0], picked, axis=1)  # (C*m, F)
        return tf.einsum("bhwc,cb->bhw", depthwise, pointwise)

    def head(x, picked):
        if trunk is not None:
            x = trunk(x, training=False)
        out = separable_one_filter(x, picked) if separable else conv_one_filter(x, picked)
        if bias is not None:
            out = out + tf.gather(tf.convert_to_tensor(bias), picked)[:, None, None]
        return layer.activation(out)

    return head
