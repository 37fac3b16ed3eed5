"""What Grad-CAM and Grad-CAM++ share: the layer they read (by default the last conv layer whose output still
has a spatial extent), its checks, and the class-activation map from per-filter weights."""

from __future__ import annotations

from xai_fer.errors import UserError, did_you_mean
from xai_fer.lazy import np

from .images import upsample


def spatial_size(layer) -> tuple | None:
    """(h, w) of a conv layer's output as its graph declares it; None when unknown."""
    try:
        shape = tuple(layer.output.shape)
    except (AttributeError, ValueError):  # a layer used more than once has no single output
        return None
    return shape[1:3] if len(shape) == 4 else None


def default_layer(model, info) -> str:
    """The last conv layer whose output is more than one pixel in both directions (a 1x1 map says nothing
    about where), nested backbones included; the last conv layer when sizes are unknown."""
    from xai_fer.models.introspect import get_layer_path

    for path in reversed(info.conv_layers):
        size = spatial_size(get_layer_path(model, path))
        if size is None or all(d is None or d > 1 for d in size):
            return path
    return info.conv_layers[-1]


def check_layer(info, name: str, who: str) -> None:
    if name not in info.conv_layers:
        hint = did_you_mean(name, info.conv_layers, spell=str)
        raise UserError(f"{who}: {name!r} is not a conv layer of model {info.name!r}",
                        f"{hint}conv layers: {', '.join(info.conv_layers[-8:])}")


def class_activation_maps(activations, weights, height: int, width: int) -> np.ndarray:
    """ReLU(sum_k weights[k] * activations[..., k]) per image, upsampled to (height, width)."""
    cams = np.maximum(np.einsum("nhwk,nk->nhw", activations, weights), 0).astype(np.float32)
    return upsample(cams, height, width)
