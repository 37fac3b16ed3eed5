"""Batch-norm recalibration (``recalibrate_batch_norm``): exact statistics layer by layer, nothing but the
statistics changes, and the result is kept only when it lowers the validation loss."""

from __future__ import annotations

import numpy as np
import pytest

from xai_fer.training import recalibration


def _model_with_stale_statistics():
    """Conv -> BN -> dropout -> dense -> BN -> softmax, with moving statistics far from the truth (as after
    training on augmented images through dropout)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(4)
    inputs = keras.Input((12, 12, 1))
    x = layers.Rescaling(1 / 255.0)(inputs)
    x = layers.Conv2D(3, 3, name="conv")(x)
    x = layers.BatchNormalization(name="bn_conv")(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(5, name="dense")(x)
    x = layers.BatchNormalization(name="bn_dense")(x)
    model = keras.Model(inputs, layers.Dense(4, activation="softmax", name="out")(x))
    for layer in recalibration.batch_norm_layers(model):
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, 3.0, "float32"))
        layer.moving_variance.assign(np.full(layer.moving_variance.shape, 9.0, "float32"))
    return model


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(70, 12, 12, 1)).astype("float32")


def _weights(model, statistics: bool):
    names = ("moving_mean", "moving_variance")
    return {v.path: np.asarray(v) for v in model.weights if any(n in v.path for n in names) == statistics}


def test_statistics_are_the_exact_moments_of_each_layers_input(images):
    import keras

    model = _model_with_stale_statistics()
    learned = _weights(model, statistics=False)
    assert recalibration.recalibrate_batch_norm(model, images, batch_size=16) == 2  # batches of 16, 16, ..., 6

    conv = keras.Model(model.inputs, model.get_layer("conv").output).predict(images, verbose=0)
    bn = model.get_layer("bn_conv")
    assert np.allclose(bn.moving_mean, conv.mean(axis=(0, 1, 2)), atol=1e-5)
    assert np.allclose(bn.moving_variance, conv.var(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    # The second layer's input is computed with the first one already recalibrated (and dropout off).
    dense = keras.Model(model.inputs, model.get_layer("dense").output).predict(images, verbose=0)
    bn = model.get_layer("bn_dense")
    assert np.allclose(bn.moving_mean, dense.mean(axis=0), atol=1e-5)
    assert np.allclose(bn.moving_variance, dense.var(axis=0), rtol=1e-4, atol=1e-6)

    after = _weights(model, statistics=False)
    assert learned.keys() == after.keys() and all(np.array_equal(learned[k], after[k]) for k in learned)


def test_recalibration_is_kept_when_it_lowers_the_validation_loss(images):
    model = _model_with_stale_statistics()
    reference = _model_with_stale_statistics()
    recalibration.recalibrate_batch_norm(reference, images)
    labels = reference.predict(images, verbose=0).argmax(axis=1)  # what correct statistics predict

    record = recalibration.recalibrate_if_better(model, images, images, labels, label_smoothing=0.1)
    assert record["kept"] and record["layers"] == 2 and record["images"] == 70 and record["left_alone"] == 0
    assert record["validation_loss_after"] < record["validation_loss_before"]
    loss, accuracy = recalibration.validation_scores(_model_with_stale_statistics(), images, labels, 0.1)
    assert (record["validation_loss_before"], record["validation_accuracy_before"]) == pytest.approx((loss, accuracy))
    assert record["validation_accuracy_after"] == 1.0  # the labels are what the recalibrated model predicts
    stats = _weights(model, statistics=True)
    expected = _weights(reference, statistics=True)
    assert all(np.allclose(stats[k], expected[k]) for k in stats)


def test_recalibration_is_undone_when_it_raises_the_validation_loss(images, monkeypatch):
    model = _model_with_stale_statistics()
    before = _weights(model, statistics=True)
    scores = iter([(1.0, 0.5), (2.0, 0.6)])  # before, after: recalibrating made the loss worse
    monkeypatch.setattr(recalibration, "validation_scores", lambda *args: next(scores))

    record = recalibration.recalibrate_if_better(model, images, images, np.zeros(70, int))
    assert not record["kept"] and (record["validation_loss_before"], record["validation_loss_after"]) == (1.0, 2.0)
    after = _weights(model, statistics=True)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_a_tie_keeps_the_statistics_training_left(images, monkeypatch):
    model = _model_with_stale_statistics()
    monkeypatch.setattr(recalibration, "validation_scores", lambda *args: (1.5, 0.5))
    assert not recalibration.recalibrate_if_better(model, images, images, np.zeros(70, int))["kept"]
    assert np.allclose(model.get_layer("bn_conv").moving_mean, 3.0)


def test_statistics_come_from_a_seeded_sample_of_at_most_max_images(images, monkeypatch):
    seen = []
    monkeypatch.setattr(recalibration, "recalibrate_batch_norm", lambda model, x: seen.append(x) or 2)
    model = _model_with_stale_statistics()
    for seed in (0, 0, 1):
        record = recalibration.recalibrate_if_better(model, images, images[:5], np.zeros(5, int), max_images=32,
                                                     seed=seed)
        assert record["images"] == 32
    assert all(len(x) == 32 for x in seen) and np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[0], seen[2])
    assert all(any(np.array_equal(row, image) for image in images) for row in seen[0][:3])


def test_nested_and_shared_batch_norm_layers_are_counted_and_left_alone(images):
    import keras
    from keras import layers

    inner = keras.Sequential([keras.Input((12, 12, 1)), layers.BatchNormalization(name="nested_bn")], name="inner")
    shared = layers.BatchNormalization(name="shared_bn")
    inputs = keras.Input((12, 12, 1))
    x = layers.Add()([shared(inner(inputs)), shared(inputs)])
    x = layers.BatchNormalization(name="top_bn")(x)
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(layers.Flatten()(x)))
    assert [layer.name for layer in recalibration.batch_norm_layers(model)] == ["top_bn"]
    record = recalibration.recalibrate_if_better(model, images, images, np.zeros(70, int))
    assert record["layers"] == 1 and record["left_alone"] == 2
    assert np.allclose(model.get_layer("shared_bn").moving_mean, 0) and np.allclose(inner.layers[0].moving_mean, 0)


def test_a_model_without_batch_norm_is_not_evaluated(images, monkeypatch):
    import keras

    monkeypatch.setattr(recalibration, "validation_scores", lambda *args: pytest.fail("evaluated"))
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    record = recalibration.recalibrate_if_better(model, images, images, np.zeros(70, int))
    assert record["layers"] == 0 and not record["kept"] and record["validation_loss_before"] is None
    assert recalibration.describe(record).startswith("batch-norm statistics not recomputed")


def test_validation_loss_is_label_smoothed_cross_entropy():
    class Fixed:
        def predict(self, x, batch_size=None, verbose=0):
            return np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])

    loss, accuracy = recalibration.validation_scores(Fixed(), np.zeros((2, 1)), np.array([0, 1]), label_smoothing=0.3)
    row0 = -(0.8 * np.log(0.5) + 0.1 * np.log(0.25) * 2)
    row1 = -(0.1 * np.log(0.1) + 0.8 * np.log(0.1) + 0.1 * np.log(0.8))
    assert loss == pytest.approx((row0 + row1) / 2) and accuracy == 0.5
