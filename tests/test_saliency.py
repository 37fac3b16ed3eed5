"""The saliency explainer and the shared input-gradient code: gradients against central finite differences,
logit vs probability scores, the percentile mask, constant images, option handling, and the mechanics on
tiny models of every shape (the residual 64x64x3 model is also the regression test for TensorFlow's
eager-backward crash: all gradients must be compiled)."""

import json

import keras
import numpy as np
import pytest
import tiny_models
from xai_fer_plugins.saliency import Saliency, SaliencyOptions

from xai_fer.data import FER2013_CLASSES, Dataset
from xai_fer.errors import UserError
from xai_fer.explain.context import ExplainContext
from xai_fer.explain.gradients import _compiled_gradient, input_gradients, saliency_maps, threshold_masks
from xai_fer.models.adapt import InputAdapter
from xai_fer.models.introspect import inspect_model
from xai_fer.options import parse_options


def _context(model, dataset, scaling="unit"):
    info = inspect_model(model)
    return ExplainContext(model, info, dataset, InputAdapter(scaling, tuple(dataset.images.shape[1:]),
                                                             info.input_shape))


def _float64(builder, **kwargs):
    """A tiny model built entirely in float64, for finite differences without float32 round-off."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")  # inputs
    keras.config.set_dtype_policy("float64")  # layers (the global policy no longer follows floatx once set)
    try:
        model = builder(**kwargs)
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    assert all(w.dtype == "float64" for w in model.weights) and model.inputs[0].dtype == "float64"
    return model


@pytest.mark.parametrize("builder, scaling", [
    (tiny_models.sequential_fused_softmax, "unit"),
    (tiny_models.functional_separate_softmax, "unit"),
    (tiny_models.residual_separable_rgb64, "symmetric"),  # 48x48x1 data -> 64x64x3 model
])
def test_saliency_on_tiny_models(tiny_dataset, builder, scaling, tmp_path):
    context = _context(builder(), tiny_dataset, scaling)
    artifact = Saliency().explain(context, SaliencyOptions(per_class=1))
    a, s = artifact.arrays, artifact.summary

    np.testing.assert_array_equal(a["indices"], np.arange(7))  # first image of each true class
    assert a["maps"].shape == (7, 48, 48) and a["maps"].dtype == np.float32  # the data's resolution
    assert np.isfinite(a["maps"]).all() and a["maps"].min() >= 0
    np.testing.assert_allclose(a["maps"].max(axis=(1, 2)), 1.0)  # non-zero gradients, scaled per image
    assert a["masks"].dtype == bool and a["masks"].shape == (7, 48, 48)
    np.testing.assert_array_equal(a["target_classes"], context.predictions[:7])
    assert s["selection"] == {"mode": "per_class", "per_class": 1, "grouped_by": "true"}
    assert s["score"] == "logit" and s["target"] == "predicted" and s["threshold_percentile"] == 90
    first = s["images"][0]
    assert first["row"] == 0 and first["true"] == "Angry"
    assert first["predicted"] == FER2013_CLASSES[context.predictions[0]]
    assert first["probability"] == pytest.approx(float(context.probabilities[0].max()))
    assert 0 < first["fraction_kept"] <= 0.1 + 1 / 48**2  # linear interpolation: up to one pixel over 10%
    assert list(artifact.figures) == [f"image_{row}" for row in range(7)] + ["grid"]
    json.dumps(s, allow_nan=False)
    artifact.write(tmp_path)
    artifact.close()
    assert (tmp_path / "grid.png").exists() and (tmp_path / "image_6.png").exists()


@pytest.mark.parametrize("builder", [tiny_models.sequential_fused_softmax, tiny_models.functional_separate_softmax])
def test_gradients_match_central_finite_differences(builder):
    model = _float64(builder, input_shape=(12, 12, 1), classes=3)
    rng = np.random.default_rng(5)
    images = rng.uniform(0, 255, (2, 12, 12, 1))
    dataset = Dataset(images=images, labels=np.array([0, 1]), class_names=("a", "b", "c"), source="fd")
    context = _context(model, dataset, "unit")
    classes = np.array([2, 1])

    # Independent references, in float64: probabilities straight from the model, logits by applying the last
    # Dense layer's weights by hand to the features it receives.
    last_dense = next(layer for layer in reversed(model.layers) if isinstance(layer, keras.layers.Dense))
    features = keras.Model(model.inputs[0], last_dense.input)
    kernel, bias = (np.asarray(w, np.float64) for w in last_dense.get_weights())

    def logit(x, k):
        return float((np.asarray(features(x[None] / 255.0), np.float64) @ kernel + bias)[0, classes[k]])

    def probability(x, k):
        return float(np.asarray(model(x[None] / 255.0), np.float64)[0, classes[k]])

    gradients = {
        "logit": input_gradients(context.data_model(logits=True), images, classes, batch_size=2),
        "probability": input_gradients(context.data_model(logits=False), images, classes, batch_size=2),
    }
    h = 1e-3  # pixels on the 0-255 scale
    for score, reference in (("logit", logit), ("probability", probability)):
        g = gradients[score]
        for k in range(2):
            order = np.argsort(np.abs(g[k]).ravel())[::-1]  # strongest, and a few weaker non-zero pixels
            pixels = [np.unravel_index(i, g[k].shape) for i in order[[0, 5, 20, 40]]]
            assert np.abs(g[k][pixels[-1]]) > 0
            for pixel in pixels:
                plus, minus = images[k].copy(), images[k].copy()
                plus[pixel] += h
                minus[pixel] -= h
                numeric = (reference(plus, k) - reference(minus, k)) / (2 * h)
                assert float(g[k][pixel]) == pytest.approx(numeric, rel=1e-4, abs=1e-6 * float(np.abs(g[k]).max())), \
                    (score, k, pixel)
    assert not np.allclose(gradients["logit"], gradients["probability"])


def test_logit_and_probability_scores_give_different_maps(tiny_dataset):
    context = _context(tiny_models.functional_separate_softmax(), tiny_dataset)
    options = {"indices": (0, 3, 5), "image_figures": False}
    logit = Saliency().explain(context, SaliencyOptions(**options))
    probability = Saliency().explain(context, SaliencyOptions(score="probability", **options))
    assert probability.summary["score"] == "probability"
    assert not np.allclose(logit.arrays["maps"], probability.arrays["maps"], atol=1e-3)
    # Same explainer maps as the shared helpers give.
    grads = input_gradients(context.data_model(logits=True), context.images([0, 3, 5]), context.predictions[[0, 3, 5]])
    np.testing.assert_allclose(logit.arrays["maps"], saliency_maps(grads), rtol=1e-5, atol=1e-6)
    logit.close()
    probability.close()


def test_mask_keeps_exactly_the_pixels_above_the_percentile(tiny_dataset):
    maps = np.arange(100, dtype=np.float32).reshape(1, 10, 10) / 99
    masks, thresholds = threshold_masks(maps, 90)
    assert thresholds[0] == pytest.approx(np.percentile(maps[0], 90))
    assert masks.sum() == 10 and masks[0].ravel()[90:].all()
    ties, _ = threshold_masks(np.ones((1, 4, 4)), 50)
    assert not ties.any()  # strictly above: a constant map keeps nothing

    context = _context(tiny_models.sequential_fused_softmax(), tiny_dataset)
    artifact = Saliency().explain(context, SaliencyOptions(indices=(1, 2), threshold_percentile=75,
                                                           image_figures=False))
    for k, row in enumerate((1, 2)):
        m = artifact.arrays["maps"][k]
        expected = m > np.percentile(m, 75)
        np.testing.assert_array_equal(artifact.arrays["masks"][k], expected)
        assert artifact.summary["images"][k]["fraction_kept"] == pytest.approx(expected.mean())
        assert artifact.summary["images"][k]["row"] == row
    artifact.close()


def test_constant_images_give_finite_maps_and_zero_gradient_gives_zero_maps():
    assert not saliency_maps(np.zeros((2, 5, 5, 3))).any()
    assert not np.isnan(saliency_maps(np.full((1, 3, 3, 1), np.nan))).any()

    # A model whose gradient at an all-zero image is exactly zero: bias-free ReLU conv sees only zeros.
    keras.utils.set_random_seed(4)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(3, 3, use_bias=False, activation="relu")(inputs)
    x = keras.layers.GlobalMaxPooling2D()(x)
    zero_grad = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(x))
    images = np.stack([np.zeros((48, 48, 1)), np.full((48, 48, 1), 128.0)]).astype(np.uint8)
    dataset = Dataset(images=images, labels=np.array([0, 1]), class_names=FER2013_CLASSES, source="constant")
    for model, scaling in ((zero_grad, "unit"), (tiny_models.residual_separable_rgb64(), "standardize")):
        artifact = Saliency().explain(_context(model, dataset, scaling),
                                      SaliencyOptions(indices=(0, 1), image_figures=False))
        maps = artifact.arrays["maps"]
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
        if model is zero_grad:
            assert not maps[0].any() and not artifact.arrays["masks"][0].any()
            assert artifact.summary["images"][0]["zero_gradient"]
            assert artifact.summary["images"][0]["fraction_kept"] == 0
        json.dumps(artifact.summary, allow_nan=False)
        artifact.close()


def test_selection_and_targets(tiny_dataset):
    context = _context(tiny_models.sequential_fused_softmax(), tiny_dataset)
    context.probabilities = np.eye(7, dtype=np.float32)[[0, 0, 0, 3, 4, 4, 6, 0, 1, 0, 3, 3, 5, 6]]  # known
    explain = Saliency().explain

    per_class = explain(context, SaliencyOptions(per_class=2, image_figures=False, target="true"))
    np.testing.assert_array_equal(per_class.arrays["indices"], [0, 7, 1, 8, 2, 9, 3, 10, 4, 11, 5, 12, 6, 13])
    np.testing.assert_array_equal(per_class.arrays["target_classes"], tiny_dataset.labels[per_class.arrays["indices"]])
    per_class.close()

    wrong = explain(context, SaliencyOptions(select="misclassified", count=3, image_figures=False))
    np.testing.assert_array_equal(wrong.arrays["indices"], [1, 2, 5])  # predicted 0, 0, 4 for 1, 2, 5
    np.testing.assert_array_equal(wrong.arrays["target_classes"], [0, 0, 4])
    assert wrong.summary["selection"]["misclassified_total"] == 5  # rows 1, 2, 5, 9, 11
    assert [i["predicted"] for i in wrong.summary["images"]] == ["Angry", "Angry", "Sad"]
    wrong.close()

    by_name = explain(context, SaliencyOptions(indices=(4, 4, 2), target="happy", image_figures=False))
    np.testing.assert_array_equal(by_name.arrays["indices"], [4, 2])  # duplicates dropped, order kept
    np.testing.assert_array_equal(by_name.arrays["target_classes"], [3, 3])
    assert list(by_name.figures) == ["grid"]
    by_name.close()


def test_options_are_checked_before_any_work(tiny_dataset):
    parsed = parse_options(SaliencyOptions, {"indices": "3,1", "target": "2", "score": "probability"}, "saliency")
    assert parsed.indices == (3, 1) and parsed.target == "2" and parsed.score == "probability"
    for raw in ({"score": "softmax"}, {"threshold_percentile": "120"}, {"target": "-1"}, {"per_class": "0"},
                {"select": "indices"}, {"select": "misclassified", "indices": "1"}):
        with pytest.raises(UserError):
            parse_options(SaliencyOptions, raw, "saliency")

    model = tiny_models.sequential_fused_softmax()
    with pytest.raises(UserError, match="target class 7 does not exist"):
        Saliency().validate(inspect_model(model), SaliencyOptions(target="7"))
    Saliency().validate(inspect_model(model), SaliencyOptions(target="6"))

    unlabelled = Dataset(images=tiny_dataset.images[:3], labels=None, class_names=FER2013_CLASSES, source="u")
    context = _context(model, unlabelled)
    with pytest.raises(UserError, match="needs labels"):
        Saliency().explain(context, SaliencyOptions(target="true"))
    with pytest.raises(UserError, match="needs labels"):
        Saliency().explain(context, SaliencyOptions(select="misclassified"))
    with pytest.raises(UserError, match="out of range"):
        Saliency().explain(context, SaliencyOptions(indices=(3,)))
    with pytest.raises(UserError, match="unknown target"):
        Saliency().explain(context, SaliencyOptions(target="Bored"))
    ok = Saliency().explain(context, SaliencyOptions(per_class=5, image_figures=False))  # by predicted class
    assert ok.summary["selection"]["grouped_by"] == "predicted" and len(ok.arrays["indices"]) == 3
    assert ok.summary["images"][0]["true"] is None
    ok.close()


def test_problems_only_predictions_reveal_are_caught_before_any_explainer_runs(tiny_dataset):
    model = tiny_models.sequential_fused_softmax()
    context = _context(model, tiny_dataset)
    right = Dataset(images=tiny_dataset.images, labels=context.predictions, class_names=FER2013_CLASSES,
                    source="all right")
    with pytest.raises(UserError, match="no misclassified images"):
        Saliency().check(_context(model, right), SaliencyOptions(select="misclassified"))
    # A softmax xai-fer cannot see (inside a custom layer) cannot be removed: score=logit falls back to the
    # output probability, says so, and gives the probability's maps.
    hidden = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(7),
                               _HiddenSoftmax()])
    hidden_context = _context(hidden, tiny_dataset)
    assert hidden_context.outputs_are_probabilities and not hidden_context.pre_softmax_available
    fallback, probability = (Saliency().explain(hidden_context, SaliencyOptions(score=score, image_figures=False))
                             for score in ("logit", "probability"))
    assert "score=logit fell back to it" in fallback.summary["score_note"]
    np.testing.assert_array_equal(fallback.arrays["maps"], probability.arrays["maps"])


class _HiddenSoftmax(keras.layers.Layer):
    def call(self, x):
        return keras.ops.softmax(x)


def test_logit_scores_of_a_nested_classifier_are_its_inner_logits(tiny_dataset):
    model = tiny_models.nested_softmax()
    inner = model.layers[-1]
    context = _context(model, tiny_dataset, "raw")
    assert context.pre_softmax_available and context.info.softmax_layer == f"{inner.name}/softmax"
    images = tiny_dataset.images[:4].astype("float32")
    expected = keras.Model(inner.inputs, inner.get_layer("logits").output)(images)
    np.testing.assert_allclose(context.data_model(logits=True)(images), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(context.data_model(logits=False)(images), model(images), rtol=1e-5, atol=1e-6)


def test_a_model_that_outputs_logits_gets_probabilities_from_data_model(tiny_dataset):
    logits = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(7)])
    context = _context(logits, tiny_dataset, "unit")
    images = tiny_dataset.images[:4].astype("float32")
    probabilities = np.asarray(context.data_model(logits=False)(images))
    np.testing.assert_allclose(probabilities, keras.ops.softmax(logits(images / 255.0)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context.probabilities[:4], probabilities, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context.data_model(logits=True)(images), logits(images / 255.0), rtol=1e-5)


def test_one_compiled_function_serves_every_batch_size():
    model = tiny_models.functional_separate_softmax(input_shape=(12, 12, 1), classes=3)
    images = np.random.default_rng(1).uniform(0, 255, (7, 12, 12, 1)).astype(np.float32)
    whole = input_gradients(model, images, 1, batch_size=7)
    batched = input_gradients(model, images, 1, batch_size=3)  # batches of 3, 3, 1
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-7)
    assert _compiled_gradient(model, False).compiled.experimental_get_tracing_count() == 1
    assert input_gradients(model, images[:0], 1).shape == (0, 12, 12, 1)


@pytest.mark.real_data
def test_saliency_on_real_fer2013(fer2013_h5):
    from xai_fer_plugins.hdf5 import Hdf5Format

    data = Hdf5Format().load(fer2013_h5).select_split("PrivateTest").subset(slice(0, 300))
    context = _context(tiny_models.sequential_fused_softmax(), data)
    artifact = Saliency().explain(context, SaliencyOptions(per_class=1, image_figures=False))
    rows = artifact.arrays["indices"]
    present = np.unique(data.labels)
    assert len(rows) == len(present) and sorted(data.labels[rows]) == list(present)  # one per true class
    assert artifact.arrays["maps"].shape == (len(rows), 48, 48) and np.isfinite(artifact.arrays["maps"]).all()
    assert all(0 < image["fraction_kept"] <= 0.1 + 1 / 48**2 for image in artifact.summary["images"])
    artifact.close()
