"""The composable pieces of the gradient ascent (:mod:`xai_fer.explain.ascent`): input modifiers, which change
the image the objective sees at each step (jitter), and regularisers, penalties each step goes against (pull
toward grey, smoothness). As tf-keras-vis' ``input_modifiers`` and ``regularizers``, a list of each describes
one ascent (:class:`~xai_fer.explain.ascent.AscentRecipe`), and a plugin adds its own by
writing a class with the few members below.

The image ``v`` is a batch (F, H, W, C) on the [0, 1] scale (pixels / 255). Each step::

    x = v;  for m in modifiers: x = m.apply(x, drawn_m[step])        # what the objective sees
    direction = d objective(x) / d v, normalised to unit RMS per image
    for r in regularizers: direction = direction - r.gradient(v, weight_r)
    v = clip(v + learning_rate * direction, 0, 1)

**Input modifier** (differentiable: the gradient flows back through ``apply`` to ``v``):

- ``salt: int``: seeds its random draws with the run's seed (``np.random.default_rng([seed, salt])``);
- ``draw(steps, rng) -> np.ndarray``: its random parameters for every step at once, leading axis ``steps``
  (drawn before the loop, so two runs with the same seed are identical);
- ``apply(x, drawn) -> x``: TensorFlow ops on the batch, ``drawn`` the row of this step.

**Regulariser**:

- ``weight: float``: handed to ``gradient`` as a float32 tensor (changing it does not retrace the loop);
- ``gradient(v, weight) -> tensor`` of ``v``'s shape: the gradient of its penalty with respect to ``v``, on
  the scale of the unit-RMS activation gradient; the step goes against it, as it would for a loss.

The compiled loop is traced once per list of pieces (told apart by :func:`trace_key`: a piece's class and its
fields other than ``weight``); ``apply`` and ``gradient`` run inside ``tf.function``, so they use TensorFlow ops,
never NumPy on tensors, and never an eager ``GradientTape``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

from xai_fer.lazy import np


class InputModifier(Protocol):
    salt: int

    def draw(self, steps: int, rng) -> np.ndarray: ...

    def apply(self, x, drawn): ...


class Regularizer(Protocol):
    weight: float

    def gradient(self, v, weight): ...


@dataclass(frozen=True)
class Jitter:
    """Roll the whole batch by a random shift of up to ``pixels`` pixels on both axes each step: patterns that
    survive small shifts are less noisy. ``pixels=0`` rolls by zero (the same loop, no shift)."""

    pixels: int = 1
    salt: int = 1

    def draw(self, steps: int, rng) -> np.ndarray:
        if not self.pixels:
            return np.zeros((steps, 2), np.int32)
        return rng.integers(-self.pixels, self.pixels + 1, size=(steps, 2)).astype(np.int32)

    def apply(self, x, drawn):
        from . import backends

        if backends.name() != "tensorflow":  # JAX: jnp.roll takes a traced shift too
            from keras import ops

            return ops.roll(x, drawn, axis=(1, 2))
        import tensorflow as tf

        return tf.roll(x, drawn, axis=[1, 2])


@dataclass(frozen=True)
class TowardGrey:
    """L2 penalty ``weight * sum((v - 0.5)^2)``, gradient ``2 * weight * (v - 0.5)``: pulls pixels toward
    mid-grey."""

    weight: float = 0.05

    def gradient(self, v, weight):
        return 2.0 * weight * (v - 0.5)


@dataclass(frozen=True)
class TotalVariation:
    """Squared-difference total variation ``weight * sum of squared neighbour differences``, gradient
    ``-2 * weight * laplacian(v)``: smooths (mirrored borders)."""

    weight: float = 1.0

    def gradient(self, v, weight):
        return -2.0 * weight * laplacian(v)


def laplacian(v):
    """Discrete Laplacian with mirrored (zero-flux) borders; ``-2 * laplacian`` is the gradient of the
    squared-difference total variation."""
    from . import backends

    if backends.name() != "tensorflow":
        from keras import ops

        p = ops.pad(v, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric")
    else:
        import tensorflow as tf

        p = tf.pad(v, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4.0 * v


def trace_key(piece) -> tuple:
    """What the compiled loop's graph depends on: the piece's class and its fields other than ``weight``
    (a dataclass), else the piece itself (which must then be hashable)."""
    if dataclasses.is_dataclass(piece):
        fields = tuple((f.name, getattr(piece, f.name)) for f in dataclasses.fields(piece) if f.name != "weight")
        return type(piece), fields
    return type(piece), piece
