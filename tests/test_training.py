"""`xai-fer train`: parameter counts, a short run end to end through the CLI, resuming after SIGKILL, checkpoints
that a kill never leaves truncated, same seed -> same weights, MirroredStrategy on two logical CPU devices, and
the JAX backend. Everything trains on a small synthetic FER2013-like .h5 (70 Training, 14 PublicTest, 14
PrivateTest images). The whole file costs about 65 CPU-seconds; the runs that need a fresh interpreter
(SIGKILL, split CPU, JAX) start together in the background, so on two idle cores it takes well under that."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from tiny_models import SavesAZip

from xai_fer.data import FER2013_CLASSES, SPLITS
from xai_fer.errors import UserError
from xai_fer.training.checkpoints import CheckpointStore

SPLIT_SIZES = {"Training": 70, "PublicTest": 14, "PrivateTest": 14}
# The CLI in a fresh interpreter. XAI_FER_CPU_DEVICES must be applied before TensorFlow starts, and the CLI
# starts it first thing, so this applies it before the CLI runs (a no-op when the variable is unset).
CLI = [sys.executable, "-c",
       "from xai_fer.training.devices import configure_cpu_devices; configure_cpu_devices(); "
       "from xai_fer.cli import main; main()"]
SUBPROCESS_TIMEOUT = 420
HAVE_JAX = importlib.util.find_spec("jax") is not None


def write_tiny_h5(path: Path) -> Path:
    import h5py

    rng = np.random.default_rng(0)
    usage = np.concatenate([np.full(n, SPLITS.index(split)) for split, n in SPLIT_SIZES.items()]).astype(np.uint8)
    labels = (np.arange(len(usage)) % len(FER2013_CLASSES)).astype(np.uint8)
    images = rng.integers(0, 256, size=(len(usage), 48, 48), dtype=np.uint8)
    with h5py.File(path, "w") as handle:
        handle["images"], handle["labels"], handle["usage"] = images, labels, usage
    return path


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory) -> Path:
    return write_tiny_h5(tmp_path_factory.mktemp("data") / "tiny.h5")


def cli(*args):
    """``xai-fer ARGS`` in this process; fails the test with the output when the command fails."""
    from typer.testing import CliRunner

    from xai_fer.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def cli_error(*args) -> str:
    """The one-line error of a failing ``xai-fer ARGS`` (exit code 2)."""
    from typer.testing import CliRunner

    from xai_fer.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if isinstance(result.exception, UserError):  # raised through when the CLI leaves errors to its entry point
        return str(result.exception)
    assert result.exit_code == 2, f"{result.output}\n{result.exception!r}"
    return result.output


def subprocess_env(**extra) -> dict:
    env = {**os.environ, "XAI_FER_DISABLE_PLUGINS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    env.setdefault("KERAS_BACKEND", "tensorflow")
    return env


class CliJob:
    """``xai-fer ARGS`` in a fresh interpreter, started now and awaited by ``result()``. With ``kill_after_first_
    checkpoint`` a watcher thread SIGKILLs it as soon as ``OUT/checkpoints/state.json`` appears."""

    def __init__(self, args, out: Path, env: dict | None = None, kill_after_first_checkpoint: bool = False):
        self.out, self.log = out, out.with_name(out.name + ".log")
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([*CLI, *map(str, args)], env=subprocess_env(**(env or {})),
                                            stdout=log, stderr=subprocess.STDOUT)
        self.killed_at_checkpoint = False
        if kill_after_first_checkpoint:
            threading.Thread(target=self._kill_at_first_checkpoint, daemon=True).start()

    def _kill_at_first_checkpoint(self):
        state = self.out / "checkpoints" / "state.json"
        while self.process.poll() is None:
            if state.exists():
                self.process.send_signal(signal.SIGKILL)
                self.killed_at_checkpoint = True
                return
            time.sleep(0.01)

    def result(self) -> int:
        try:
            return self.process.wait(timeout=SUBPROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"timed out after {SUBPROCESS_TIMEOUT} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


RESUME_EPOCHS = 4


def _background_jobs(tiny_h5: Path, folder: Path) -> dict:
    """The subprocess runs the tests below need, by test name: started together with the first test of this
    module, so that their start-up (importing TensorFlow, tracing) overlaps the tests that train in-process."""
    common = ["--data", tiny_h5, "--batch-size", 16]
    jobs = {
        "test_resume_after_sigkill_runs_every_epoch_once": lambda: CliJob(
            ["train", "dnn", "--data", tiny_h5, "--out", folder / "resume", "--epochs", RESUME_EPOCHS,
             "--batch-size", 4, "--set", f"average_last_epochs={RESUME_EPOCHS}"], folder / "resume",
            kill_after_first_checkpoint=True),
        "test_mirrored_strategy_trains_on_two_logical_cpu_devices": lambda: CliJob(
            ["train", "dnn", *common, "--out", folder / "mirrored", "--epochs", 1, "--strategy", "mirrored"],
            folder / "mirrored", env={"XAI_FER_CPU_DEVICES": "2"}),
    }
    if HAVE_JAX:
        # The study's augmentation, rotation, shift and zoom included: under JAX the train step is compiled.
        jobs["test_jax_backend_trains_a_model_tensorflow_loads"] = lambda: CliJob(
            ["train", "dnn", *common, "--out", folder / "jax", "--epochs", 1, "--set", "steps_per_execution=2"],
            folder / "jax", env={"KERAS_BACKEND": "jax"})
    return jobs


@pytest.fixture(scope="module", autouse=True)
def background(request, tiny_h5, tmp_path_factory):
    selected = {item.originalname for item in request.session.items if item.module is request.module}
    folder = tmp_path_factory.mktemp("background")
    jobs = {name: start() for name, start in _background_jobs(tiny_h5, folder).items() if name in selected}
    yield jobs
    for job in jobs.values():
        job.stop()


def is_complete_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def visible_archives(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*.keras") if not p.name.startswith(".")]


def weights_of(path: Path) -> list[np.ndarray]:
    import keras

    return [np.asarray(w) for w in keras.saving.load_model(path, compile=False).get_weights()]


# --- architectures -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [("cnn", 787_143), ("dnn", 799_525)])
def test_parameter_counts_match_the_study(name, expected):
    from xai_fer import registry

    plugin = registry.lookup("models", name)
    model = plugin.build((48, 48, 1), 7, plugin.Options())
    assert model.count_params() == pytest.approx(expected, rel=0.02)
    assert model.output_shape == (None, 7)


def test_training_model_with_and_without_augmentation():
    import dataclasses

    from xai_fer import registry
    from xai_fer.training.building import build_training_model
    from xai_fer.training.config import STUDY

    plugin = registry.lookup("models", "dnn")
    with_aug, base = build_training_model(plugin, (48, 48, 1), 7, plugin.Options(), STUDY, steps_per_epoch=10)
    assert [layer.name for layer in with_aug.layers] == ["augmentation", base.name]
    assert [layer.name for layer in with_aug.layers[0].layers] == ["aug_flip", "aug_rotation", "aug_shift", "aug_zoom"]
    none = dataclasses.replace(STUDY, flip=False, rotation=0.0, shift=0.0, zoom=0.0)
    without, base = build_training_model(plugin, (48, 48, 1), 7, plugin.Options(), none, steps_per_epoch=10)
    assert without.layers == [base]  # Keras cannot build an empty augmentation Sequential: it is left out
    assert without.predict(np.zeros((2, 48, 48, 1), "float32"), verbose=0).shape == (2, 7)


@pytest.mark.parametrize("setting", [{"zoom": "1.5"}, {"warmup_epochs": "-1"}, {"epochs": "0"}, {"rotation": "-5"},
                                     {"steps_per_execution": "0"}, {"average_last_epochs": "1"},
                                     {"average_last_epochs": "101"}, {"seed": "-1"}, {"seed": str(2**32)},
                                     {"learning_rate": "inf"}, {"weight_decay": "nan"}])
def test_invalid_training_settings_are_user_errors(setting):
    from xai_fer.options import parse_options
    from xai_fer.training.config import TrainConfig

    with pytest.raises(UserError, match="invalid options for train|expected a finite number"):
        parse_options(TrainConfig, setting, "train")


# --- one short run end to end --------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_end_to_end_through_the_cli(tiny_h5, tmp_path):
    from xai_fer.models.loading import load_model

    out = tmp_path / "run"
    result = cli("train", "cnn", "--data", tiny_h5, "--out", out, "--epochs", 2, "--batch-size", 16,
                 "--set", "tta_flip=true", "--set", "recalibrate_batch_norm=true", "--set", "average_last_epochs=2")
    assert "saved" in result.output and "PrivateTest" in result.output
    shown = " ".join(result.output.split())
    assert "batch-norm statistics recomputed on 56 training images" in shown
    assert "weights of epochs 1-2 averaged (2 epochs, batch-norm statistics recomputed on 56 training images)" in shown

    history = json.loads((out / "history.json").read_text())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        assert len(history[key]) == 2 and all(math.isfinite(v) for v in history[key]), key
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["epoch", "accuracy"] and [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    model = load_model(out / "model.keras")  # what `xai-fer explain OUT/model.keras` does
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["parameters"] == model.count_params() == pytest.approx(787_143, rel=0.02)
    assert metrics["model"] == "cnn" and metrics["epochs"] == 2 and metrics["best_epoch"] in (1, 2)
    assert set(metrics["splits"]) == {"PublicTest", "PrivateTest"}
    for block in metrics["splits"].values():
        assert set(block) == {"plain", "tta_flip"}
        for report in block.values():
            assert report["n"] == 14 and 0 <= report["accuracy"] <= 1
            assert list(report["per_class"]) == list(FER2013_CLASSES)
            assert all(row["n"] == 2 and 0 <= row["accuracy"] <= 1 for row in report["per_class"].values())
    assert metrics["validation"]["plain"]["n"] == 14  # the study's holdout: 20% of 70 Training images

    images = np.random.default_rng(1).integers(0, 256, size=(3, 48, 48, 1)).astype("float32")
    probs = np.asarray(model.predict(images, verbose=0))
    assert probs.shape == (3, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)

    recalibration = metrics["batch_norm_recalibration"]
    assert recalibration["layers"] == 11 and recalibration["images"] == 56  # 80% of 70, never augmented
    assert all(math.isfinite(recalibration[f"validation_loss_{when}"]) for when in ("before", "after"))
    averaged = metrics["weight_averaging"]
    assert (averaged["epochs"], averaged["batch_norm_layers"], averaged["images"]) == (2, 11, 56)
    assert math.isfinite(averaged["validation_loss_average"])
    # The shipped model is whichever of the two had the lower validation loss (the best one after recalibrating).
    best_loss = min(recalibration["validation_loss_before"], recalibration["validation_loss_after"])
    assert averaged["validation_loss_best"] == pytest.approx(best_loss, rel=1e-5)
    assert averaged["kept"] == (averaged["validation_loss_average"] < averaged["validation_loss_best"])
    # model.keras is the one chosen: its validation accuracy is the winner's.
    chosen = "average" if averaged["kept"] else "best"
    assert metrics["validation"]["plain"]["accuracy"] == pytest.approx(averaged[f"validation_accuracy_{chosen}"])
    assert metrics["weights_from"] == ("average of epochs 1-2" if averaged["kept"] else
                                       f"best epoch {metrics['best_epoch']}")
    assert f"weights of the {metrics['weights_from']}" in shown

    # A finished run is never overwritten by accident.
    assert "already holds a training run" in cli_error("train", "cnn", "--data", tiny_h5, "--out", out)

    # --finish may change what acts after the last epoch (nothing else): here, no recalibration this time.
    result = cli("train", "cnn", "--data", tiny_h5, "--out", out, "--finish", "--set", "recalibrate_batch_norm=false",
                 "--set", "learning_rate=0.5")
    shown = " ".join(result.output.split())
    assert "ignored now: --set learning_rate (only --set tta_flip, --set recalibrate_batch_norm may change" in shown
    assert "changed after training: recalibrate_batch_norm=False" in shown
    refinished = json.loads((out / "metrics.json").read_text())
    assert refinished["batch_norm_recalibration"] is None and refinished["config"]["learning_rate"] == 1e-3
    assert refinished["changed_after_training"] == {"recalibrate_batch_norm": False}
    assert metrics["changed_after_training"] is None
    assert refinished["finish_command"]  # (sys.argv: the test runner's under CliRunner)
    assert refinished["command"] == metrics["command"] and refinished["best_epoch"] == metrics["best_epoch"]

    # A setting given with the value the run already has is no change, and is not recorded as one.
    cli("train", "cnn", "--data", tiny_h5, "--out", out, "--finish", "--set", "tta_flip=true")
    assert json.loads((out / "metrics.json").read_text())["changed_after_training"] is None

    # Other data would mix two datasets in one run: refused in one line, whatever was finished stays.
    assert metrics["data"]["train_images"] == 56 and metrics["data"]["validation_images"] == 14
    other = tmp_path / "other.h5"
    with h5py.File(tiny_h5, "r") as source, h5py.File(other, "w") as copy:
        for key in source:
            copy[key] = source[key][()]
        copy["images"][0] = 255 - copy["images"][0]
    message = " ".join(cli_error("train", "cnn", "--data", other, "--out", out, "--finish").split())
    assert "was trained on other images" in message and "with the --data it started with" in message

    # A run whose best model did not travel (or was damaged) cannot be finished: one line, nothing rewritten.
    best = out / "checkpoints" / json.loads((out / "checkpoints" / "state.json").read_text())["best"]
    best.write_bytes(best.read_bytes()[:1000])
    before = (out / "metrics.json").read_bytes()
    message = " ".join(cli_error("train", "cnn", "--data", tiny_h5, "--out", out, "--finish").split())
    assert "(the best epoch's model) cannot be read" in message and f"copy the run's checkpoints/{best.name}" in message
    best.unlink()
    assert "(the best epoch's model) is missing" in cli_error("train", "cnn", "--data", tiny_h5, "--out", out,
                                                              "--resume")
    assert (out / "metrics.json").read_bytes() == before


# --- resuming and checkpoints --------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_after_sigkill_runs_every_epoch_once(tiny_h5, background):
    job, epochs = background["test_resume_after_sigkill_runs_every_epoch_once"], RESUME_EPOCHS
    returncode, out = job.result(), job.out
    assert job.killed_at_checkpoint and returncode == -signal.SIGKILL, job.output()
    state_path = out / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    assert 1 <= state["epoch"] < epochs and len(state["history"]["loss"]) == state["epoch"]
    for path in visible_archives(out / "checkpoints"):  # complete; temporary files are hidden
        assert is_complete_zip(path), path
    assert not (out / "model.keras").exists()

    # --finish on a copy: the best model so far, with metrics that say how many planned epochs ran. It needs
    # only state.json and the best model (what is fetched back from a GPU machine), not the training checkpoint,
    # and keeps the environment the epochs ran in.
    finished = out.parent / f"{out.name}-finished"
    shutil.copytree(out, finished)
    (finished / "checkpoints" / state["checkpoint"]).unlink()
    cli("train", "dnn", "--data", tiny_h5, "--out", finished, "--finish")
    early = json.loads((finished / "metrics.json").read_text())
    assert (early["epochs"], early["planned_epochs"]) == (state["epoch"], epochs)
    assert early["environment"] == state["environment"] and early["finish_environment"]["backend"] == "tensorflow"
    assert early["weight_averaging"]["epochs"] == state["epoch"]  # the epochs averaged before the kill
    assert weights_of(finished / "model.keras")

    cli("train", "dnn", "--data", tiny_h5, "--out", out, "--resume")

    history = json.loads((out / "history.json").read_text())
    assert {key: len(values) for key, values in history.items()} == dict.fromkeys(history, epochs)
    assert history["loss"][: state["epoch"]] == state["history"]["loss"]  # the killed run's epochs, kept once
    assert [row.split(",")[0] for row in (out / "history.csv").read_text().splitlines()[1:]] == ["1", "2", "3", "4"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == epochs and metrics["config"]["batch_size"] == 4  # the run's settings, not presets
    assert weights_of(out / "model.keras")
    # The weight average goes on across the kill: every epoch once, those before it included.
    averaged = metrics["weight_averaging"]
    assert (averaged["epochs"], averaged["first_epoch"], averaged["last_epoch"]) == (epochs, 1, epochs)
    assert averaged["batch_norm_layers"] > 0 and averaged["images"] == 56  # the holdout split's training part
    final = json.loads(state_path.read_text())
    assert final["average"] == f"average-{epochs:03d}.npz"
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name != ".lock") == sorted(
        {"state.json", final["checkpoint"], final["best"], final["average"]}
    )


# A stand-in for a Keras model whose save() writes a zip in many small, slow pieces, so that kills land
# mid-write; the store under test is the real one, the kills are real SIGKILLs.
_SLOW_WRITER = """
import sys, time, zipfile
from pathlib import Path
from xai_fer.training.checkpoints import CheckpointStore

class SlowModel:
    def save(self, path):
        with zipfile.ZipFile(path, "w") as archive:
            for part in range(PARTS):
                archive.writestr(f"part{part}", bytes(2048))
                time.sleep(0.002)

store = CheckpointStore(Path(sys.argv[1]))
state = store.read_state() if store.exists() else {"epoch": 0, "history": {"val_loss": []}}
epoch, history = state["epoch"], state["history"]
print("started", flush=True)
while True:
    epoch += 1
    history["val_loss"].append(1.0 / epoch if epoch % 3 else 9.0)  # a new best in two epochs of three
    store.save(SlowModel(), SlowModel(), epoch, history, {}, {"model": "slow", "model_options": {}})
""".replace("PARTS", "40")


def test_killed_runs_never_leave_a_truncated_checkpoint_to_resume_from(tmp_path):
    out, rng = tmp_path / "run", np.random.default_rng(0)
    store, temp_files_seen, epochs_seen = CheckpointStore(out), 0, []
    for _ in range(8):
        process = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(out)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            assert process.stdout.readline().strip() == "started", process.stderr.read()
            time.sleep(rng.uniform(0.1, 0.5))
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.communicate()
        temp_files_seen += sum(".tmp-" in p.name for p in store.dir.iterdir())
        if not store.exists():
            continue
        state = store.read_state()  # complete JSON, never half written
        epochs_seen.append(state["epoch"])
        assert len(state["history"]["val_loss"]) == state["epoch"]
        for name in (state["checkpoint"], state["best"]):  # what --resume reads: whole archives
            assert is_complete_zip(store.dir / name), name
        assert state["best_epoch"] == int(state["best"][5:8])
        for path in visible_archives(store.dir):  # no visible file is ever truncated
            assert is_complete_zip(path), path
        store.clean()  # what --resume does first
        assert not [p for p in store.dir.iterdir() if ".tmp-" in p.name]
        assert {p.name for p in store.dir.iterdir()} <= {"state.json", state["checkpoint"], state["best"]}
    assert temp_files_seen > 0, "no kill landed in the middle of a write: the test proved nothing"
    assert epochs_seen == sorted(epochs_seen) and epochs_seen[-1] > 1  # every run went on from the last


def test_a_best_model_is_kept_until_a_lower_validation_loss_replaces_it(tmp_path):
    store = CheckpointStore(tmp_path)
    store.dir.mkdir(parents=True)
    for name in ("best-002.keras", "epoch-002.keras"):
        SavesAZip().save(store.dir / name)
    state = {"best_val_loss": 1.5, "best_epoch": 2, "epoch": 2, "checkpoint": "epoch-002.keras",
             "best": "best-002.keras", "history": {"val_loss": [1.6, 1.5]}, "config": {}, "model": "cnn",
             "model_options": {}}
    store.state_path.write_text(json.dumps({**state, "best": "best.keras"}))  # no name this store writes
    with pytest.raises(UserError, match="'best' names 'best.keras', not a file this run writes"):
        store.read_state()
    store.state_path.write_text(json.dumps(state))
    assert store.best_path == store.dir / "best-002.keras" and store.clean() == []

    store.save(SavesAZip(), SavesAZip(), 3, {"val_loss": [1.6, 1.5, 1.7]}, {}, {})  # no new best
    assert store.best_path.name == "best-002.keras" and store.read_state()["best_epoch"] == 2
    store.save(SavesAZip(), SavesAZip(), 4, {"val_loss": [1.6, 1.5, 1.7, 1.4]}, {}, {})
    assert store.best_path.name == "best-004.keras" and store.read_state()["best_epoch"] == 4
    assert sorted(p.name for p in store.dir.iterdir()) == ["best-004.keras", "epoch-004.keras", "state.json"]


def test_two_processes_never_train_into_the_same_directory(tmp_path):
    first, second = CheckpointStore(tmp_path), CheckpointStore(tmp_path)
    first.lock()
    try:
        with pytest.raises(UserError, match="another process is training"):
            second.lock()
    finally:
        first.unlock()
    second.lock()
    second.unlock()


@pytest.mark.slow
def test_init_from_starts_a_new_run_from_a_saved_models_weights(tiny_h5, tmp_path, monkeypatch):
    import keras

    from xai_fer.data import load_dataset
    from xai_fer.training.config import TrainConfig
    from xai_fer.training.initialisation import chain_history
    from xai_fer.training.trainer import train

    monkeypatch.chdir(tmp_path)  # paths as a user types them: relative to where the command runs
    cli("train", "dnn", "--data", tiny_h5, "--out", "first", "--epochs", 1, "--batch-size", 16)
    donor = weights_of(tmp_path / "first" / "model.keras")
    first_history = json.loads((tmp_path / "first" / "history.json").read_text())

    class StartingWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = [np.array(w) for w in self.model.layers[-1].get_weights()]

    seen = StartingWeights()
    result = train("dnn", load_dataset(str(tiny_h5)), Path("second"), TrainConfig(epochs=1, batch_size=16),
                   progress=False, callbacks=[seen], init_from="first/model.keras", command="second")
    assert len(seen.weights) == len(donor) > 0
    assert all(np.array_equal(a, b) for a, b in zip(seen.weights, donor, strict=True))
    record = result.metrics["initialisation"]
    assert record["path"] == "first/model.keras" and len(record["sha256"]) == 64
    assert record["command"] == json.loads((tmp_path / "first" / "metrics.json").read_text())["command"]
    assert record["history"] == first_history and record["initialisation"] is None
    assert json.loads((tmp_path / "second" / "metrics.json").read_text())["initialisation"] == record

    # The record lives in the checkpoint state too: finishing (or resuming) the run keeps it.
    cli("train", "dnn", "--data", tiny_h5, "--out", "second", "--finish")
    assert json.loads((tmp_path / "second" / "metrics.json").read_text())["initialisation"] == record

    # A chain nests, and its history (what the curves draw before this run) is joined oldest first.
    third = train("dnn", load_dataset(str(tiny_h5)), Path("third"), TrainConfig(epochs=1, batch_size=16),
                  progress=False, init_from="second/model.keras", command="third").metrics["initialisation"]
    assert third["initialisation"] == record and third["command"] == "second"
    second_history = json.loads((tmp_path / "second" / "history.json").read_text())
    assert chain_history(third)["loss"] == [*first_history["loss"], *second_history["loss"]]

    # Another architecture, a missing file and a resumed run are each one clear line, and leave nothing behind.
    assert "does not have the architecture" in cli_error(
        "train", "cnn", "--data", tiny_h5, "--out", "fourth", "--epochs", 1, "--init-from", "first/model.keras")
    assert not (tmp_path / "fourth").exists()
    assert "does not exist" in cli_error("train", "dnn", "--data", tiny_h5, "--out", "fifth",
                                         "--init-from", "nothing.keras")
    assert "starts a new run" in cli_error("train", "dnn", "--data", tiny_h5, "--out", "second", "--resume",
                                           "--init-from", "first/model.keras")


def test_init_from_reads_the_run_behind_a_bundled_reference_model():
    from xai_fer.reference import MODELS
    from xai_fer.training.initialisation import load_donor

    donor = load_donor(MODELS["dnn"])
    shipped = json.loads((MODELS["dnn"].parent / "dnn_metrics.json").read_text())
    assert donor.record["command"] == shipped["command"] and donor.record["command"].startswith("xai-fer train dnn")
    assert donor.parameters == shipped["parameters"] == sum(w.size for w in donor.weights)
    # Its per-epoch history comes from dnn_history.csv, so a run started from it draws the earlier curves too.
    rows = (MODELS["dnn"].parent / "dnn_history.csv").read_text().splitlines()
    assert len(donor.record["history"]["val_loss"]) == len(rows) - 1 == shipped["epochs"]
    assert "epoch" not in donor.record["history"]


def test_every_augmentation_seed_fits_in_32_bits():
    # JAX keeps seeds as uint32: the layers' seed + k must wrap, not overflow, for the largest seeds.
    import dataclasses

    from xai_fer.training.augmentation import build_augmentation
    from xai_fer.training.config import STUDY

    for seed in (0, 2**32 - 1):
        layers = build_augmentation(dataclasses.replace(STUDY, seed=seed)).layers
        seeds = [layer.seed for layer in layers]
        assert all(0 <= s < 2**32 for s in seeds) and len(set(seeds)) == 4


# --- reproducibility, distribution, backends ----------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_gives_the_same_weights_after_one_epoch(tiny_h5, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        cli("train", "dnn", "--data", tiny_h5, "--out", out, "--epochs", 1, "--batch-size", 16, "--seed", 0)
    for name in ("model.keras", "checkpoints/epoch-001.keras"):  # the best model; the training model + optimizer
        first, second = (weights_of(out / name) for out in runs)
        assert len(first) == len(second) > 0
        assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True)), name
    assert json.loads((runs[0] / "history.json").read_text())["loss"] == json.loads(
        (runs[1] / "history.json").read_text())["loss"]


@pytest.mark.slow
def test_mirrored_strategy_trains_on_two_logical_cpu_devices(background):
    job = background["test_mirrored_strategy_trains_on_two_logical_cpu_devices"]
    assert job.result() == 0, job.output()
    out = job.out
    environment = json.loads((out / "metrics.json").read_text())["environment"]
    assert environment["strategy"] == "MirroredStrategy" and environment["replicas"] == 2
    assert weights_of(out / "model.keras")


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_JAX, reason="jax is not installed (an optional Keras backend)")
def test_jax_backend_trains_a_model_tensorflow_loads(background):
    from xai_fer.models.loading import load_model

    job = background["test_jax_backend_trains_a_model_tensorflow_loads"]
    assert job.result() == 0, job.output()
    out = job.out
    assert json.loads((out / "metrics.json").read_text())["environment"]["backend"] == "jax"
    model = load_model(out / "model.keras")  # in this process: the TensorFlow backend
    probs = np.asarray(model.predict(np.zeros((2, 48, 48, 1), "float32"), verbose=0))
    assert probs.shape == (2, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)


JAX_JIT_CHECK = """
import keras
from xai_fer import registry
from xai_fer.training.config import STUDY
from xai_fer.training.building import build_training_model, compile_under_jax

plugin = registry.lookup("models", "dnn")
model, _ = build_training_model(plugin, (48, 48, 1), 7, plugin.Options(), STUDY, steps_per_epoch=10)
assert {l.name for l in model.layers[0].layers} >= {"aug_rotation", "aug_shift", "aug_zoom"}
assert model.jit_compile is True, "a JAX train step with the affine augmentation layers must be compiled"
model.save(PATH)
again = keras.saving.load_model(PATH, compile=True)  # Keras alone would turn jit off again here
compile_under_jax(again)
assert again.jit_compile is True
print("ok")
"""


@pytest.mark.skipif(not HAVE_JAX, reason="jax is not installed (an optional Keras backend)")
def test_jax_train_step_is_compiled_despite_the_affine_augmentation_layers(tmp_path):
    """Keras runs a JAX model holding RandomRotation/RandomTranslation/RandomZoom eagerly (they declare
    supports_jit=False for TensorFlow's sake): on an H100 that made an epoch take over 90 s."""
    code = JAX_JIT_CHECK.replace("PATH", repr(str(tmp_path / "m.keras")))
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(KERAS_BACKEND="jax"),
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_settings_are_checked_against_the_epochs_given_on_the_command_line(tiny_h5, tmp_path):
    # --epochs is part of the one validation: a window of 150 of 200 epochs is fine (the run then fails for
    # another reason: nothing to finish), 10 of 5 is refused in one line.
    args = ("train", "dnn", "--data", tiny_h5, "--out", tmp_path / "run")
    assert "no interrupted run in" in cli_error(*args, "--epochs", 200, "--set", "average_last_epochs=150", "--finish")
    message = cli_error(*args, "--epochs", 5, "--set", "average_last_epochs=10")
    assert "average_last_epochs must be 0 (off) or between 2 and epochs" in " ".join(message.split())
    assert not (tmp_path / "run").exists()


def test_an_out_that_cannot_take_a_run_is_refused_before_the_data_is_read(tiny_h5, tmp_path, monkeypatch):
    import xai_fer.data

    monkeypatch.setattr(xai_fer.data, "load_dataset", lambda *a, **k: pytest.fail("the data was read first"))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    args = ("train", "dnn", "--data", tiny_h5, "--epochs", 1)
    assert "--out " + str(blocker) + " exists and is not a directory" in cli_error(*args, "--out", blocker)
    assert "no interrupted run in" in cli_error(*args, "--out", tmp_path / "new", "--resume")
    assert "unknown option dnn.hiden" in cli_error(*args, "--out", tmp_path / "new", "--option", "hiden=3")
    assert blocker.read_text() == "not a folder" and not (tmp_path / "new").exists()


def test_a_resumed_run_may_change_only_the_settings_that_act_after_training():
    from xai_fer.training.config import AFTER_TRAINING
    from xai_fer.training.trainer import _after_training

    assert _after_training({"tta_flip": True, "recalibrate_batch_norm": False}) == {
        "tta_flip": True, "recalibrate_batch_norm": False}
    assert _after_training(None) == {} and set(AFTER_TRAINING) == {"tta_flip", "recalibrate_batch_norm"}
    with pytest.raises(UserError, match="keeps its setting.s. epochs, learning_rate"):
        _after_training({"learning_rate": 0.1, "epochs": 3, "tta_flip": True})


def test_init_from_notes_when_the_holdout_would_hold_images_the_first_run_trained_on(tmp_path):
    import dataclasses

    from xai_fer.training.config import IMPROVED, STUDY
    from xai_fer.training.initialisation import holdout_leak

    model = tmp_path / "model.keras"
    model.write_bytes(b"")
    (tmp_path / "metrics.json").write_text(json.dumps({"config": STUDY.as_dict()}))  # holdout, seed 0, 20%
    assert holdout_leak(model, STUDY) is None
    assert holdout_leak(model, IMPROVED) is None  # validating on PublicTest never leaks
    assert "held out other images (seed 0, this run 1)" in holdout_leak(model, dataclasses.replace(STUDY, seed=1))[0]
    (tmp_path / "metrics.json").write_text(json.dumps({"config": IMPROVED.as_dict()}))
    assert "trained on all of Training" in holdout_leak(model, STUDY)[0]
    (tmp_path / "metrics.json").unlink()
    assert holdout_leak(model, STUDY) is None  # nothing known about the earlier run
