"""``xai-fer train``: build a registered architecture, fit it with the chosen protocol, keep the best
validation-loss weights, and write the model, history, curves and test metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__, atomic, registry
from ..data import MIXED_TEST, SPLITS, Dataset
from ..errors import UserError, reason
from ..evaluation import evaluate_arrays
from ..options import build_options
from .augmentation import build_augmentation
from .averaging import WeightAverage, average_if_better, averaging_epochs, weights_from
from .checkpoints import CheckpointStore
from .config import AFTER_TRAINING, TrainConfig
from .data import split_for_training
from .devices import configure_cpu_devices
from .distillation import check_same_teachers, distillation_targets, teacher_record
from .distillation import resolved as resolved_teachers
from .initialisation import chain_history, check_init_from, copy_into, load_donor
from .recalibration import recalibrate_if_better
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


def build_training_model(plugin, input_shape, num_classes: int, options, config: TrainConfig, steps_per_epoch: int):
    """(training model, base model): the plugin's architecture behind the augmentation layers, compiled with the
    configured optimizer, schedule and loss; the base model is what gets saved and evaluated."""
    import keras

    base = registry.guarded("models", plugin.name, "build", plugin.build, tuple(input_shape), num_classes, options)
    check_architecture(base, plugin.name, tuple(input_shape), num_classes)
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


def _distribution_strategy(strategy: str | None):
    """None (Keras' default placement) or a ``tf.distribute`` strategy for ``--strategy``."""
    if strategy in (None, "none", ""):
        return None
    if strategy != "mirrored":
        raise UserError(f"unknown strategy {strategy!r}", "use 'mirrored' or leave it out")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise UserError("--strategy mirrored needs the TensorFlow backend", "unset KERAS_BACKEND")
    configure_cpu_devices()  # XAI_FER_CPU_DEVICES=N: N CPU replicas where there is no GPU
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()


@contextlib.contextmanager
def _seeded(config: TrainConfig, deterministic: bool):
    """Seed Keras (Python, NumPy and backend generators); with ``deterministic`` also make TensorFlow's ops
    deterministic for the duration of the run (a process-wide switch, restored afterwards)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    if not (deterministic and keras.backend.backend() == "tensorflow"):
        yield
        return
    import tensorflow as tf

    try:  # TensorFlow exports only the switch on; the query and the switch off live in its config module
        from tensorflow.python.framework import config as tf_config

        restore = not tf_config.is_op_determinism_enabled() and tf_config.disable_op_determinism
    except (ImportError, AttributeError):
        restore = None
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if restore:
            restore()


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
    callbacks: list | None = None,
    finish: bool = False,
    init_from: Path | None = None,
    after_training: dict | None = None,
) -> TrainResult:
    """Train ``model_name`` on ``dataset`` into ``out_dir`` (or continue the run there with ``resume``).

    ``callbacks`` are extra Keras callbacks, called after the checkpointing and progress ones. ``finish``
    (implies ``resume``) trains no further: it writes the model, curves and metrics from the best checkpoint
    so far, and ``metrics.json`` records how many of the planned epochs ran. ``init_from`` starts a new run
    from the weights of a saved model of the same architecture (fine-tuning, or a second schedule after a first
    one) instead of a random initialisation; see ``initialisation.py``. ``after_training`` changes settings of
    ``AFTER_TRAINING`` (test-time flip, batch-norm recalibration) of a resumed or finished run, whose other
    settings are the ones it started with.
    """
    resume = resume or finish
    if after_training and not resume:
        raise UserError("after_training changes a resumed or finished run", "put the settings in config instead")
    init_from = check_init_from(init_from, resume)
    if not resume and config.teachers:
        config = dataclasses.replace(config, teachers=resolved_teachers(config.teachers))
    changed, resume_commands = None, []
    out_dir = Path(out_dir)
    plugin = registry.lookup("models", model_name)
    store = check_run_folder(out_dir, resume)
    created = not out_dir.exists()
    store.lock()
    try:
        check_run_folder(out_dir, resume)  # again, now that no other process can be starting a run there
        state, finish_command = None, None
        if resume:
            store.clean()
            state = store.read_state()
            if state.get("model", model_name) != model_name:
                raise UserError(f"{out_dir} holds a run of {state['model']!r}, not {model_name!r}",
                                f"resume it as `xai-fer train {state['model']} --resume ...`")
            # The run continues with the settings it started with, except those that act after the last epoch
            # (``after_training``): the trained weights do not depend on them. What changed is recorded.
            requested = _after_training(after_training)
            before = build_options(TrainConfig, state["config"], "train")
            # Only real changes, added to those of earlier resumes (kept in state.json), so the record and the
            # commands reproduce the run.
            changed = {**(state.get("changed_after_training") or {}),
                       **{key: value for key, value in requested.items() if getattr(before, key) != value}}
            config = build_options(TrainConfig, {**state["config"], **requested}, "train")
            model_options = state["model_options"]
            finish_command = command if finish else None
            resume_commands = [*(state.get("resume_commands") or []), *([] if finish or not command else [command])]
            command = state.get("command") or command
        options = build_options(plugin.Options, dict(model_options or {}), model_name)
        distribution = _distribution_strategy(strategy)  # first: it may split the CPU before TensorFlow starts
        with _seeded(config, deterministic):
            return _train(plugin, model_name, dataset, out_dir, store, state, config, options, distribution,
                          progress, command, list(callbacks or []), finish, finish_command, init_from, changed,
                          resume_commands)
    except BaseException as exc:
        # A new run that stops before its first checkpoint (a refused --init-from model, Ctrl-C in the first
        # epoch) has nothing worth keeping: leave no folder behind that would block the next attempt.
        if created and not store.exists():
            shutil.rmtree(out_dir, ignore_errors=True)
        error = atomic.write_error(exc, out_dir, _write_hint(exc, store)) if isinstance(exc, OSError) else None
        if error is not None:  # a full disk, a file size limit, a read-only place: the user's, in one line
            raise error from None
        raise
    finally:
        store.unlock()


def _write_hint(exc: OSError, store: CheckpointStore) -> str | None:
    """What to do when the disk refused a write: the run continues from its last checkpoint, if it has one."""
    if not store.exists():
        return None
    fix = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some of your quota",
           errno.EFBIG: "raise the file size limit (ulimit -f)"}.get(exc.errno, "make it writable")
    return f"{fix}, then continue from the last checkpoint with --resume"


def data_fingerprint(source, x_train, y_train, x_val, y_val) -> dict:
    """What identifies the images a run trains and validates on: their counts and a sha256 of the pixels and
    labels. Test splits are left out: a run trained where PrivateTest did not travel (a GPU machine) is
    finished here on the whole dataset."""
    digest = hashlib.sha256()
    for array in (x_train, y_train, x_val, y_val):
        digest.update(np.ascontiguousarray(array).tobytes())
    return {"source": str(source), "train_images": int(len(x_train)), "validation_images": int(len(x_val)),
            "sha256": digest.hexdigest()}


def _check_same_data(recorded: dict | None, data: dict, out_dir: Path) -> None:
    """A resumed or finished run must train and validate on the images it started with: others would mix two
    datasets in one run and overwrite its results with another dataset's numbers."""
    if recorded and recorded.get("sha256") != data["sha256"]:
        raise UserError(f"{out_dir} was trained on other images ({recorded.get('source')}: "
                        f"{recorded.get('train_images')} training, {recorded.get('validation_images')} validation), "
                        f"not those of {data['source']} ({data['train_images']}, {data['validation_images']})",
                        "resume or finish it with the --data it started with")


def check_run_folder(out_dir: Path, resume: bool) -> CheckpointStore:
    """Refuse an ``--out`` that cannot take this run (cheap: the CLI calls it before reading the data)."""
    out_dir = Path(out_dir)
    atomic.check_path_length(out_dir)  # first: a name too long cannot even be looked up
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a directory", "pick another --out")
    store = CheckpointStore(out_dir)
    if resume and not store.exists():
        raise UserError(f"no interrupted run in {out_dir} (no checkpoints/state.json) to resume or finish",
                        "start the run without --resume / --finish, or point --out at the run's folder")
    if not resume and (store.exists() or (out_dir / "model.keras").exists()):
        raise UserError(f"{out_dir} already holds a training run", "pass --resume to continue it or pick a new --out")
    # Before the data is read and the epochs run: a read-only, immutable or special place fails now, in one line.
    atomic.check_writable(store.dir if store.dir.is_dir() else out_dir)
    return store


def _train(plugin, model_name, dataset, out_dir, store, state, config, options, strategy, progress, command,
           extra_callbacks, finish=False, finish_command=None, init_from=None, changed=None, resume_commands=()):
    import keras

    from .progress import TrainingProgress

    x_train, y_train, x_val, y_val = split_for_training(dataset, config)
    data = data_fingerprint(dataset.source, x_train, y_train, x_val, y_val)
    if state is not None:
        _check_same_data(state.get("data"), data, out_dir)
    num_classes = dataset.num_classes
    steps_per_epoch = int(np.ceil(len(x_train) / config.batch_size))
    out_dir.mkdir(parents=True, exist_ok=True)
    donor = load_donor(init_from) if init_from is not None else None  # outside the scope: not one per replica
    targets, distillation = None, state.get("distillation") if state is not None else None
    if config.teachers and not finish and (state is None or state["epoch"] < config.epochs):
        teachers = teacher_record(config.teachers)
        if state is not None:
            check_same_teachers((distillation or {}).get("teachers"), teachers, out_dir)
        targets, summary = distillation_targets(config.teachers, x_train, y_train, dataset.class_names,
                                                config.teacher_weight, dataset.source)
        distillation = {"teachers": teachers, **summary}

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if state is not None:
            history, initial_epoch = state["history"], state["epoch"]
            # Finishing needs only the best weights and the history: the training checkpoint (optimizer state
            # included) may be left behind, e.g. when a run is fetched from another machine.
            train_model = base = None
            if not finish and initial_epoch < config.epochs:
                if not state.get("checkpoint"):
                    raise UserError(f"{store.state_path} names no training checkpoint to resume from",
                                    "stop the run where it is with --finish, or start a new run")
                train_model = _load_checkpoint(store.member(state["checkpoint"], "the training checkpoint"),
                                               "the training checkpoint",
                                               "copy it back, or stop the run where it is with --finish",
                                               compile=True)
                compile_under_jax(train_model)
                base = train_model.layers[-1]
        else:
            train_model, base = build_training_model(plugin, x_train.shape[1:], num_classes, options, config,
                                                     steps_per_epoch)
            history, initial_epoch = {}, 0
            if donor is not None:
                copy_into(donor, base)
    initialisation = state.get("initialisation") if state is not None else (donor.record if donor else None)
    average = store.read_average() if state is not None else WeightAverage()
    averaged_epochs = averaging_epochs(config)

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                history.setdefault(key, []).append(float(value))
            history.setdefault("seconds", []).append(time.perf_counter() - self.started)
            if epoch + 1 in averaged_epochs:
                average.add(base.get_weights(), epoch + 1)
            store.save(train_model, base, epoch + 1, history, config.as_dict(),
                       {"model": model_name, "model_options": dataclasses.asdict(options), "command": command,
                        "resume_commands": list(resume_commands), "changed_after_training": changed or None,
                        "data": data, "distillation": distillation,
                        "environment": environment, "initialisation": initialisation},
                       average=average)

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

    environment = _environment(strategy)
    display = TrainingProgress(config.epochs, steps_per_epoch) if progress else None
    callbacks = [Checkpoint(), *([display] if display is not None else []), *extra_callbacks]
    y_train_1h = keras.utils.to_categorical(y_train, num_classes) if targets is None else targets
    y_val_1h = keras.utils.to_categorical(y_val, num_classes)
    if initial_epoch < config.epochs and not finish:
        try:
            train_model.fit(
                x_train, y_train_1h, validation_data=(x_val, y_val_1h), batch_size=config.batch_size,
                epochs=config.epochs, initial_epoch=initial_epoch, shuffle=True, callbacks=callbacks, verbose=0,
            )
        finally:  # Keras skips on_train_end when fit raises (Ctrl-C included): never leave the live display on
            if display is not None:
                display.progress.stop()
    final_state = store.read_state()
    if final_state.get("best_epoch") is None:
        raise UserError(f"the validation loss was never finite in {len(history.get('loss', []))} epoch(s)",
                        f"training diverged: lower --set learning_rate=... or check the data, then start again in "
                        f"a new --out (or delete {out_dir})")
    best = _load_checkpoint(store.best_path, "the best epoch's model",
                            f"copy the run's checkpoints/{store.best_path.name} next to its state.json")
    recalibration = None
    if config.recalibrate_batch_norm:
        recalibration = recalibrate_if_better(best, x_train, x_val, y_val, config.label_smoothing, seed=config.seed)
    averaging = None
    if config.average_last_epochs:  # after the recalibration: the average must beat the best model as shipped
        best, averaging = average_if_better(
            best, average, x_train, x_val, y_val, config.label_smoothing, seed=config.seed,
            load_copy=lambda: keras.saving.load_model(store.best_path, compile=False))
    model_path = out_dir / "model.keras"
    metrics = {
        "model": model_name,
        "model_plugin": registry.provenance("models", model_name),  # which package's architecture
        "parameters": int(best.count_params()),
        "best_epoch": final_state["best_epoch"],
        "epochs": len(history.get("loss", [])),
        "planned_epochs": config.epochs,
        "config": config.as_dict(),
        "model_options": dataclasses.asdict(options),
        "validation": _metrics_block(best, x_val, y_val, dataset.class_names, config.tta_flip),
        "splits": {},
        "batch_norm_recalibration": recalibration,
        "weight_averaging": averaging,  # when kept, model.keras holds the average, not the best epoch's weights
        "weights_from": None,
        "command": command,
        "resume_commands": list(resume_commands) or None,  # each --resume that trained further, in order
        "data": data,  # what it was trained and evaluated on; --resume and --finish refuse other data
        "finish_command": finish_command,
        "changed_after_training": changed or None,  # settings a --resume / --finish changed (AFTER_TRAINING)
        "initialisation": initialisation,
        "distillation": distillation,  # the teachers and what they scored on the training images
        # Where the epochs ran: a run trained on a GPU machine and finished here keeps the GPU's environment.
        "environment": final_state.get("environment", environment) if finish else environment,
        "finish_environment": environment if finish else None,
    }
    metrics["splits_note"] = _splits_note(dataset)
    if dataset.usage is not None:
        for code, split in enumerate(SPLITS[1:], start=1):
            rows = dataset.usage == code
            if rows.any():
                metrics["splits"][split] = _metrics_block(
                    best, dataset.images[rows].astype(np.float32), dataset.labels[rows], dataset.class_names,
                    config.tta_flip,
                )
    metrics["weights_from"] = weights_from(metrics)
    # Everything slow is done: the model and its record are written back to back, metrics.json last, so an
    # interruption cannot leave a new model.keras beside no (or an older) metrics.json.
    atomic.save_keras(best, model_path)
    write_history(out_dir, history)
    write_curves(out_dir / "training_curves.png", history, title=f"{model_name} on {Path(dataset.source).name}",
                 earlier=chain_history(initialisation))
    atomic.write_json(out_dir / "metrics.json", metrics)
    return TrainResult(model_path=model_path, metrics=metrics, epochs_run=metrics["epochs"])


def _splits_note(dataset: Dataset) -> str | None:
    """Why ``splits`` (test metrics) is empty, when it is; None when the source has test rows."""
    if dataset.usage is None:
        return (f"{dataset.source} has no Usage column or split folders, so every image trained or validated and "
                "none was held out for testing: evaluate the model on a test source with `xai-fer evaluate`")
    if any((dataset.usage == code).any() for code in range(1, len(SPLITS))):
        return None
    if (dataset.usage == MIXED_TEST).any():
        return (f"{dataset.source}'s test images are PublicTest and PrivateTest together (the test/ folder of "
                "Kaggle's image copy), so neither split is scored here: evaluate the model on that folder with "
                "`xai-fer evaluate MODEL --data ROOT/test`")
    return (f"{dataset.source} holds only {SPLITS[0]} rows (no {', '.join(SPLITS[1:])}): evaluate the model "
            "on a test source with `xai-fer evaluate`")


def _load_checkpoint(path: Path, what: str, hint: str, compile: bool = False):
    import keras

    from ..models.loading import check_model_file

    if not path.is_file():
        raise UserError(f"{path} ({what}) is missing", hint)
    try:  # a run's files are untrusted input: sizes and HDF5 links first, as for any model
        check_model_file(path)
    except UserError as exc:
        why = exc.message.removeprefix(str(path)).lstrip(": ").removeprefix("is ")
        raise UserError(f"{path} ({what}) cannot be read: {why}", hint) from None
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:  # a truncated or foreign file: Keras' message runs over many lines
        raise UserError(f"{path} ({what}) cannot be read: {type(exc).__name__}: {reason(exc)[:200]}", hint) from exc


def _after_training(settings: dict | None) -> dict:
    others = sorted(set(settings or {}) - set(AFTER_TRAINING))
    if others:
        raise UserError(f"a resumed run keeps its setting(s) {', '.join(others)}",
                        f"only {', '.join(AFTER_TRAINING)} may change; start a new run for the others")
    return dict(settings or {})


def _environment(strategy) -> dict:
    import keras

    return {"xai_fer": __version__, "keras": keras.__version__, "backend": keras.backend.backend(),
            "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "accelerators": _accelerators(),
            "strategy": type(strategy).__name__ if strategy is not None else None,
            "replicas": int(strategy.num_replicas_in_sync) if strategy is not None else 1}


def _accelerators() -> list[str]:
    """The GPUs the backend trains on (empty on a CPU), e.g. ``['NVIDIA H100 80GB HBM3']`` under JAX."""
    import keras

    try:
        if keras.backend.backend() == "jax":
            import jax

            return [d.device_kind for d in jax.devices() if d.platform != "cpu"]
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_logical_devices("GPU")]
    except Exception:  # noqa: BLE001 - a description of the machine must never fail a finished run
        return []
    return []


def _metrics_block(model, x, y, class_names, tta_flip: bool) -> dict:
    block = {"plain": evaluate_arrays(model, x, y, class_names, tta_flip=False)}
    if tta_flip:
        block["tta_flip"] = evaluate_arrays(model, x, y, class_names, tta_flip=True)
    return block
