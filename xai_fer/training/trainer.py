"""``xai-fer train``: build a registered architecture, fit it with the chosen protocol, keep the best
validation-loss weights, and write the model, history, curves and test metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__, atomic, registry
from ..data import SPLITS, Dataset
from ..errors import UserError
from ..evaluation import evaluate_arrays
from ..options import build_options
from .augmentation import build_augmentation
from .checkpoints import CheckpointStore
from .config import TrainConfig
from .data import split_for_training
from .report import write_curves, write_history


@dataclass
class TrainResult:
    model_path: Path
    metrics: dict
    epochs_run: int


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


def _distribution_scope(strategy: str | None):
    if strategy in (None, "none", ""):
        return contextlib.nullcontext()
    if strategy != "mirrored":
        raise UserError(f"unknown strategy {strategy!r}", "use 'mirrored' or leave it out")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise UserError("--strategy mirrored needs the TensorFlow backend", "unset KERAS_BACKEND")
    import tensorflow as tf

    return tf.distribute.MirroredStrategy().scope()


def _seed_everything(config: TrainConfig, deterministic: bool) -> None:
    import keras

    keras.utils.set_random_seed(config.seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def train(
    model_name: str,
    dataset: Dataset,
    out_dir: Path,
    config: TrainConfig,
    model_options: dict | None = None,
    resume: bool = False,
    strategy: str | None = None,
    deterministic: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> TrainResult:
    import keras

    from .progress import TrainingProgress

    out_dir = Path(out_dir)
    store = CheckpointStore(out_dir)
    plugin = registry.lookup("models", model_name)
    state = None
    if resume:
        if not store.exists():
            raise UserError(f"nothing to resume in {out_dir}", "run without --resume first")
        state = store.read_state()
        config = TrainConfig(**state["config"])
        model_options = state["model_options"]
    elif store.exists() or (out_dir / "model.keras").exists():
        raise UserError(f"{out_dir} already holds a training run", "pass --resume to continue it or pick a new --out")
    options = build_options(plugin.Options, dict(model_options or {}), model_name)
    _seed_everything(config, deterministic)
    x_train, y_train, x_val, y_val = split_for_training(dataset, config)
    num_classes = dataset.num_classes
    steps_per_epoch = int(np.ceil(len(x_train) / config.batch_size))
    out_dir.mkdir(parents=True, exist_ok=True)

    with _distribution_scope(strategy):
        if state is not None:
            train_model = keras.saving.load_model(store.dir / state["checkpoint"], compile=True)
            base = train_model.layers[-1]
            history = state["history"]
            initial_epoch = state["epoch"]
        else:
            base = plugin.build(x_train.shape[1:], num_classes, options)
            train_model = keras.Sequential([keras.Input(x_train.shape[1:]), build_augmentation(config), base],
                                           name="training")
            train_model.compile(
                optimizer=_optimizer(config, steps_per_epoch),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                metrics=["accuracy"],
            )
            history, initial_epoch = {}, 0

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                history.setdefault(key, []).append(float(value))
            history.setdefault("seconds", []).append(time.perf_counter() - self.started)
            store.save(train_model, base, epoch + 1, history, config.as_dict(),
                       {"model": model_name, "model_options": dataclasses.asdict(options)})

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

    callbacks = [Checkpoint()]
    if progress:
        callbacks.append(TrainingProgress(config.epochs, steps_per_epoch))
    y_train_1h = keras.utils.to_categorical(y_train, num_classes)
    y_val_1h = keras.utils.to_categorical(y_val, num_classes)
    if initial_epoch < config.epochs:
        train_model.fit(
            x_train, y_train_1h, validation_data=(x_val, y_val_1h), batch_size=config.batch_size,
            epochs=config.epochs, initial_epoch=initial_epoch, shuffle=True, callbacks=callbacks, verbose=0,
        )
    best = keras.saving.load_model(store.best_path, compile=False)
    model_path = out_dir / "model.keras"
    atomic.save_keras(best, model_path)

    metrics = {
        "model": model_name,
        "parameters": int(best.count_params()),
        "best_epoch": store.read_state()["best_epoch"],
        "epochs": len(history.get("loss", [])),
        "config": config.as_dict(),
        "model_options": dataclasses.asdict(options),
        "validation": _metrics_block(best, x_val, y_val, dataset.class_names, config.tta_flip),
        "splits": {},
        "command": command,
        "environment": {"xai_fer": __version__, "keras": keras.__version__, "backend": keras.backend.backend(),
                        "python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count()},
    }
    if dataset.usage is not None:
        for code, split in enumerate(SPLITS[1:], start=1):
            rows = dataset.usage == code
            if rows.any():
                metrics["splits"][split] = _metrics_block(
                    best, dataset.images[rows].astype(np.float32), dataset.labels[rows], dataset.class_names,
                    config.tta_flip,
                )
    write_history(out_dir, history)
    write_curves(out_dir / "training_curves.png", history, title=f"{model_name} on {Path(dataset.source).name}")
    atomic.write_json(out_dir / "metrics.json", metrics)
    return TrainResult(model_path=model_path, metrics=metrics, epochs_run=metrics["epochs"])


def _metrics_block(model, x, y, class_names, tta_flip: bool) -> dict:
    block = {"plain": evaluate_arrays(model, x, y, class_names, tta_flip=False)}
    if tta_flip:
        block["tta_flip"] = evaluate_arrays(model, x, y, class_names, tta_flip=True)
    return block
