"""Fitting data to a model's input: value scaling, resizing and channel count, all differentiable so that
gradients (and saliency maps) come back in the data's own resolution."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError

SCALINGS = {
    "unit": "pixels / 255 -> [0, 1]",
    "symmetric": "pixels / 127.5 - 1 -> [-1, 1]",
    "raw": "pixels as stored, 0-255",
    "standardize": "per image: (pixels - mean) / std",
}


def resolve_scaling(requested: str, model_scales_its_input: bool) -> str:
    """``auto`` means raw for models that rescale their own input (like xai-fer's), unit otherwise."""
    if requested == "auto":
        return "raw" if model_scales_its_input else "unit"
    if requested not in SCALINGS:
        raise UserError(f"unknown --preprocess {requested!r}", f"use auto or one of {', '.join(SCALINGS)}")
    return requested


@dataclass(frozen=True)
class InputAdapter:
    scaling: str
    data_shape: tuple[int, int, int]
    model_shape: tuple[int, int, int]

    def __post_init__(self):
        data_c, model_c = self.data_shape[-1], self.model_shape[-1]
        if data_c != model_c and 1 not in (data_c, model_c):
            raise UserError(f"data has {data_c} channels but the model expects {model_c}",
                            "use 1- or 3-channel images matching the model")

    def describe(self) -> dict:
        return {
            "scaling": self.scaling,
            "scaling_formula": SCALINGS[self.scaling],
            "resize": None if self.data_shape[:2] == self.model_shape[:2]
            else f"{self.data_shape[0]}x{self.data_shape[1]} -> {self.model_shape[0]}x{self.model_shape[1]} bilinear",
            "channels": None if self.data_shape[-1] == self.model_shape[-1]
            else f"{self.data_shape[-1]} -> {self.model_shape[-1]}",
        }

    def __call__(self, x):
        """Adapt a float batch (N, H, W, C) on the 0-255 scale; works on numpy arrays and backend tensors."""
        from keras import ops

        x = ops.cast(x, "float32")
        if self.scaling == "unit":
            x = x / 255.0
        elif self.scaling == "symmetric":
            x = x / 127.5 - 1.0
        elif self.scaling == "standardize":
            mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
            std = ops.std(x, axis=(1, 2, 3), keepdims=True)
            x = (x - mean) / ops.maximum(std, 1e-6)  # constant images stay finite
        if self.data_shape[:2] != self.model_shape[:2]:
            x = ops.image.resize(x, self.model_shape[:2], interpolation="bilinear")
        data_c, model_c = self.data_shape[-1], self.model_shape[-1]
        if data_c == 1 and model_c > 1:
            x = ops.repeat(x, model_c, axis=-1)
        elif model_c == 1 and data_c > 1:
            x = ops.mean(x, axis=-1, keepdims=True)
        return x
