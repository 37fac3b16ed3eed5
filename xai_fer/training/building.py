"""The network ``xai-fer train`` fits: a model plugin's architecture, checked for what training relies on, behind
the augmentation layers and compiled with the configured optimizer, schedule and loss."""

from __future__ import annotations

from .. import registry
from ..errors import UserError
from .augmentation import build_augmentation
from .config import TrainConfig

# Weights a trained network may have: 16 bytes each in training (weights, gradients, Adam's two moments), so about
# 7.5 GiB at the ceiling; the study's networks have under a million.
MAX_PARAMETERS = 500_000_000


def _optimizer(config: TrainConfig, steps_per_epoch: int):
    import keras

    lr = config.learning_rate
    if config.schedule == "cosine":
        warmup = config.warmup_epochs * steps_per_epoch
        total = config.epochs * steps_per_epoch
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else config.learning_rate,
            decay_steps=max(1, total - warmup),
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if config.weight_decay > 0:
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(learning_rate=lr)


def build_training_model(plugin, input_shape, num_classes: int, options, config: TrainConfig, steps_per_epoch: int):
    """(training model, base model): the plugin's architecture behind the augmentation layers, compiled with the
    configured optimizer, schedule and loss; the base model is what gets saved and evaluated."""
    import keras

    base = _build(plugin, tuple(input_shape), num_classes, options)
    check_architecture(base, plugin.name, tuple(input_shape), num_classes)
    _check_parameters(base, plugin.name, options)
    augmentation = build_augmentation(config)
    layers = [keras.Input(tuple(input_shape)), *([augmentation] if augmentation is not None else []), base]
    train_model = keras.Sequential(layers, name="training")
    train_model.compile(
        optimizer=_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
        steps_per_execution=config.steps_per_execution,
    )
    compile_under_jax(train_model)
    return train_model, base


def _build(plugin, input_shape: tuple, num_classes: int, options):
    """The plugin's network. Running out of memory while building it is the options asking too much (a width
    of a billion units), said as such; any other failure is the plugin's (see ``registry.guarded``)."""
    try:
        return plugin.build(input_shape, num_classes, options)
    except UserError:
        raise
    except Exception as exc:
        if not out_of_memory(exc):
            raise registry.plugin_failure("models", plugin.name, "build", exc) from exc
        raise UserError(f"model {plugin.name!r} with {_options_text(options)} needs more memory than this machine "
                        f"has ({type(exc).__name__})", "choose smaller architecture options (--option), or train "
                        "on a machine with more memory") from None


def _check_parameters(base, name: str, options) -> None:
    """A network that did build but whose weights, gradients and optimizer state would not fit in training."""
    count = base.count_params()
    if count > MAX_PARAMETERS:
        raise UserError(f"model {name!r} with {_options_text(options)} has {count:,} parameters, more than "
                        f"{MAX_PARAMETERS:,} (training would need about {count * 16 / 2**30:.0f} GiB)",
                        "choose smaller architecture options (--option)")


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is running out of (host or accelerator) memory, under any backend."""
    if isinstance(exc, MemoryError):
        return True
    text = f"{type(exc).__name__} {str(exc)[:2000]}"
    return any(mark in text for mark in ("ResourceExhausted", "RESOURCE_EXHAUSTED", "out of memory", "OOM when"))


def _options_text(options) -> str:
    """The options that differ from their defaults, 'name=value, ...' (each shortened), or 'its default options'."""
    import dataclasses

    if not dataclasses.is_dataclass(options):
        return "its options"
    default = type(options)()
    changed = [f"{field.name}={getattr(options, field.name)!s:.60}" for field in dataclasses.fields(options)
               if getattr(options, field.name) != getattr(default, field.name)]
    return ", ".join(changed) if changed else "its default options"


def check_architecture(base, name: str, input_shape: tuple, num_classes: int) -> None:
    """What ``xai-fer train`` relies on in a model plugin's network, refused in one line naming the plugin: a
    Keras model for the asked input shape, ending in a softmax over the classes (the loss fits probabilities)
    and scaling its own 0-255 input (what it is trained on, and what ``explain`` then feeds it)."""
    import keras

    from ..models.introspect import inspect_model

    where = f"model plugin {name!r}"
    if not isinstance(base, keras.Model):
        raise UserError(f"{where}: build() returned {type(base).__name__}, not a keras.Model",
                        registry.BROKEN_PLUGIN_HINT)
    if not base.built:  # a Sequential without an Input, as training will build it behind its own Input
        base.build((None, *input_shape))
    info = inspect_model(base)
    if info.input_shape != tuple(input_shape) or info.num_classes != num_classes:
        raise UserError(f"{where}: build() made a network from {info.input_shape} to {info.num_classes} classes "
                        f"when asked for {tuple(input_shape)} to {num_classes}",
                        "build for the input_shape and num_classes given; " + registry.BROKEN_PLUGIN_HINT)
    if info.output_activation != "softmax":
        raise UserError(f"{where}: the network ends in {info.output_activation}, not a softmax, and training fits "
                        "class probabilities", "end build() with a softmax, e.g. Dense(num_classes, "
                        "activation='softmax')")
    if not info.scales_its_input:
        raise UserError(f"{where}: the network does not scale its input, and it is trained on 0-255 pixels "
                        "(explain would feed it pixels / 255)", "start build() with keras.layers.Rescaling(1 / 255)")


def compile_under_jax(train_model) -> None:
    """Under JAX, make Keras compile the train step with XLA even though the model holds RandomRotation,
    RandomTranslation or RandomZoom.

    Those layers declare ``supports_jit = False`` because TensorFlow cannot XLA-compile their image transform,
    and Keras then runs the whole JAX train step eagerly, op by op: on an H100 one CNN epoch took over 90 s and a
    run with the affine layers finished no epoch in 8 minutes. JAX compiles these layers without trouble. The
    flag is not saved with a model, so a resumed run calls this again."""
    import keras

    if keras.backend.backend() != "jax":
        return
    for layer in train_model._flatten_layers():
        layer.supports_jit = True
    train_model.jit_compile = True
