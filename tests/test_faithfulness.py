"""The faithfulness explainer: deletion and insertion against hand computations on a linear model, the random and
Sobel baselines, the verdicts, the cascading randomisation check, the planner's order and check()'s refusal, and
end-to-end runs (including the strided 1x1 conv model, whose eager backward pass crashes TensorFlow on this CPU,
through a third-party method written on the attribution core)."""

from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
import pytest
import tiny_models
from keras import layers
from scipy.ndimage import gaussian_filter
from xai_fer_plugins.faithfulness import Faithfulness, FaithfulnessOptions
from xai_fer_plugins.saliency import Saliency

from xai_fer import registry
from xai_fer.data import Dataset
from xai_fer.errors import UserError
from xai_fer.explain import faithfulness_scoring
from xai_fer.explain.attribution import Attribution, AttributionOptions
from xai_fer.explain.context import ExplainContext
from xai_fer.explain.faithfulness_scoring import (
    RANDOM,
    SOBEL,
    curve_ends,
    perturbation_curves,
    pixel_order,
    random_maps,
    sobel_maps,
    trapezoid_auc,
)
from xai_fer.explain.faithfulness_verdicts import comparison, mean_se, verdict
from xai_fer.explain.html import render_index
from xai_fer.explain.images import blur_sigma
from xai_fer.explain.pipeline import run_explainers
from xai_fer.explain.plan import plan_explainers
from xai_fer.explain.randomisation import Cascade, spearman, stage_counts, weighted_layers
from xai_fer.models.adapt import InputAdapter
from xai_fer.models.introspect import inspect_model
from xai_fer.options import option, parse_options

GREY = 127.5


@dataclass
class ProductOptions(AttributionOptions):
    baseline: Literal["black", "mid-grey"] = option("black", "what the input is measured from")


class GradientTimesInput(Attribution):
    """A third-party method on the core: gradient x (input - baseline), signed, through the engine only."""

    name = "test-gradient-x-input"
    description = "gradient x input (test)"
    Options = ProductOptions
    signed = True

    def attribute(self, engine, images, targets, options):
        baseline = 0.0 if options.baseline == "black" else engine.mid_grey
        return (engine.gradients(images, targets) * (images - baseline)).sum(axis=-1)


class ImageBrightness(Attribution):
    """A "method" that ignores the model: its maps survive any randomisation."""

    name = "test-brightness"
    description = "the image itself (test)"
    needs_gradients = False

    def attribute(self, engine, images, targets, options):
        return images.mean(axis=-1) + 1.0


def _context(model, dataset, scaling="unit", seed=0):
    info = inspect_model(model)
    return ExplainContext(model, info, dataset, InputAdapter(scaling, tuple(dataset.images.shape[1:]),
                                                             info.input_shape), seed=seed)


def _dataset(n=6, size=12, seed=0):
    images = np.random.default_rng(seed).integers(1, 256, (n, size, size, 1)).astype(np.uint8)  # no 0: no ties
    return Dataset(images=images, labels=np.arange(n) % 2, class_names=("a", "b"), source="test")


def _linear(size=12):
    """Two classes, pixels -> Dense, no conv: class 0's logit is sum(w * x / 255) and class 1's is 0, so the
    probability of class 0 is sigmoid(sum(w * x / 255))."""
    inputs = keras.Input((size, size, 1))
    logits = layers.Dense(2, name="logits")(layers.Flatten()(inputs))
    model = keras.Model(inputs, layers.Activation("softmax")(logits), name="linear")
    w = np.random.default_rng(1).normal(0, 0.05, size * size)
    model.get_layer("logits").set_weights([np.stack([w, np.zeros_like(w)], axis=1), np.zeros(2)])
    return model, w


def _probability(w, images):
    z = images.reshape(len(images), -1).astype(np.float64) @ w / 255
    return 1 / (1 + np.exp(-z))


def _explained(context, method, **values):
    options = method.Options(**{"image_figures": False, **values})
    method.explain(context, options).close()
    return context.attributions[method.name]


# ---------------------------------------------------------------------------------------------------------
# Deletion and insertion on a linear model, against hand computations.


def test_linear_model_ranks_pixels_exactly_by_weight_times_input():
    model, w = _linear()
    data = _dataset()
    context = _context(model, data)
    result = _explained(context, GradientTimesInput(), target="0", indices=tuple(range(6)))
    x = data.images[..., 0].reshape(6, -1).astype(np.float64)
    np.testing.assert_allclose(result.maps.reshape(6, -1), w * x / 255, rtol=1e-4, atol=1e-7)

    by_magnitude = pixel_order(result.maps, True, "magnitude", result.rows, seed=0)
    np.testing.assert_array_equal(by_magnitude, np.argsort(-np.abs(w * x), axis=1))
    positive_first = pixel_order(result.maps, True, "positive", result.rows, seed=0)
    np.testing.assert_array_equal(positive_first, np.argsort(-(w * x), axis=1))


@pytest.mark.parametrize("pairs_per_block", [None, 5])  # one block; blocks of 5 (image, step) pairs across images
def test_deletion_and_insertion_curves_equal_a_hand_computation(pairs_per_block, monkeypatch):
    if pairs_per_block:
        monkeypatch.setattr(faithfulness_scoring, "_PERTURBED_BYTES", 2 * 12 * 12 * 4 * pairs_per_block)
    model, w = _linear()
    data = _dataset()
    context = _context(model, data)
    engine = context.attribution_engine("probability", batch_size=7)  # batches cut across images and steps
    images = data.images.astype(np.float32)
    orders = np.stack([np.random.default_rng(k).permutation(144) for k in range(6)])
    deletion, insertion = perturbation_curves(engine, images, np.zeros(6, int), orders, steps=8)
    assert deletion.shape == insertion.shape == (6, 9)

    counts = np.round(np.linspace(0, 144, 9)).astype(int)
    blurred = gaussian_filter(images[..., 0], sigma=(0, blur_sigma(12, 12), blur_sigma(12, 12)), mode="reflect")
    for k in range(6):
        original = images[k, ..., 0].ravel()
        for step, count in enumerate(counts):
            gone = original.copy()
            gone[orders[k, :count]] = GREY
            back = blurred[k].ravel().copy()
            back[orders[k, :count]] = original[orders[k, :count]]
            assert deletion[k, step] == pytest.approx(_probability(w, gone[None])[0], abs=2e-6)
            assert insertion[k, step] == pytest.approx(_probability(w, back[None])[0], abs=2e-6)
    np.testing.assert_allclose(deletion[:, 0], insertion[:, -1], atol=1e-6)  # both: the original image
    # The ends every map of an image shares, scored once: the steps between computed, the same curves
    ends = curve_ends(engine, images, np.zeros(6, int))
    shared = perturbation_curves(engine, images, np.zeros(6, int), orders, steps=8, ends=ends)
    np.testing.assert_allclose(shared[0], deletion, atol=2e-6)
    np.testing.assert_allclose(shared[1], insertion, atol=2e-6)


def test_the_exact_contribution_map_deletes_fastest_and_random_lies_between():
    """Deleting the pixels with the largest w * (x - grey) first lowers the class-0 logit as far as any choice
    of that many pixels can, at every step: its curve is the lowest possible, the reverse order the highest."""
    model, w = _linear()
    data = _dataset(n=8)
    context = _context(model, data)
    engine = context.attribution_engine("probability")
    result = _explained(context, GradientTimesInput(), target="0", baseline="mid-grey", indices=tuple(range(8)))
    x = data.images[..., 0].reshape(8, -1).astype(np.float64)
    np.testing.assert_allclose(result.maps.reshape(8, -1), w * (x - GREY) / 255, rtol=1e-4, atol=1e-7)

    images, targets = data.images.astype(np.float32), np.zeros(8, int)
    best = pixel_order(result.maps, True, "positive", result.rows, 0)
    worst = best[:, ::-1]
    chance = pixel_order(random_maps(result.rows, 12, 12, 0), False, "magnitude", result.rows, 0)
    curves = {name: perturbation_curves(engine, images, targets, order, 16)[0]
              for name, order in (("best", best), ("random", chance), ("worst", worst))}
    assert (curves["best"] <= curves["random"] + 1e-6).all() and (curves["random"] <= curves["worst"] + 1e-6).all()
    auc = {name: trapezoid_auc(curve) for name, curve in curves.items()}
    assert (auc["best"] < auc["random"]).all() and (auc["random"] < auc["worst"]).all()


def test_auc_and_statistics():
    fractions = np.linspace(0, 1, 33)
    assert trapezoid_auc(fractions[None])[0] == pytest.approx(0.5)
    assert trapezoid_auc(np.full((1, 33), 0.3))[0] == pytest.approx(0.3)
    assert trapezoid_auc(np.array([[1.0, 0.0, 0.0]]))[0] == pytest.approx(0.25)  # trapezoid, not steps
    mean, se = mean_se([1.0, 2.0, 3.0])
    assert mean == 2 and se == pytest.approx(1 / np.sqrt(3))
    assert mean_se([4.0]) == (4.0, None) and mean_se([]) == (None, None)


def test_a_model_that_ignores_its_input_scores_every_map_at_its_constant_probability():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="out")(layers.Flatten()(inputs)))
    model.get_layer("out").set_weights([np.zeros((144, 2)), np.array([0.4, -0.3])])
    context = _context(model, _dataset())
    _explained(context, GradientTimesInput(), indices=(0, 1, 2, 3))
    artifact = Faithfulness().explain(context, FaithfulnessOptions(randomization=False, figure_images=0))
    p = float(np.exp(0.4) / (np.exp(0.4) + np.exp(-0.3)))
    for entry in artifact.summary["ranking"]:
        assert entry["deletion_auc"] == pytest.approx(p, abs=1e-6)
        assert entry["insertion_auc"] == pytest.approx(p, abs=1e-6)
    details = artifact.summary["details"]["test-gradient-x-input"]
    assert details["deletion_vs_random_verdict"] == details["insertion_vs_random_verdict"] == "not distinguishable"
    assert artifact.summary["randomization"] == "off"
    artifact.close()


# ---------------------------------------------------------------------------------------------------------
# Baselines.


def test_random_and_sobel_baselines():
    rows = np.array([3, 5, 3])
    maps = random_maps(rows, 10, 12, seed=0)
    assert maps.shape == (3, 10, 12) and maps.dtype == np.float32 and 0 <= maps.min() and maps.max() < 1
    np.testing.assert_array_equal(maps[0], maps[2])  # the same row gets the same map, for every method
    assert not np.allclose(maps[0], maps[1])
    assert not np.allclose(maps[0], random_maps(rows, 10, 12, seed=1)[0])

    step = np.zeros((1, 8, 8, 3), np.float32)
    step[:, :, 4:] = 200  # a vertical edge between columns 3 and 4
    edges = sobel_maps(step)
    assert edges.shape == (1, 8, 8)
    assert (edges[0, :, 3:5] > 0).all() and not edges[0, :, :2].any() and not edges[0, :, 6:].any()

    flat = np.zeros((1, 4, 4))  # a flat map: ties in a seeded random order, not raster order
    first, again = (pixel_order(flat, False, "magnitude", np.array([0]), 0) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert sorted(first[0]) == list(range(16)) and list(first[0]) != list(range(16))


# ---------------------------------------------------------------------------------------------------------
# Verdicts.


def test_verdicts():
    assert comparison(-0.05, 0.01, lower_is_better=True) == "better"  # deletion: lower AUC than random
    assert comparison(0.05, 0.01, lower_is_better=True) == "worse"
    assert comparison(0.05, 0.01, lower_is_better=False) == "better"  # insertion: higher AUC than random
    assert comparison(-0.019, 0.01, lower_is_better=True) == "not distinguishable"  # within 2 SE
    assert comparison(0.021, 0.01, lower_is_better=False) == "better"
    assert comparison(0.0, 0.0, lower_is_better=True) == "not distinguishable"
    assert comparison(0.1, None, lower_is_better=True) == "too few images"
    assert verdict(-0.005, 0.006, True) == "not distinguishable from random"
    assert verdict(0.09, 0.015, False) == "better than random"
    assert verdict(0.09, 0.015, True, "the Sobel edge map") == "worse than the Sobel edge map"
    assert verdict(0.09, None, True) == "too few images to compare with random"


# ---------------------------------------------------------------------------------------------------------
# Model-parameter randomisation.


def _mlp():
    keras.utils.set_random_seed(11)
    inputs = keras.Input((48, 48, 1))
    x = layers.Dense(16, activation="relu", name="hidden")(layers.Flatten()(inputs))
    return keras.Model(inputs, layers.Dense(7, activation="softmax", name="out")(x), name="mlp")


def test_cascade_randomises_from_the_top_down_seeded():
    model = tiny_models.residual_separable_rgb64()
    found = weighted_layers(model)
    assert isinstance(found[0], layers.Dense) and found[-1].name == "stem" and len(found) == 5
    names = [layer.name for layer in found]
    assert stage_counts(len(names)) == [1, 3, 5] and stage_counts(1) == [1] and stage_counts(2) == [1, 2]
    cascade = Cascade(model, seed=5)  # not 3: the seed the model was built with
    copy = cascade.copy(3)
    for k, (trained, copied) in enumerate(zip(weighted_layers(model), weighted_layers(copy), strict=True)):
        same = all(np.array_equal(a, b) for a, b in zip(trained.get_weights(), copied.get_weights(), strict=True))
        assert same == (k >= 3), trained.name  # the top three re-initialised, the rest trained
    again = Cascade(model, seed=5).copy(3)
    for a, b in zip(copy.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = Cascade(model, seed=6).copy(3)
    assert not np.array_equal(weighted_layers(copy)[0].get_weights()[0], weighted_layers(other)[0].get_weights()[0])


def test_spearman():
    a = np.random.default_rng(0).random((3, 50))
    np.testing.assert_allclose(spearman(a, a ** 3), 1.0)  # ranks only
    np.testing.assert_allclose(spearman(a, -a), -1.0)
    assert spearman(a[:1], np.zeros((1, 50)))[0] == 0  # a map that went flat kept no ranking
    assert np.isnan(spearman(np.zeros((1, 5)), np.zeros((1, 5)))[0])


def test_a_fully_randomised_models_maps_correlate_near_zero_with_the_trained_models(tiny_dataset):
    context = _context(_mlp(), tiny_dataset)
    _explained(context, Saliency(), indices=tuple(range(8)))
    artifact = Faithfulness().explain(context, FaithfulnessOptions(randomization_images=8, figure_images=0))
    check = artifact.summary["randomization_check"]
    assert check["status"] == "done" and check["stages"] == [1, 2] and check["stage_layers"][0] == ["out"]
    rho = artifact.arrays["saliency.randomization_rho"]
    assert rho.shape == (2, 8)
    assert np.abs(rho[-1]).max() < 0.1  # all layers randomised: no rank correlation left
    entry = check["methods"]["saliency"]
    assert abs(entry["rho_all_layers"]) < 0.1 and not entry["survives"]
    assert "its maps change" in artifact.summary["sentences"][0]["sentence"]
    artifact.close()


def test_the_runs_own_maps_stand_for_the_trained_models_only_where_a_method_allows_it(tiny_dataset):
    """Saliency and RISE maps do not depend on their chunk: the check takes the run's maps (made on 6 images at
    once) for the trained model's and gets the rho it gets by computing them again on the first 3."""
    from xai_fer_plugins.rise import Rise

    class RecomputedRise(Rise):
        name = "test-rise-recomputed"
        batch_independent = False

    class RecomputedSaliency(Saliency):
        name = "test-saliency-recomputed"
        batch_independent = False

    context = _context(tiny_models.sequential_fused_softmax(), tiny_dataset)
    for method in (Saliency(), RecomputedSaliency()):
        _explained(context, method, indices=tuple(range(6)))
    for method in (Rise(), RecomputedRise()):
        _explained(context, method, indices=tuple(range(6)), masks=40)
    artifact = Faithfulness().explain(context, FaithfulnessOptions(randomization_images=3, steps=4, figure_images=0))
    rho = artifact.arrays
    for name in ("saliency", "rise"):
        assert rho[f"{name}.randomization_rho"].shape == (len(artifact.summary["randomization_check"]["stages"]), 3)
        np.testing.assert_allclose(rho[f"{name}.randomization_rho"], rho[f"test-{name}-recomputed.randomization_rho"],
                                   atol=1e-5)
    artifact.close()


def test_the_check_randomises_the_models_own_weights_in_place_where_its_data_models_share_them(tiny_dataset,
                                                                                              monkeypatch):
    """A separate softmax layer: the data models hold the model's own variables, so each stage's weights go into
    the model itself (its compiled functions serve), the same rho as on a clone, and its trained weights come
    back. A softmax fused into the top layer has a twin holding a copy of its weights: a clone takes them."""
    from xai_fer_plugins.rise import Rise

    from xai_fer.explain import randomisation

    rho = {}
    for in_place in (True, False):
        model = tiny_models.functional_separate_softmax()
        trained = [w.copy() for w in model.get_weights()]
        context = _context(model, tiny_dataset)
        assert randomisation.shares_variables(context)
        if not in_place:
            monkeypatch.setattr(randomisation, "shares_variables", lambda context: False)
        _explained(context, Saliency(), indices=tuple(range(4)))
        _explained(context, Rise(), indices=tuple(range(4)), masks=30)
        artifact = Faithfulness().explain(context, FaithfulnessOptions(randomization_images=3, steps=4,
                                                                       figure_images=0))
        rho[in_place] = {k: v for k, v in artifact.arrays.items() if k.endswith("randomization_rho")}
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), trained, strict=True))
        artifact.close()
    assert sorted(rho[True]) == ["rise.randomization_rho", "saliency.randomization_rho"]
    for name, values in rho[True].items():
        assert np.isfinite(values).all()
        np.testing.assert_allclose(values, rho[False][name], atol=1e-5)
    monkeypatch.undo()
    assert not randomisation.shares_variables(_context(tiny_models.sequential_fused_softmax(), tiny_dataset))


def test_a_map_that_ignores_the_model_is_flagged(tiny_dataset):
    context = _context(tiny_models.sequential_fused_softmax(), tiny_dataset)
    _explained(context, ImageBrightness(), indices=(0, 1, 2))
    artifact = Faithfulness().explain(context, FaithfulnessOptions(figure_images=0))
    entry = artifact.summary["randomization_check"]["methods"]["test-brightness"]
    assert entry["rho"] == [1.0, 1.0, 1.0] and entry["survives"]
    assert "FLAGGED" in artifact.summary["sentences"][0]["sentence"]
    assert next(e for e in artifact.summary["ranking"] if e["map"] == "test-brightness")["survives_randomization"]
    artifact.close()


def test_a_model_that_cannot_be_cloned_skips_the_check_with_its_reason():
    class Opaque(keras.layers.Layer):
        def __init__(self, table, **kwargs):
            super().__init__(**kwargs)
            self.table = table  # not serialisable: no get_config, so no clone

        def call(self, x):
            return x

    inputs = keras.Input((12, 12, 1))
    x = Opaque(object())(inputs)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(layers.Flatten()(x)))
    context = _context(model, _dataset())
    _explained(context, Saliency(), indices=(0, 1))
    artifact = Faithfulness().explain(context, FaithfulnessOptions(figure_images=0))
    check = artifact.summary["randomization_check"]
    assert check["status"] == "skipped" and check["reason"].startswith("the model cannot be cloned (")
    assert artifact.summary["sentences"][-1]["sentence"].startswith("The model-parameter randomisation check did "
                                                                    "not run: the model cannot be cloned")
    assert artifact.summary["ranking"][0]["deletion_auc"] is not None  # deletion and insertion still ran
    artifact.close()


# ---------------------------------------------------------------------------------------------------------
# Options, planning, refusal.


@pytest.mark.parametrize("key, value", [("steps", "1"), ("steps", "5000"), ("survival_rho", "0"),
                                        ("figure_images", "100"), ("max_images", "-1"),
                                        ("randomization_images", "0"), ("signed_ranking", "sideways")])
def test_absurd_options_are_refused_in_one_line(key, value):
    with pytest.raises(UserError) as caught:
        parse_options(FaithfulnessOptions, {key: value}, "faithfulness")
    assert key in caught.value.one_line() and "\n" not in caught.value.one_line()


def test_the_planner_runs_faithfulness_after_every_attribution_method():
    names = [item.name for item in plan_explainers(["faithfulness", "confusion", "saliency"], None)]
    assert names == ["confusion", "saliency", "faithfulness"]
    names = [item.name for item in plan_explainers(["saliency", "confusion", "faithfulness"], None)]
    assert names == ["saliency", "confusion", "faithfulness"]  # already after: left where the user put it
    assert [i.name for i in plan_explainers(["faithfulness", "confusion"], None)] == ["faithfulness", "confusion"]

    everything = plan_explainers(None, None)
    order = [item.name for item in everything]
    last_attribution = max(k for k, item in enumerate(everything) if isinstance(item.explainer, Attribution))
    # Every reader of the maps (faithfulness, the dataset views) right after the last attribution method, in
    # the registry's order; the others keep the registry's order.
    readers = [n for n in registry.explainers() if getattr(registry.explainers()[n], "reads_attributions", False)]
    assert "faithfulness" in readers
    assert order[last_attribution + 1:last_attribution + 1 + len(readers)] == readers
    assert [n for n in order if n not in readers] == [n for n in registry.explainers() if n not in readers]


def test_check_refuses_a_run_without_attribution_methods(tiny_dataset):
    model = tiny_models.sequential_fused_softmax()
    for chosen in (["faithfulness"], ["confusion", "faithfulness"]):
        with pytest.raises(UserError) as caught:
            run_explainers(model, tiny_dataset, chosen, preprocess="unit")
        assert "no attribution method" in caught.value.message and "-e saliency -e faithfulness" in caught.value.hint
    with pytest.raises(UserError, match="no attribution method"):
        Faithfulness().explain(_context(model, tiny_dataset), FaithfulnessOptions())


# ---------------------------------------------------------------------------------------------------------
# End to end.


def test_run_explainers_with_saliency_and_faithfulness(tiny_dataset, tmp_path):
    artifacts, planned, context, timings = run_explainers(
        tiny_models.functional_separate_softmax(), tiny_dataset, ["faithfulness", "saliency"],
        {"saliency": {"per_class": "1"}, "faithfulness": {"steps": "16", "randomization_images": "3"}},
        preprocess="unit")
    assert [item.name for item in planned] == ["saliency", "faithfulness"] and list(timings) == ["saliency",
                                                                                                  "faithfulness"]
    artifact = artifacts["faithfulness"]
    summary = artifact.summary
    assert [e["map"] for e in summary["ranking"]].count("saliency") == 1
    assert {e["map"] for e in summary["ranking"]} == {"saliency", RANDOM, SOBEL}
    assert [e["rank"] for e in summary["ranking"]] == [1, 2, 3]
    scores = [e["score"] for e in summary["ranking"]]
    assert scores == sorted(scores, reverse=True)
    saliency = next(e for e in summary["ranking"] if e["map"] == "saliency")
    assert saliency["images"] == 7 and 0 <= saliency["deletion_auc"] <= 1 and saliency["deletion_se"] > 0
    random_row = next(e for e in summary["ranking"] if e["map"] == RANDOM)
    assert random_row["deletion_ratio"] == 1 and saliency["deletion_ratio"] == pytest.approx(
        saliency["deletion_auc"] / random_row["deletion_auc"], rel=1e-4)
    assert [s["method"] for s in summary["sentences"]] == ["saliency"]
    assert summary["sentences"][0]["sentence"].startswith("saliency (7 images): deletion AUC ")
    assert summary["randomization_check"]["methods"]["saliency"]["images"] == 3
    a = artifact.arrays
    assert a["saliency.deletion_curves"].shape == (7, 17) and a["fractions"].shape == (17,)
    np.testing.assert_allclose(a["saliency.deletion_auc"].mean(), saliency["deletion_auc"], atol=1e-6)
    np.testing.assert_array_equal(a["saliency.rows"], context.attributions["saliency"].rows)
    assert a["baseline.random.deletion_curves"].shape == (7, 17)

    figures = artifact.write(tmp_path)
    assert figures == ["curves.png", "randomization.png", "side_by_side.png"]
    manifest = {"model": {"path": "m.keras", "name": "m", "sha256": "0" * 64, "parameters": 10},
                "data": {"source": "d", "format": "npz", "split": None, "n": 14},
                "preprocessing": {}, "seed": 0, "explainers": {}, "versions": {}, "created": "today"}
    page = render_index(manifest, [("faithfulness", figures, summary)])
    assert "<caption>ranking</caption>" in page and "<caption>sentences</caption>" in page
    assert "<th>deletion_auc</th>" in page and "Sobel edge map" in page
    for artifact in artifacts.values():
        artifact.close()


def test_a_third_party_method_on_the_strided_1x1_conv_model(tiny_dataset):
    """The 64x64x3 model with a strided 1x1 conv (eager backward passes through it crash TensorFlow on this
    CPU) seen from 48x48x1 data: a third-party method, its randomised copies and their gradients all run
    compiled through the engine."""
    context = _context(tiny_models.residual_separable_rgb64(), tiny_dataset, scaling="symmetric")
    _explained(context, GradientTimesInput(), indices=(0, 1, 2, 3))
    _explained(context, Saliency(), indices=(2, 3, 4))
    artifact = Faithfulness().explain(context, FaithfulnessOptions(randomization_images=2, figure_images=2))
    summary = artifact.summary
    check = summary["randomization_check"]
    assert check["status"] == "done" and check["stages"] == [1, 3, 5]
    for name in ("saliency", "test-gradient-x-input"):
        entry = check["methods"][name]
        assert entry["error"] is None and all(-1 <= r <= 1 for r in entry["rho"]), entry
    assert artifact.arrays["test-gradient-x-input.deletion_curves"].shape == (4, 33)
    assert artifact.arrays["baseline.random.rows"].tolist() == [0, 1, 2, 3, 4]  # every image either method scored
    assert summary["details"]["test-gradient-x-input"]["signed"] is True
    figure = artifact.figures["side_by_side"]  # built on access; rows 2 and 3: the ones both methods explained
    assert len(figure.axes) == 2 * 2 * (2 + 2 + 1)
    assert figure.axes[0].get_title() == "row 2"
    artifact.close()


def test_max_images_and_a_signed_ranking(tiny_dataset):
    context = _context(tiny_models.sequential_fused_softmax(), tiny_dataset)
    _explained(context, GradientTimesInput(), indices=tuple(range(6)))
    magnitude = Faithfulness().explain(context, FaithfulnessOptions(max_images=3, randomization=False,
                                                                    figure_images=0))
    positive = Faithfulness().explain(context, FaithfulnessOptions(max_images=3, randomization=False,
                                                                   figure_images=0, signed_ranking="positive"))
    assert magnitude.arrays["test-gradient-x-input.rows"].tolist() == [0, 1, 2]
    assert not np.allclose(magnitude.arrays["test-gradient-x-input.deletion_curves"],
                           positive.arrays["test-gradient-x-input.deletion_curves"])
    np.testing.assert_array_equal(magnitude.arrays["baseline.random.deletion_curves"],
                                  positive.arrays["baseline.random.deletion_curves"])  # unsigned: unchanged
    magnitude.close()
    positive.close()


def test_the_report_shows_short_lists_of_records_as_tables_and_leaves_the_rest_to_the_json():
    manifest = {"model": {"path": "m.keras", "name": "m", "sha256": "0" * 64, "parameters": 10},
                "data": {"source": "d", "format": "npz", "split": None, "n": 3},
                "preprocessing": {}, "seed": 0, "explainers": {}, "versions": {}, "created": "today"}
    summary = {"short": [{"map": "a<b", "auc": 0.123456, "flag": None}, {"map": "c", "extra": True}],
               "long": [{"row": k} for k in range(26)], "nested": [{"inner": {"x": 1}}], "names": ["x", "y"]}
    page = render_index(manifest, [("demo", [], summary)])
    assert "<caption>short</caption>" in page and "<th>extra</th>" in page
    assert "<td>a&lt;b</td><td>0.1235</td><td>-</td><td>-</td>" in page  # escaped, 4 digits, absent = -
    for key in ("long", "nested", "names"):
        assert f"<caption>{key}</caption>" not in page
