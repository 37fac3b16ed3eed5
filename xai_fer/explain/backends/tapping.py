"""Reading (and, for JAX, perturbing) one layer's output while a model is traced: Grad-CAM's access to a conv
layer deep inside nested models, without rebuilding any graph."""

from __future__ import annotations


class tapped:  # noqa: N801 - used as a context manager, reads as a phrase
    """While the model is called inside the block, every output of ``layer`` goes through ``on_output(out)``,
    and what that returns is what the rest of the model sees. The layer's own ``call`` is restored afterwards."""

    def __init__(self, layer, on_output):
        self.layer, self.on_output = layer, on_output

    def __enter__(self):
        original = self.layer.call
        self.had_own = "call" in vars(self.layer)
        self.original = original
        on_output = self.on_output

        def call(*args, **kwargs):
            return on_output(original(*args, **kwargs))

        object.__setattr__(self.layer, "call", call)  # around Keras' attribute tracking
        return self

    def __exit__(self, *exc):
        if self.had_own:
            object.__setattr__(self.layer, "call", self.original)
        else:
            object.__delattr__(self.layer, "call")
        return False


def only_output(captured: list, layer_path: str):
    """The one output the layer gave in a forward pass; a ValueError when it was called more or less often."""
    if len(captured) != 1:
        raise ValueError(f"layer {layer_path!r} is called {len(captured)} times in one forward pass: "
                         "pick a layer used once")
    return captured[0]
