"""The confusion explainer: numbers against a hand-built case, the study-pattern check, and the mechanics on
tiny models and (when available) real FER2013 data."""

import json

import numpy as np
import pytest
import tiny_models
from xai_fer_plugins.confusion import Confusion, ConfusionOptions, study_pattern

from xai_fer.data import FER2013_CLASSES, Dataset
from xai_fer.errors import UserError
from xai_fer.explain.context import ExplainContext
from xai_fer.models.adapt import InputAdapter
from xai_fer.models.introspect import inspect_model


def _context(model, dataset, scaling="unit"):
    data_shape = tuple(dataset.images.shape[1:])
    info = inspect_model(model)
    return ExplainContext(model, info, dataset, InputAdapter(scaling, data_shape, info.input_shape))


def _context_with_predictions(labels, predictions, class_names):
    """A context whose shared probabilities are set by hand: predictions we control, model never run."""
    k = len(class_names)
    model = tiny_models.sequential_fused_softmax(input_shape=(8, 8, 1), classes=k)
    dataset = Dataset(images=np.zeros((len(labels), 8, 8, 1), np.uint8), labels=np.asarray(labels),
                      class_names=tuple(class_names), source="hand-built")
    context = _context(model, dataset)
    probabilities = np.full((len(labels), k), 0.4 / (k - 1), np.float32)
    probabilities[np.arange(len(labels)), predictions] = 0.6
    context.probabilities = probabilities  # the cached, shared predictions of a run

    def no_recompute(*args, **kwargs):
        raise AssertionError("the explainer must use context.predictions, not run the model again")

    context.data_model = no_recompute
    return context


# true x: x x x y y | true y: y z z z | true z: z x | class w: no images, never predicted
HAND_LABELS = [0, 1, 2, 0, 1, 0, 1, 0, 2, 1, 0]
HAND_PREDICTIONS = [0, 2, 2, 1, 1, 0, 2, 1, 0, 2, 0]


def test_confusion_numbers_match_a_hand_built_case(tmp_path):
    context = _context_with_predictions(HAND_LABELS, HAND_PREDICTIONS, ["x", "y", "z", "w"])
    artifact = Confusion().explain(context, ConfusionOptions(top_k=2))

    expected = np.array([[3, 2, 0, 0], [0, 1, 3, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(artifact.arrays["counts"], expected)
    np.testing.assert_allclose(artifact.arrays["normalized"],
                               [[0.6, 0.4, 0, 0], [0, 0.25, 0.75, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 0]], atol=1e-6)

    s = artifact.summary
    assert s["num_images"] == 11
    assert s["accuracy"] == pytest.approx(5 / 11)
    rows = {r["class"]: r for r in s["per_class"]}
    assert [rows[c]["support"] for c in "xyzw"] == [5, 4, 2, 0]
    assert rows["x"]["precision"] == pytest.approx(3 / 4)
    assert rows["y"]["precision"] == pytest.approx(1 / 3)
    assert rows["z"]["precision"] == pytest.approx(1 / 4)
    assert rows["x"]["recall"] == pytest.approx(0.6) and rows["x"]["accuracy"] == pytest.approx(0.6)
    assert rows["y"]["recall"] == pytest.approx(0.25)
    assert rows["z"]["recall"] == pytest.approx(0.5)
    assert rows["x"]["f1"] == pytest.approx(2 / 3)
    assert rows["y"]["f1"] == pytest.approx(2 / 7)
    assert rows["z"]["f1"] == pytest.approx(1 / 3)
    assert rows["w"]["precision"] is None and rows["w"]["recall"] is None  # undefined, not a made-up 0
    # Class w has no image: the macro average is over x, y and z, not a zero for w.
    assert s["macro_f1"] == pytest.approx((2 / 3 + 2 / 7 + 1 / 3) / 3)

    pairs = s["most_confused"]
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs["by_count"]] == [("y", "z", 3), ("x", "y", 2)]
    assert [(p["true"], p["predicted"]) for p in pairs["by_share"]] == [("y", "z"), ("z", "x")]
    assert pairs["by_share"][1]["share_of_true"] == pytest.approx(0.5)

    pattern = s["study_pattern"]
    assert pattern["best_recall"]["class"] == "x" and pattern["worst_recall"]["class"] == "y"
    assert pattern["most_common_wrong_prediction"]["x"]["predicted"] == "y"
    assert pattern["most_common_wrong_prediction"]["y"] == {
        "predicted": "z", "count": 3, "share_of_errors": 1.0, "share_of_true": 0.75}
    assert pattern["most_common_wrong_prediction"]["w"] is None
    assert pattern["errors_received"] == {"x": 1, "y": 2, "z": 3, "w": 0}
    assert pattern["study_claims"] is None  # not FER2013's classes

    names = artifact.write(tmp_path)
    artifact.close()
    assert names == ["confusion_counts.png", "confusion_normalized.png", "per_class_metrics.png"]
    json.loads((tmp_path / "summary.json").read_text())
    json.dumps(s, allow_nan=False)  # plain JSON: no numpy types, no NaN


def _fer_counts(diagonal, to_neutral):
    """10 images per class; diagonal correct, `to_neutral` errors go to Neutral, the rest to Angry."""
    counts = np.zeros((7, 7), np.int64)
    neutral = FER2013_CLASSES.index("Neutral")
    for c in range(7):
        counts[c, c] = diagonal[c]
        wrong = 10 - diagonal[c]
        if c == neutral:
            counts[c, 0] += wrong
            continue
        counts[c, neutral] += min(to_neutral, wrong)
        counts[c, 0 if c != 0 else 1] += wrong - min(to_neutral, wrong)
    return counts


def test_study_pattern_confirms_the_study_when_the_data_agrees():
    # Angry Disgust Fear Happy Sad Surprise Neutral
    pattern = study_pattern(_fer_counts([6, 4, 2, 9, 5, 7, 6], to_neutral=3), FER2013_CLASSES)
    claims = pattern["study_claims"]
    assert claims["happy_best"]["holds"] and claims["happy_best"]["happy_recall"] == pytest.approx(0.9)
    assert claims["fear_worst"]["holds"] and claims["fear_worst"]["fear_recall"] == pytest.approx(0.2)
    assert claims["drift_towards_neutral"]["holds"]
    assert claims["drift_towards_neutral"]["most_received_class"] == "Neutral"
    assert pattern["statement"].startswith("matches the study")


def test_study_pattern_says_where_the_data_differs():
    # Fear is the best class here, Disgust the worst, and errors go to Angry, not Neutral.
    pattern = study_pattern(_fer_counts([6, 1, 9, 8, 5, 7, 6], to_neutral=0), FER2013_CLASSES)
    claims = pattern["study_claims"]
    assert not claims["happy_best"]["holds"] and claims["happy_best"]["best_class"] == "Fear"
    assert not claims["fear_worst"]["holds"] and claims["fear_worst"]["worst_class"] == "Disgust"
    assert not claims["drift_towards_neutral"]["holds"]
    assert claims["drift_towards_neutral"]["most_received_class"] == "Angry"
    statement = pattern["statement"]
    assert statement.startswith("differs from the study")
    assert "Fear (recall 0.900)" in statement and "Disgust (recall 0.100)" in statement and "Angry" in statement
    assert pattern["most_common_wrong_prediction"]["Happy"]["predicted"] == "Angry"


def test_confusion_needs_labels():
    model = tiny_models.sequential_fused_softmax()
    dataset = Dataset(images=np.zeros((3, 48, 48, 1), np.uint8), labels=None, class_names=FER2013_CLASSES,
                      source="unlabelled.csv")
    with pytest.raises(UserError, match="needs labels"):
        Confusion().explain(_context(model, dataset), ConfusionOptions())


@pytest.mark.parametrize("builder, scaling", [
    (tiny_models.sequential_fused_softmax, "unit"),
    (tiny_models.functional_separate_softmax, "unit"),
    (tiny_models.residual_separable_rgb64, "symmetric"),
])
def test_confusion_on_tiny_models(tiny_dataset, builder, scaling):
    context = _context(builder(), tiny_dataset, scaling)
    artifact = Confusion().explain(context, ConfusionOptions())
    counts = artifact.arrays["counts"]
    assert counts.sum() == len(tiny_dataset)
    assert np.trace(counts) == int((context.predictions == tiny_dataset.labels).sum())
    assert artifact.summary["accuracy"] == pytest.approx(np.trace(counts) / len(tiny_dataset))
    assert artifact.summary["study_pattern"]["study_claims"] is not None  # FER2013 names: claims checked
    json.dumps(artifact.summary, allow_nan=False)
    artifact.close()


@pytest.mark.real_data
def test_confusion_on_real_fer2013(fer2013_h5, tmp_path):
    from xai_fer_plugins.hdf5 import Hdf5Format

    data = Hdf5Format().load(fer2013_h5).select_split("PrivateTest").subset(slice(0, 300))
    context = _context(tiny_models.sequential_fused_softmax(), data)
    artifact = Confusion().explain(context, ConfusionOptions())
    assert artifact.arrays["counts"].sum() == 300
    np.testing.assert_array_equal(artifact.arrays["counts"].sum(axis=1), np.bincount(data.labels, minlength=7))
    assert set(artifact.summary["study_pattern"]["study_claims"]) == {
        "happy_best", "fear_worst", "drift_towards_neutral"}
    artifact.write(tmp_path)
    artifact.close()
