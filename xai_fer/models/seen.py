"""A model seen from a dataset's images: the input adapter (size, channels, and the scaling ``--preprocess``
asks for or ``auto`` measures) between the data and any loaded model. Evaluating a model, asking distillation's
teachers and explaining all start here, so they see a model the same way."""

from __future__ import annotations

import warnings

from ..errors import UserError, reason
from .adapt import InputAdapter, resolve_scaling
from .introspect import inspect_model, make_scope_safe
from .scaling_choice import ScalingWarning, choose_scaling


def seen_from_data(model, dataset, preprocess: str = "auto", seed: int = 0, batch_size: int = 128):
    """``model`` seen from ``dataset``'s images: the :class:`~xai_fer.explain.context.ExplainContext` (the model
    behind its input adapter, its class probabilities computed once) with the scaling chosen as
    :func:`~xai_fer.models.scaling_choice.choose_scaling` says; a close call warns (``ScalingWarning``). A
    ``Dataset`` made in Python gets its pixels put on the 0-255 scale, as ``load_dataset`` does
    (``Dataset.put_on_255_scale``)."""
    from ..explain.context import ExplainContext  # where the model seen from the data computes (as in the search)

    dataset.put_on_255_scale()
    # Names legal in Keras that TensorFlow refuses as name scopes ("conv a [1]") would fail every compiled
    # gradient: renamed in memory (the context and the manifest say so), in the API as on the command line.
    renamed = make_scope_safe(model)
    info = inspect_model(model)
    data_shape = tuple(dataset.images.shape[1:])
    adapter = InputAdapter.for_model(resolve_scaling(preprocess, info.scales_its_input), data_shape, info.input_shape)
    if None in info.input_shape and len(dataset):  # before the scaling search, which feeds the model images
        _check_open_size(model, info, adapter, dataset)
    choice, probabilities = choose_scaling(model, info, dataset, preprocess, seed=seed, batch_size=batch_size)
    if choice.warning:
        warnings.warn(choice.warning, ScalingWarning, stacklevel=3)  # where the caller's caller asked for it
    adapter = InputAdapter.for_model(choice.scaling, data_shape, info.input_shape)
    context = ExplainContext(model=model, info=info, dataset=dataset, adapter=adapter, seed=seed,
                             batch_size=batch_size, scaling_choice=choice, renamed=renamed)
    if probabilities is not None:  # the search saw every image with this scaling: no second pass over them
        context.__dict__["probabilities"] = probabilities
    return context


def _check_open_size(model, info, adapter, dataset) -> None:
    """A model of any image size (``(None, None, C)``) still needs images large enough for its convolutions and
    pooling: one image through it says so before any work, in one line."""
    import keras

    try:
        # The shapes every layer computes (no new nodes are added to the model), then one real image.
        model.compute_output_spec(keras.KerasTensor((None, *(adapter.model_input or adapter.model_shape))))
        model(adapter(dataset.images[:1].astype("float32")), training=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types; the user needs the reason
        height, width = adapter.data_shape[:2]
        raise UserError(f"model {info.name!r} cannot take the data's {height}x{width} images: {type(exc).__name__}: "
                        f"{reason(exc)}", "use larger images, or the size the model was trained on") from None
