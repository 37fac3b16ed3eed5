"""The hooks a plugin implements. Each hook receives a ``register`` callback and calls it once per thing it adds."""

from collections.abc import Callable

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("xai_fer")
hookimpl = HookimplMarker("xai_fer")


@hookspec
def register_models(register: Callable[[object], None]) -> None:
    """Register model architectures: objects with ``name``, ``description``, an ``Options`` dataclass and
    ``build(input_shape, num_classes, options) -> keras.Model`` (``xai_fer_plugins/cnn.py`` is one)."""


@hookspec
def register_explainers(register: Callable[[object], None]) -> None:
    """Register explainers: objects with ``name``, ``description``, an ``Options`` dataclass and
    ``explain(context, options) -> Artifact`` (see :class:`xai_fer.explain.base.Explainer`)."""


@hookspec
def register_datasets(register: Callable[[object], None]) -> None:
    """Register dataset formats: objects with ``name``, ``description``, ``detect(path) -> bool`` and
    ``load(path) -> Dataset`` (see :class:`xai_fer.data.DatasetFormat`); ``--split`` is applied afterwards."""
