"""Batch-norm folding (used by activation-max): the folded copy computes what the model computes, folds only
what is safe to fold, and gives up (None) rather than return something different."""

import numpy as np
import pytest
from tiny_models import batch_norm_branches, residual_separable_rgb64

from xai_fer.explain.filter_head import feature_model
from xai_fer.models import fold
from xai_fer.models.fold import fold_batch_norm, foldable_pairs


@pytest.fixture(scope="module")
def model():
    return batch_norm_branches()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 1, (3, 48, 48, 1)).astype(np.float32)


def test_folds_only_convs_whose_sole_consumer_is_the_batch_norm(model):
    pairs = foldable_pairs(model)
    assert {conv: bn.name for conv, bn in pairs.items()} == {"conv_a": "bn_a", "conv_b": "bn_b"}


def test_folded_model_gives_the_same_outputs(model, images):
    folded = fold_batch_norm(model, check_input=images)
    assert folded is not None
    assert not any(type(layer).__name__ == "BatchNormalization" and layer.name in ("bn_a", "bn_b")
                   for layer in folded.layers)
    assert folded.get_layer("conv_a").use_bias and not model.get_layer("conv_a").use_bias
    np.testing.assert_allclose(folded(images), model(images), rtol=1e-4, atol=1e-5)


def test_features_cut_at_a_conv_keep_that_convs_batch_norm_out(model, images):
    """The target conv's own batch norm is not part of the feature model: its raw output must stay raw."""
    features = feature_model(model, "conv_b")
    folded = fold_batch_norm(features, check_input=images)
    assert set(foldable_pairs(features)) == {"conv_a"}
    np.testing.assert_allclose(folded(images), features(images), rtol=1e-4, atol=1e-5)


def test_nothing_to_fold_gives_none():
    assert fold_batch_norm(residual_separable_rgb64()) is None


def test_a_copy_that_differs_is_refused(model, images, monkeypatch):
    def wrong(conv, bn):
        kernel, bias = original(conv, bn)
        return kernel * 1.5, bias

    original = fold._folded_weights
    monkeypatch.setattr(fold, "_folded_weights", wrong)
    assert fold_batch_norm(model, check_input=images) is None
    assert fold_batch_norm(model) is not None  # without a check the (wrong) copy would be used


def test_the_original_model_is_left_untouched(model, images):
    before = model(images)
    weights = [w.copy() for w in model.get_weights()]
    fold_batch_norm(model, check_input=images)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
    np.testing.assert_array_equal(model(images), before)
    feature_model(model, "conv_top")  # still one inbound node per layer: .output works


def test_the_study_cnn_folds_under_activation_maxs_default_layer():
    """What activation-max relies on for its speed: every batch norm before block2_conv2 folds, checked."""
    from xai_fer_plugins.cnn import Cnn, CnnOptions

    cnn = Cnn().build((48, 48, 1), 7, CnnOptions())
    features = feature_model(cnn, "block2_conv2")
    assert set(foldable_pairs(features)) == {"block1_conv1", "block1_conv2", "block1_conv3", "block2_conv1"}
    noise = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype(np.float32)
    assert fold_batch_norm(features, check_input=noise) is not None
