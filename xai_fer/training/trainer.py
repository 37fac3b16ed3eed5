"""``xai-fer train``: build a registered architecture, fit it with the chosen protocol, keep the best
validation-loss weights, and write the model, history, curves and test metrics.

:func:`train` resolves its arguments (and, for ``--resume`` and ``--finish``, the run's ``state.json``) into a
:class:`TrainRun`; :func:`_train` then runs the steps on it: the training data, the models, the epochs, the best
model, and the files of a finished run."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import atomic, registry
from ..data import Dataset
from ..errors import UserError
from ..options import build_options
from .averaging import WeightAverage, average_if_better, averaging_epochs, weights_from
from .building import build_training_model, compile_under_jax
from .checkpoints import CheckpointStore, check_run_folder, load_checkpoint
from .config import AFTER_TRAINING, TrainConfig
from .data import split_for_training
from .devices import distribution_strategy, seeded
from .distillation import check_same_teachers, distillation_targets, teacher_record
from .distillation import resolved as resolved_teachers
from .initialisation import chain_history, check_init_from, copy_into, load_donor
from .recalibration import recalibrate_if_better
from .record import check_same_data, data_fingerprint, environment, metrics_block, split_metrics, splits_note
from .report import write_curves, write_history


@dataclass
class TrainResult:
    model_path: Path
    metrics: dict
    epochs_run: int


@dataclass
class TrainRun:
    """One training run, as the steps read it: what :func:`train` resolved from its arguments and, for a
    resumed or finished run, from the run's ``state.json``."""

    plugin: object  # the registered architecture
    model_name: str
    dataset: Dataset
    out_dir: Path
    store: CheckpointStore
    config: TrainConfig
    options: object  # the architecture's Options, parsed
    strategy: object = None  # a tf.distribute strategy, or None for Keras' default placement
    progress: bool = True
    command: str | None = None  # the command that started the run
    callbacks: list = field(default_factory=list)  # extra Keras callbacks, after the checkpointing and progress ones
    state: dict | None = None  # the interrupted run's state (--resume, --finish); None for a new run
    finish: bool = False
    finish_command: str | None = None
    init_from: Path | None = None
    changed: dict | None = None  # settings --resume / --finish changed (AFTER_TRAINING), over all resumes
    resume_commands: list = field(default_factory=list)  # each --resume that trained further, in order


@dataclass
class TrainingData:
    """The images a run trains and validates on, and the targets it fits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    fingerprint: dict  # what --resume and --finish check the data against (record.data_fingerprint)
    steps_per_epoch: int
    targets: np.ndarray | None = None  # distillation's mixed targets; None: the one-hot labels
    distillation: dict | None = None  # the teachers and what they scored on the training images


@dataclass
class Fitting:
    """The models being trained and what the epochs record as they run."""

    train_model: object  # None when a finished run only needs its best checkpoint
    base: object  # the architecture inside the training model: what is saved and evaluated
    history: dict
    initial_epoch: int
    initialisation: dict | None  # where --init-from weights came from (initialisation.py)
    average: WeightAverage


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
    out_dir = Path(out_dir)
    plugin = registry.lookup("models", model_name)
    store = check_run_folder(out_dir, resume)
    created = not out_dir.exists()
    store.lock()
    try:
        check_run_folder(out_dir, resume)  # again, now that no other process can be starting a run there
        settings = {"config": config, "model_options": model_options, "command": command}
        if resume:
            settings = _continued(store, out_dir, model_name, after_training, command, finish)
        options = build_options(plugin.Options, dict(settings.pop("model_options") or {}), model_name)
        distribution = distribution_strategy(strategy)  # first: it may split the CPU before TensorFlow starts
        run = TrainRun(plugin=plugin, model_name=model_name, dataset=dataset, out_dir=out_dir, store=store,
                       options=options, strategy=distribution, progress=progress, callbacks=list(callbacks or []),
                       finish=finish, init_from=init_from, **settings)
        with seeded(run.config, deterministic):
            return _train(run)
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


def _continued(store: CheckpointStore, out_dir: Path, model_name: str, after_training: dict | None,
               command: str | None, finish: bool) -> dict:
    """The :class:`TrainRun` settings of a resumed or finished run: it continues with the settings it started
    with, except those that act after the last epoch (``after_training``): the trained weights do not depend on
    them. What changed is recorded."""
    store.clean()
    state = store.read_state()
    if state["model"] != model_name:
        raise UserError(f"{out_dir} holds a run of {state['model']!r}, not {model_name!r}",
                        f"resume it as `xai-fer train {state['model']} --resume ...`")
    requested = _after_training(after_training)
    before = build_options(TrainConfig, state["config"], "train")
    # Only real changes, added to those of earlier resumes (kept in state.json), so the record and the commands
    # reproduce the run.
    changed = {**(state.get("changed_after_training") or {}),
               **{key: value for key, value in requested.items() if getattr(before, key) != value}}
    return {"state": state, "config": build_options(TrainConfig, {**state["config"], **requested}, "train"),
            "model_options": state["model_options"], "changed": changed,
            "finish_command": command if finish else None,
            "resume_commands": [*(state.get("resume_commands") or []), *([] if finish or not command else [command])],
            "command": state.get("command") or command}


def _write_hint(exc: OSError, store: CheckpointStore) -> str | None:
    """What to do when the disk refused a write: the run continues from its last checkpoint, if it has one."""
    if not store.exists():
        return None
    fix = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some of your quota",
           errno.EFBIG: "raise the file size limit (ulimit -f)"}.get(exc.errno, "make it writable")
    return f"{fix}, then continue from the last checkpoint with --resume"


def _train(run: TrainRun) -> TrainResult:
    data = _training_data(run)
    run.out_dir.mkdir(parents=True, exist_ok=True)
    donor = load_donor(run.init_from) if run.init_from is not None else None  # outside the scope: not one per replica
    _distil(run, data)
    fitting = _models(run, data, donor)
    machine = environment(run.strategy)
    _fit(run, data, fitting, machine)
    best, final_state, after = _best_model(run, data, fitting)
    metrics = _metrics(run, data, fitting, best, final_state, after, machine)
    # Everything slow is done: the model and its record are written back to back, metrics.json last, so an
    # interruption cannot leave a new model.keras beside no (or an older) metrics.json.
    model_path = run.out_dir / "model.keras"
    atomic.save_keras(best, model_path)
    write_history(run.out_dir, fitting.history)
    write_curves(run.out_dir / "training_curves.png", fitting.history,
                 title=f"{run.model_name} on {Path(run.dataset.source).name}",
                 earlier=chain_history(fitting.initialisation))
    atomic.write_json(run.out_dir / "metrics.json", metrics)
    return TrainResult(model_path=model_path, metrics=metrics, epochs_run=metrics["epochs"])


def _training_data(run: TrainRun) -> TrainingData:
    x_train, y_train, x_val, y_val = split_for_training(run.dataset, run.config)
    fingerprint = data_fingerprint(run.dataset.source, x_train, y_train, x_val, y_val)
    if run.state is not None:
        check_same_data(run.state.get("data"), fingerprint, run.out_dir)
    return TrainingData(x_train, y_train, x_val, y_val, fingerprint,
                        steps_per_epoch=int(np.ceil(len(x_train) / run.config.batch_size)),
                        distillation=run.state.get("distillation") if run.state is not None else None)


def _distil(run: TrainRun, data: TrainingData) -> None:
    """The teachers' mixed targets (``--set teachers=...``), for a run that still has epochs to train."""
    config, state = run.config, run.state
    if not config.teachers or run.finish or (state is not None and state["epoch"] >= config.epochs):
        return
    teachers = teacher_record(config.teachers)
    if state is not None:
        check_same_teachers((data.distillation or {}).get("teachers"), teachers, run.out_dir)
    data.targets, summary = distillation_targets(config.teachers, data.x_train, data.y_train,
                                                 run.dataset.class_names, config.teacher_weight, run.dataset.source)
    data.distillation = {"teachers": teachers, **summary}


def _models(run: TrainRun, data: TrainingData, donor) -> Fitting:
    """A new run's freshly built (or ``--init-from``) models, or a resumed run's training checkpoint."""
    state = run.state
    with run.strategy.scope() if run.strategy is not None else contextlib.nullcontext():
        if state is None:
            train_model, base = build_training_model(run.plugin, data.x_train.shape[1:], run.dataset.num_classes,
                                                     run.options, run.config, data.steps_per_epoch)
            if donor is not None:
                copy_into(donor, base)
            return Fitting(train_model, base, {}, 0, donor.record if donor else None, WeightAverage())
        # Finishing needs only the best weights and the history: the training checkpoint (optimizer state
        # included) may be left behind, e.g. when a run is fetched from another machine.
        train_model = base = None
        if not run.finish and state["epoch"] < run.config.epochs:
            train_model = _training_checkpoint(run)
            base = train_model.layers[-1]
    return Fitting(train_model, base, state["history"], state["epoch"], state.get("initialisation"),
                   run.store.read_average())


def _training_checkpoint(run: TrainRun):
    if not run.state.get("checkpoint"):
        raise UserError(f"{run.store.state_path} names no training checkpoint to resume from",
                        "stop the run where it is with --finish, or start a new run")
    train_model = load_checkpoint(run.store.member(run.state["checkpoint"], "the training checkpoint"),
                                   "the training checkpoint", "copy it back, or stop the run where it is with --finish",
                                   compile=True)
    compile_under_jax(train_model)
    return train_model


def _fit(run: TrainRun, data: TrainingData, fitting: Fitting, machine: dict) -> None:
    """The epochs left to train, each checkpointed as it ends."""
    import keras

    from .progress import TrainingProgress

    if fitting.initial_epoch >= run.config.epochs or run.finish:
        return
    num_classes = run.dataset.num_classes
    display = TrainingProgress(run.config.epochs, data.steps_per_epoch) if run.progress else None
    callbacks = [_checkpointing(run, data, fitting, machine), *([display] if display is not None else []),
                 *run.callbacks]
    targets = keras.utils.to_categorical(data.y_train, num_classes) if data.targets is None else data.targets
    try:
        fitting.train_model.fit(
            data.x_train, targets, validation_data=(data.x_val, keras.utils.to_categorical(data.y_val, num_classes)),
            batch_size=run.config.batch_size, epochs=run.config.epochs, initial_epoch=fitting.initial_epoch,
            shuffle=True, callbacks=callbacks, verbose=0,
        )
    finally:  # Keras skips on_train_end when fit raises (Ctrl-C included): never leave the live display on
        if display is not None:
            display.progress.stop()


def _checkpointing(run: TrainRun, data: TrainingData, fitting: Fitting, machine: dict):
    """The callback that records each epoch's history and time, adds its weights to the running average when
    it is one of the averaged epochs, and checkpoints the run (``checkpoints.py``)."""
    import keras

    averaged_epochs = averaging_epochs(run.config)
    history = fitting.history
    recorded = {"model": run.model_name, "model_options": dataclasses.asdict(run.options), "command": run.command,
                "resume_commands": list(run.resume_commands), "changed_after_training": run.changed or None,
                "data": data.fingerprint, "distillation": data.distillation, "environment": machine,
                "initialisation": fitting.initialisation}

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                history.setdefault(key, []).append(float(value))
            history.setdefault("seconds", []).append(time.perf_counter() - self.started)
            if epoch + 1 in averaged_epochs:
                fitting.average.add(fitting.base.get_weights(), epoch + 1)
            run.store.save(fitting.train_model, fitting.base, epoch + 1, history, run.config.as_dict(), recorded,
                           average=fitting.average)

    return Checkpoint()


def _best_model(run: TrainRun, data: TrainingData, fitting: Fitting):
    """(model, final state, {batch_norm_recalibration, weight_averaging}): the best epoch's model, recalibrated
    and replaced by the weight average when the run asks for them and they validate better."""
    import keras

    config, store = run.config, run.store
    final_state = store.read_state()
    if final_state.get("best_epoch") is None:
        raise UserError(f"the validation loss was never finite in {len(fitting.history.get('loss', []))} epoch(s)",
                        f"training diverged: lower --set learning_rate=... or check the data, then start again in "
                        f"a new --out (or delete {run.out_dir})")
    best = load_checkpoint(store.best_path, "the best epoch's model",
                            f"copy the run's checkpoints/{store.best_path.name} next to its state.json")
    recalibration = None
    if config.recalibrate_batch_norm:
        recalibration = recalibrate_if_better(best, data.x_train, data.x_val, data.y_val, config.label_smoothing,
                                              seed=config.seed)
    averaging = None
    if config.average_last_epochs:  # after the recalibration: the average must beat the best model as shipped
        best, averaging = average_if_better(
            best, fitting.average, data.x_train, data.x_val, data.y_val, config.label_smoothing, seed=config.seed,
            load_copy=lambda: keras.saving.load_model(store.best_path, compile=False))
    return best, final_state, {"batch_norm_recalibration": recalibration, "weight_averaging": averaging}


def _metrics(run: TrainRun, data: TrainingData, fitting: Fitting, best, final_state: dict, after: dict,
             machine: dict) -> dict:
    """``metrics.json``."""
    config, finish = run.config, run.finish
    metrics = {
        "model": run.model_name,
        "model_plugin": registry.provenance("models", run.model_name),  # which package's architecture
        "parameters": int(best.count_params()),
        "best_epoch": final_state["best_epoch"],
        "epochs": len(fitting.history.get("loss", [])),
        "planned_epochs": config.epochs,
        "config": config.as_dict(),
        "model_options": dataclasses.asdict(run.options),
        "validation": metrics_block(best, data.x_val, data.y_val, run.dataset.class_names, config.tta_flip),
        "splits": split_metrics(best, run.dataset, config.tta_flip),
        **after,  # weight_averaging: when kept, model.keras holds the average, not the best epoch's weights
        "weights_from": None,
        "command": run.command,
        "resume_commands": list(run.resume_commands) or None,  # each --resume that trained further, in order
        "data": data.fingerprint,  # what it was trained and evaluated on; --resume and --finish refuse other data
        "finish_command": run.finish_command,
        "changed_after_training": run.changed or None,  # settings a --resume / --finish changed (AFTER_TRAINING)
        "initialisation": fitting.initialisation,
        "distillation": data.distillation,  # the teachers and what they scored on the training images
        # Where the epochs ran: a run trained on a GPU machine and finished here keeps the GPU's environment.
        "environment": final_state.get("environment", machine) if finish else machine,
        "finish_environment": machine if finish else None,
        "splits_note": splits_note(run.dataset),
    }
    metrics["weights_from"] = weights_from(metrics)
    return metrics


def _after_training(settings: dict | None) -> dict:
    others = sorted(set(settings or {}) - set(AFTER_TRAINING))
    if others:
        raise UserError(f"a resumed run keeps its setting(s) {', '.join(others)}",
                        f"only {', '.join(AFTER_TRAINING)} may change; start a new run for the others")
    return dict(settings or {})
