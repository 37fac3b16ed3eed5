"""What Grad-CAM and Grad-CAM++ share: the layer they read (by default the last conv layer whose output still
has a spatial extent), its checks, and the class-activation map from per-filter weights."""

from __future__ import annotations

from functools import lru_cache

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


@lru_cache(maxsize=32)
def _interpolation(source: int, target: int) -> np.ndarray:
    """(target, source): :func:`upsample`'s bilinear interpolation along one axis as a matrix, read off
    upsample itself (column j: where a line of ones at source pixel j lands)."""
    lines = np.eye(source, dtype=np.float32)[:, :, None]  # one (source, 1) map per source pixel
    return np.ascontiguousarray(upsample(lines, target, 1)[:, :, 0].T)


def class_activation_maps(activations, weights, height: int, width: int) -> np.ndarray:
    """ReLU(sum_k weights[k] * activations[..., k]) per image, upsampled to (height, width) as
    :func:`upsample` does (bilinear is separable: two small matrix products for the whole batch, rather than
    one image library call per map, which cost as much as the rest of Grad-CAM's arithmetic)."""
    cams = np.maximum(np.einsum("nhwk,nk->nhw", activations, weights), 0).astype(np.float32)
    if cams.shape[1:] == (height, width):
        return cams
    rows, columns = _interpolation(cams.shape[1], height), _interpolation(cams.shape[2], width)
    return np.matmul(rows, np.matmul(cams, columns.T)).astype(np.float32, copy=False)
