"""Knowledge distillation (``--set teachers=...``): the targets, the record, and the resume check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_training import cli, cli_error, write_tiny_h5

from xai_fer.errors import UserError


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory) -> Path:
    return write_tiny_h5(tmp_path_factory.mktemp("data") / "tiny.h5")


def save_teacher(path: Path, kernel: np.ndarray, bias: np.ndarray) -> Path:
    """A 48x48x1 model with a softmax over one dense layer of known weights (the pixels it sees are scaled to
    [0, 1] by the input adapter, as for any model without its own scaling)."""
    import keras

    inputs = keras.Input((48, 48, 1))
    dense = keras.layers.Dense(len(bias), activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    model.save(path)
    return path


def constant_teacher(path: Path, probabilities) -> Path:
    """Predicts ``probabilities`` for every image."""
    return save_teacher(path, np.zeros((48 * 48, len(probabilities))), np.log(np.asarray(probabilities)))


def test_targets_mix_the_label_with_the_teachers_mean_over_both_views(tmp_path):
    from xai_fer.data import FER2013_CLASSES
    from xai_fer.training.distillation import distillation_targets

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 48, 48, 1)).astype(np.float32)
    labels = np.arange(20) % 7
    first = np.array([0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    second = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4])
    teachers = [constant_teacher(tmp_path / "a.keras", first), constant_teacher(tmp_path / "b.keras", second)]
    targets, summary = distillation_targets(teachers, images, labels, FER2013_CLASSES, weight=0.3)
    expected = 0.7 * np.eye(7)[labels] + 0.3 * (first + second) / 2
    np.testing.assert_allclose(targets, expected, atol=1e-5)
    assert summary["teacher_weight"] == 0.3
    assert summary["train_accuracy_each"] == [float(np.mean(labels == 0)), float(np.mean(labels == 6))]

    # A teacher that tells left from right (class 0 scores the left half, class 1 the right half) gives a
    # mirror-symmetric target: the mean over each image and its mirror image.
    kernel = np.zeros((48, 48, 7))
    kernel[:, :24, 0], kernel[:, 24:, 1] = 0.01, 0.01
    sided = save_teacher(tmp_path / "sided.keras", kernel.reshape(48 * 48, 7), np.zeros(7))
    left_bright = np.zeros((4, 48, 48, 1), np.float32)
    left_bright[:, :, :24] = 255
    targets, _ = distillation_targets([sided], left_bright, np.zeros(4, int), FER2013_CLASSES, weight=1.0)
    np.testing.assert_allclose(targets[:, 0], targets[:, 1], rtol=1e-5)
    assert targets[0, 0] > targets[0, 2]

    with pytest.raises(UserError, match="has 3 classes but the data has 7"):
        distillation_targets([constant_teacher(tmp_path / "three.keras", [0.2, 0.3, 0.5])], images, labels,
                             FER2013_CLASSES, weight=0.5)


@pytest.mark.slow
def test_a_run_learns_from_teachers_records_them_and_resumes_only_with_the_same_ones(tiny_h5, tmp_path, monkeypatch):
    import keras

    from xai_fer.data import load_dataset
    from xai_fer.training.config import TrainConfig
    from xai_fer.training.trainer import train

    monkeypatch.chdir(tmp_path)
    teacher = constant_teacher(tmp_path / "teacher.keras", [0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    fitted_on, fit = [], keras.Model.fit
    monkeypatch.setattr(keras.Model, "fit", lambda self, x, y, **kw: fitted_on.append(y) or fit(self, x, y, **kw))
    cli("train", "dnn", "--data", tiny_h5, "--out", "taught", "--epochs", 1, "--batch-size", 16,
        "--set", "teachers=teacher.keras", "--set", "teacher_weight=0.25", "--set", "validation=publictest")
    record = json.loads((tmp_path / "taught" / "metrics.json").read_text())["distillation"]
    assert record["teachers"] == [{"path": str(teacher.resolve()), "sha256": record["teachers"][0]["sha256"]}]
    assert record["teacher_weight"] == 0.25
    # What the model was fitted on: three quarters of the label, a quarter of the teacher's prediction.
    targets = fitted_on[0]
    labels = targets.argmax(axis=1)
    np.testing.assert_allclose(targets, 0.75 * np.eye(7)[labels] + 0.25 * np.array([0.4] + [0.1] * 6), atol=1e-5)
    assert record["train_accuracy_each"] == [pytest.approx(10 / 70)]  # all of Training: 10 images a class

    # Interrupted after its first epoch, a run resumes with the teachers it started with, and refuses others.
    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    config = TrainConfig(epochs=2, batch_size=16, teachers=("teacher.keras",))
    with pytest.raises(KeyboardInterrupt):
        train("dnn", load_dataset(str(tiny_h5)), Path("resumed"), config, progress=False,
              callbacks=[StopAfterFirstEpoch()])
    original = teacher.read_bytes()
    constant_teacher(teacher, [0.1, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert f"was started with other teachers ({teacher.resolve()})" in cli_error(
        "train", "dnn", "--data", tiny_h5, "--out", "resumed", "--resume")
    teacher.write_bytes(original)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the teachers' paths were made absolute: found from anywhere
    cli("train", "dnn", "--data", tiny_h5, "--out", tmp_path / "resumed", "--resume")
    monkeypatch.chdir(tmp_path)
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["distillation"]["teachers"] == record["teachers"]

    # A missing teacher is one line before any data is read (the data does not exist either), and leaves no
    # run folder.
    message = cli_error("train", "dnn", "--data", "no-such-data.h5", "--out", "never", "--epochs", 1,
                        "--set", "teachers=absent.keras")
    assert "teacher model 'absent.keras' does not exist: check the teachers' paths" in message
    assert not (tmp_path / "never").exists()


def test_teacher_weight_is_a_share():
    assert "teacher_weight must be in [0, 1]" in " ".join(cli_error(
        "train", "dnn", "--data", "x.h5", "--out", "o", "--set", "teacher_weight=1.5").split())


def test_a_teacher_or_start_that_trained_on_the_holdout_images_is_noted_with_its_own_consequence(tmp_path):
    from typer.testing import CliRunner

    from xai_fer.cli import app
    from xai_fer.training.config import IMPROVED

    teacher = constant_teacher(tmp_path / "model.keras", [1 / 7] * 7)
    (tmp_path / "metrics.json").write_text(json.dumps({"config": IMPROVED.as_dict()}))  # trained on all of Training
    result = CliRunner().invoke(app, ["train", "cnn", "--data", str(tmp_path / "absent.h5"), "--out",
                                      str(tmp_path / "run"), "--init-from", str(teacher), "--set",
                                      f"teachers={teacher}"])
    output = " ".join(result.output.split())  # the notes may wrap
    assert (f"Note: --init-from {teacher}: the earlier run trained on all of Training, so this run's holdout "
            "images were among its training; give this run the earlier run's --seed") in output
    assert (f"Note: teacher {teacher}: the earlier run trained on all of Training, so its targets carry what it "
            "learnt from this run's validation images") in output
