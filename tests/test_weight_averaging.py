"""Stochastic weight averaging (``average_last_epochs``): the running mean of the last epochs' weights, kept
with the checkpoints, and the averaged model (batch-norm statistics recomputed) chosen only on a lower
validation loss. The trainer's use of it runs in ``test_training.py`` (end to end, and across a killed run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_models import SavesAZip

from xai_fer.training import averaging
from xai_fer.training.averaging import WeightAverage
from xai_fer.training.checkpoints import CheckpointStore


def test_the_running_mean_is_the_mean_of_the_epochs_weights():
    rng = np.random.default_rng(0)
    snapshots = [[rng.normal(size=(3, 2)).astype("float32"), rng.normal(size=4).astype("float16"),
                  np.array([epoch, 7], dtype="int64")] for epoch in range(5)]
    average = WeightAverage()
    for epoch, weights in enumerate(snapshots, start=3):
        average.add(weights, epoch)
    assert average.epochs == [3, 4, 5, 6, 7]
    mean = average.model_weights(snapshots[0])
    for i in (0, 1):
        expected = np.mean([s[i].astype("float64") for s in snapshots], axis=0)
        assert mean[i].dtype == snapshots[0][i].dtype and np.allclose(mean[i], expected, atol=1e-3)
    assert np.array_equal(mean[2], [4, 7])  # an integer state has no mean: the latest is kept

    again = WeightAverage.from_arrays(average.to_arrays())
    assert again.epochs == average.epochs
    assert all(np.array_equal(a, b) for a, b in zip(again.weights, average.weights, strict=True))


def test_the_epochs_averaged_are_the_last_ones_planned():
    from xai_fer.training.config import TrainConfig

    assert list(averaging.averaging_epochs(TrainConfig(epochs=10, average_last_epochs=3))) == [8, 9, 10]
    assert list(averaging.averaging_epochs(TrainConfig(epochs=10))) == []
    with pytest.raises(ValueError, match="average_last_epochs"):
        TrainConfig(epochs=3, average_last_epochs=4)


def test_the_average_is_checkpointed_with_the_epoch_and_survives_a_resume(tmp_path):
    store = CheckpointStore(tmp_path)
    assert store.read_average().epochs == []
    average, history = WeightAverage(), {"val_loss": []}
    for epoch in (1, 2, 3):
        history["val_loss"].append(1.0)
        if epoch >= 2:
            average.add([np.full(2, float(epoch))], epoch)
        store.save(SavesAZip(), SavesAZip(), epoch, history, {}, {"model": "cnn", "model_options": {}}, average=average)
    state = json.loads(store.state_path.read_text())
    assert state["average"] == "average-003.npz"
    assert sorted(p.name for p in store.dir.iterdir()) == ["average-003.npz", "best-001.keras", "epoch-003.keras",
                                                         "state.json"]
    (store.dir / "average-004.npz").write_bytes(b"written after the last state: a killed run's leftover")
    assert store.clean() == ["average-004.npz"]
    read = store.read_average()
    assert read.epochs == [2, 3] and np.allclose(read.weights[0], 2.5)


def _model():
    """Conv -> BN -> dense softmax: small enough to train nothing, with batch norm to recompute."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 1))
    x = layers.Rescaling(1 / 255.0)(inputs)
    x = layers.BatchNormalization(name="bn")(layers.Conv2D(2, 3, name="conv")(x))
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(layers.Flatten()(x)))


@pytest.fixture
def images():
    return np.random.default_rng(1).integers(0, 256, size=(40, 8, 8, 1)).astype("float32")


def _average_of(*weight_lists):
    average = WeightAverage()
    for epoch, weights in enumerate(weight_lists, start=1):
        average.add(weights, epoch)
    return average


def test_the_average_replaces_the_best_model_when_its_validation_loss_is_lower(images):
    from xai_fer.training.recalibration import recalibrate_batch_norm

    target = _model()
    recalibrate_batch_norm(target, images)
    labels = target.predict(images, verbose=0).argmax(axis=1)  # what the averaged weights predict
    good = target.get_weights()
    noise = np.random.default_rng(2)
    best = _model()
    best.set_weights([w if i in (4, 5) else w + noise.normal(scale=0.5, size=w.shape).astype(w.dtype)
                      for i, w in enumerate(good)])  # learned weights off, statistics right
    # Two epochs either side of the good weights: their mean is the good weights, with wrong statistics.
    deltas = [noise.normal(scale=0.3, size=w.shape).astype("float32") for w in good]
    stale = [np.full_like(w, 5.0) if i in (4, 5) else w for i, w in enumerate(good)]  # moving mean, variance
    pairs = list(zip(stale, deltas, strict=True))
    average = _average_of([w + d for w, d in pairs], [w - d for w, d in pairs])

    chosen, record = averaging.average_if_better(best, average, images, images, labels, 0.1, load_copy=_model)
    assert chosen is not best and record["kept"] and record["epochs"] == 2
    assert (record["first_epoch"], record["last_epoch"], record["batch_norm_layers"], record["images"]) == (1, 2, 1, 40)
    assert record["left_alone"] == 0
    assert record["validation_loss_average"] < record["validation_loss_best"]
    assert record["validation_accuracy_average"] == 1.0
    chosen_weights = chosen.get_weights()  # the good weights, statistics recomputed
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(chosen_weights, good, strict=True))
    assert "average kept" in averaging.describe(record)


def test_the_best_model_stays_when_the_average_does_not_beat_it(images, monkeypatch):
    best = _model()
    average = _average_of(best.get_weights(), best.get_weights())
    labels = np.zeros(len(images), int)
    for best_score, average_score in [((1.0, 0.5), (1.0, 0.6)), ((1.0, 0.5), (1.2, 0.6))]:  # a tie, then worse
        scores = iter([best_score, average_score])
        monkeypatch.setattr(averaging, "validation_scores", lambda *args, scores=scores: next(scores))
        chosen, record = averaging.average_if_better(best, average, images, images, labels, load_copy=_model)
        assert chosen is best and not record["kept"] and "best epoch kept" in averaging.describe(record)
        assert (record["validation_loss_best"], record["validation_loss_average"]) == (1.0, average_score[0])


def test_a_damaged_average_is_one_clear_error(tmp_path):
    from xai_fer.errors import UserError

    store = CheckpointStore(tmp_path)
    store.save(SavesAZip(), SavesAZip(), 1, {"val_loss": [1.0]}, {}, {"model": "cnn", "model_options": {}},
               average=_average_of([np.zeros(2)]))
    (store.dir / "average-001.npz").write_bytes(b"PK\x03\x04 cut short in a copy")
    with pytest.raises(UserError, match="cannot read .*average-001.npz") as error:
        store.read_average()
    assert "next to its state.json" in error.value.hint
    (store.dir / "average-001.npz").unlink()
    with pytest.raises(UserError, match="cannot read .*average-001.npz"):
        store.read_average()


def test_weights_from_says_which_model_was_shipped():
    assert averaging.weights_from({"best_epoch": 7, "weight_averaging": None}) == "best epoch 7"
    record = {"kept": True, "first_epoch": 3, "last_epoch": 16}
    assert averaging.weights_from({"best_epoch": 7, "weight_averaging": record}) == "average of epochs 3-16"
    assert averaging.weights_from({"best_epoch": 7, "weight_averaging": {**record, "kept": False}}) == "best epoch 7"


def test_one_epoch_is_not_an_average(images, monkeypatch):
    monkeypatch.setattr(averaging, "validation_scores", lambda *args: pytest.fail("evaluated"))
    best = _model()
    chosen, record = averaging.average_if_better(best, _average_of(best.get_weights()), images, images,
                                                 np.zeros(40, int), load_copy=pytest.fail)
    assert chosen is best and record["epochs"] == 1 and not record["kept"]
    assert "too few to compare" in averaging.describe(record)
