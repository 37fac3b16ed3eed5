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
    """``model_shape`` is the image (H, W, C) the model sees; ``model_input`` the model's own input shape when it
    is not that image: (H, W) or flat (H*W*C,), reached by a reshape after scaling, resizing and channels."""

    scaling: str
    data_shape: tuple[int, int, int]
    model_shape: tuple[int, int, int]
    model_input: tuple | None = None

    @classmethod
    def for_model(cls, scaling: str, data_shape: tuple, model_input: tuple) -> InputAdapter:
        """The adapter from images of ``data_shape`` to a model declaring input ``model_input`` (see
        ``ModelInfo.input_shape``): an image size left open takes the data's, a flat input is filled by the
        data's images as they are (or in gray, or in RGB), or by square gray or RGB images."""
        data_shape, model_input = tuple(data_shape), tuple(model_input)
        if len(model_input) == 3:
            h, w, c = model_input
            return cls(scaling, data_shape, (h or data_shape[0], w or data_shape[1], c))
        if len(model_input) == 2:
            return cls(scaling, data_shape, (*model_input, 1), model_input)
        (size,) = model_input
        height, width, channels = data_shape
        for image in ((height, width, channels), (height, width, 1), (height, width, 3), *_square_images(size)):
            if image[0] * image[1] * image[2] == size:
                return cls(scaling, data_shape, image, model_input)
        raise UserError(f"the model takes {size} values per image, which {height}x{width}x{channels} images "
                        f"({height * width * channels} values) do not fill", "use images of the size it was trained on")

    def __post_init__(self):
        data_c, model_c = self.data_shape[-1], self.model_shape[-1]
        # Gray and RGB convert into each other; any other pair (RGBA, gray+alpha, a channels-first layout read
        # as 48 channels) has no meaningful conversion.
        if data_c != model_c and {data_c, model_c} != {1, 3}:
            raise UserError(f"data has {data_c} channel{'s' * (data_c != 1)} but the model expects {model_c}",
                            self._channel_hint())

    def _channel_hint(self) -> str:
        for what, shape in (("images", self.data_shape), ("model", self.model_shape)):
            if shape[0] in (1, 3) and shape[-1] > 4:  # (C, H, W) read as (H, W, C)
                fix = ("transpose them to (N, H, W, C)" if what == "images"
                       else "save a channels-last model (input (H, W, C))")
                shown = "x".join(map(str, shape))
                looks = "look" if what == "images" else "looks"
                return f"the {what} {looks} channels-first ({shown}): xai-fer works channels-last; {fix}"
        return "use images with the model's channel count (gray and RGB are converted into each other)"

    @property
    def _shrinks(self) -> bool:
        return self.model_shape[0] < self.data_shape[0] or self.model_shape[1] < self.data_shape[1]

    def describe(self) -> dict:
        return {
            "scaling": self.scaling,
            "scaling_formula": SCALINGS[self.scaling],
            "resize": None if self.data_shape[:2] == self.model_shape[:2]
            else f"{self.data_shape[0]}x{self.data_shape[1]} -> {self.model_shape[0]}x{self.model_shape[1]} bilinear"
            + (" antialiased" if self._shrinks else ""),
            "channels": None if self.data_shape[-1] == self.model_shape[-1]
            else f"{self.data_shape[-1]} -> {self.model_shape[-1]}",
            "reshape": None if self.model_input is None
            else f"{'x'.join(map(str, self.model_shape))} -> {'x'.join(map(str, self.model_input))}",
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
            # Antialiased when shrinking, as image libraries do: plain bilinear sampling would alias fine detail.
            x = ops.image.resize(x, self.model_shape[:2], interpolation="bilinear", antialias=self._shrinks)
        data_c, model_c = self.data_shape[-1], self.model_shape[-1]
        if data_c == 1 and model_c > 1:
            x = ops.repeat(x, model_c, axis=-1)
        elif model_c == 1 and data_c > 1:
            # RGB to gray as PIL's "L" mode does it (ITU-R 601-2 luma), the conversion the image loaders use.
            x = ops.sum(x * ops.convert_to_tensor(_LUMA, dtype=x.dtype), axis=-1, keepdims=True)
        if self.model_input is not None:
            x = ops.reshape(x, (-1, *self.model_input))
        return x


_LUMA = (0.299, 0.587, 0.114)


def _square_images(size: int) -> list[tuple[int, int, int]]:
    """Square gray and RGB images of ``size`` values in all."""
    found = []
    for channels in (1, 3):
        side = round((size / channels) ** 0.5)
        if side * side * channels == size:
            found.append((side, side, channels))
    return found
