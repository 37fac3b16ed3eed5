"""The dataset-level views (class-maps, confusion-maps, confidence-extremes, method-disagreement) on constructed
maps and predictions whose answers are known, reading maps from arrays and from HDF5 datasets, and end to end on
a whole-split run and on an ordinary one."""

import h5py
import numpy as np
import pytest
import tiny_models
from fixtures import sample_images, write_npz
from xai_fer_plugins import method_disagreement
from xai_fer_plugins.class_maps import ClassMaps, ClassMapsOptions
from xai_fer_plugins.confidence_extremes import ConfidenceExtremes, ConfidenceExtremesOptions, extremes
from xai_fer_plugins.confusion_maps import ConfusionMaps, ConfusionMapsOptions, top_confusions
from xai_fer_plugins.method_disagreement import MethodDisagreement, MethodDisagreementOptions, row_spearman

from xai_fer.data import FER2013_CLASSES, Dataset
from xai_fer.errors import UserError
from xai_fer.explain import views
from xai_fer.explain.attribution import AttributionResult
from xai_fer.explain.browser import read_data_script
from xai_fer.explain.pipeline import build_context, run_explain

K = 7


def constructed_context(labels, predicted, confidence=None):
    """A context whose predictions are given (the model only supplies the class count)."""
    n = len(labels)
    images = sample_images(n, seed=1)[..., None]
    dataset = Dataset(images=images, labels=np.asarray(labels), class_names=FER2013_CLASSES, source="constructed")
    context = build_context(tiny_models.sequential_fused_softmax(), dataset, "unit")
    confidence = np.full(n, 0.9) if confidence is None else np.asarray(confidence, dtype=np.float64)
    probabilities = np.tile(((1 - confidence) / (K - 1))[:, None], (1, K))
    probabilities[np.arange(n), predicted] = confidence
    context.__dict__["probabilities"] = probabilities.astype(np.float32)
    return context


def record(context, name, maps, signed=False, rows=None):
    rows = np.arange(len(maps)) if rows is None else np.asarray(rows)
    context.attributions[name] = AttributionResult(None, None, rows, context.predictions[rows], maps, signed,
                                                   "logit")


def spot(n, cells, scale=1.0):
    """Maps that are zero except one pixel per image: ``cells[i] = (y, x)``, value ``scale[i]``."""
    maps = np.zeros((n, 48, 48), np.float32)
    for i, (y, x) in enumerate(cells):
        maps[i, y, x] = np.broadcast_to(scale, (n,))[i]
    return maps


@pytest.fixture
def known(tmp_path, monkeypatch):
    """28 images, four per class (labels i % 7); the model is right on three of each class's four, except class
    2 (Fear), of whose images two are taken for 4 (Sad), and class 6 (Neutral), one taken for 3 (Happy).
    Method "spots" puts one pixel at (class, 0) on a correct image and at (true class, 1) on a wrong one (at
    any scale: the views scale each map to its maximum); it is read from an HDF5 file in blocks of 5 rows."""
    monkeypatch.setattr(views, "BLOCK", 5)
    labels = np.arange(28) % K
    predicted = labels.copy()
    wrong = {2: 4, 9: 4, 6: 3}  # rows of class 2 (rows 2, 9) taken for 4, row 6 (class 6) for 3
    for row, taken in wrong.items():
        predicted[row] = taken
    context = constructed_context(labels, predicted)
    cells = [(labels[i], 0 if predicted[i] == labels[i] else 1) for i in range(28)]
    with h5py.File(tmp_path / "maps.h5", "w") as handle:
        handle["spots"] = spot(28, cells, scale=np.arange(1, 29, dtype=np.float32))
    handle = h5py.File(tmp_path / "maps.h5", "r")
    record(context, "spots", handle["spots"])
    yield context, labels, predicted
    handle.close()


def test_class_maps_means_per_class_all_and_correct(known):
    context, labels, predicted = known
    artifact = ClassMaps().explain(context, ClassMapsOptions())
    mean_all, mean_correct = artifact.arrays["spots.mean_all"], artifact.arrays["spots.mean_correct"]
    for c in range(K):
        members = labels == c
        right = (predicted[members] == c).mean()
        assert mean_all[c, c, 0] == pytest.approx(right) and mean_all[c, c, 1] == pytest.approx(1 - right)
        assert mean_correct[c, c, 0] == pytest.approx(1.0) and mean_correct[c, c, 1] == 0
        assert mean_all[c].sum() == pytest.approx(1.0)
    fear = artifact.summary["classes"]["Fear"]
    assert fear == {"images": 4, "correct": 2, "correct_vs_all_correlation": {"spots": pytest.approx(0.707, abs=1e-3)}}
    assert list(artifact.figures) == ["class_maps"]


def test_confusion_maps_choose_the_most_frequent_and_measure_the_difference(known):
    context, labels, predicted = known
    assert top_confusions(labels, predicted, K, 5) == [(2, 4, 2), (6, 3, 1)]
    artifact = ConfusionMaps().explain(context, ConfusionMapsOptions(cells=1))
    [cell] = artifact.summary["cells"]
    assert (cell["true"], cell["predicted"], cell["images"]) == ("Fear", "Sad", 2)
    entry = cell["methods"]["spots"]
    assert (entry["n_confused"], entry["n_true_class"], entry["n_predicted_class"]) == (2, 2, 4)
    # Fear->Sad looks at (2, 1), Fear->Fear at (2, 0), Sad->Sad at (4, 0): disjoint single pixels.
    assert entry["distance_to_true_class"] == 1.0 and entry["distance_to_predicted_class"] == 1.0
    means = artifact.arrays["spots.means"][0]
    assert means[0, 2, 1] == 1 and means[1, 2, 0] == 1 and means[2, 4, 0] == 1


def test_confusion_maps_table_on_overlapping_maps():
    """A->B's mean map equal to B->B's: distance 0 and correlation 1 to it, and closer to the predicted class."""
    labels = np.array([0, 0, 1, 1, 0])
    predicted = np.array([0, 0, 1, 1, 1])
    context = constructed_context(labels, predicted)
    maps = spot(5, [(0, 0), (0, 0), (5, 5), (5, 5), (5, 5)])
    maps[:, 10, 10] = 0.5  # a second pixel everywhere, so no mean map is constant
    record(context, "m", maps)
    entry = ConfusionMaps().explain(context, ConfusionMapsOptions()).summary["cells"][0]["methods"]["m"]
    assert entry["distance_to_predicted_class"] == 0 and entry["correlation_with_predicted_class"] == 1
    # Scaled to sum 1: A->A is 2/3 at (0, 0) and 1/3 at (10, 10), A->B 2/3 at (5, 5) and 1/3 at (10, 10).
    assert entry["distance_to_true_class"] == pytest.approx(2 / 3, abs=1e-3)
    assert entry["closer_to"] == "predicted class (B->B)"


def test_confusion_maps_need_labels_and_a_method(known):
    context, _, _ = known
    with pytest.raises(UserError, match="do not run in this run"):
        ConfusionMaps().check(context, ConfusionMapsOptions(methods=("saliency",)))
    context.dataset.labels = None
    with pytest.raises(UserError, match="need labels"):
        ConfusionMaps().check(context, ConfusionMapsOptions())


def test_confidence_extremes_pick_the_surest_and_least_sure(known):
    context, labels, predicted = known
    fresh = constructed_context(labels, predicted, np.linspace(0.3, 0.95, 28))
    record(fresh, "spots", np.asarray(context.attributions["spots"].maps))
    artifact = ConfidenceExtremes().explain(fresh, ConfidenceExtremesOptions(count=1))
    # Class 0 holds rows 0, 7, 14, 21, all right: p(true) rises with the row.
    assert [e["row"] for e in artifact.summary["classes"]["Angry"]["most_confident"]] == [21]
    assert [e["row"] for e in artifact.summary["classes"]["Angry"]["least_confident"]] == [0]
    # Fear: rows 2 and 9 taken for Sad, p(Fear) = (1 - p(Sad)) / 6, lowest where p(Sad) is highest (row 9).
    assert artifact.summary["classes"]["Fear"]["least_confident"][0]["row"] == 9
    assert artifact.summary["classes"]["Fear"]["least_confident"][0]["predicted"] == "Sad"
    assert artifact.arrays["most_confident_rows"][0, 0] == 21 and "class_0" in artifact.figures


def test_extremes_never_show_an_image_twice():
    groups = np.array([0, 0, 0, 1])
    picked = extremes(groups, np.array([0.5, 0.9, 0.1, 0.7]), 2, 2)
    assert picked[0][0].tolist() == [1, 0] and picked[0][1].tolist() == [2]
    assert picked[1][0].tolist() == [3] and picked[1][1].tolist() == []


def test_row_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a, b = rng.random((4, 6, 6)), rng.random((4, 6, 6))
    b[1] = a[1] * 2  # same order
    a[2] = np.round(a[2], 1)  # ties
    expected = [spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(row_spearman(a, b), expected)
    assert np.isnan(row_spearman(np.ones((1, 3, 3)), a[:1, :3, :3]))[0]


def test_method_disagreement_finds_the_image_the_methods_disagree_on(monkeypatch):
    monkeypatch.setattr(method_disagreement, "RANK_BLOCK", 3)  # blocks of 3: a block boundary before rows 4, 7
    labels = np.arange(10) % K
    context = constructed_context(labels, labels)
    rng = np.random.default_rng(2)
    first = rng.random((10, 48, 48)).astype(np.float32)
    second = first * 3
    second[4] = first[4].max() - first[4]  # the reverse order on row 4: rho -1
    second[7] = rng.random((48, 48))  # unrelated on row 7: rho near 0
    record(context, "a", first)
    record(context, "b", -second, signed=True)  # signed: ranked by magnitude, so the sign changes nothing
    artifact = MethodDisagreement().explain(context, MethodDisagreementOptions(count=2))
    assert [entry["row"] for entry in artifact.summary["lowest"]] == [4, 7]
    agreement = artifact.arrays["agreement"]
    assert agreement[4] == pytest.approx(-1, abs=1e-3) and abs(agreement[7]) < 0.1
    assert np.allclose(np.delete(agreement, [4, 7]), 1)
    with pytest.raises(UserError, match="needs 2 attribution methods"):
        MethodDisagreement().check(context, MethodDisagreementOptions(methods=("a",)))


def test_views_use_the_rows_every_method_explained():
    labels = np.arange(12) % K
    context = constructed_context(labels, labels)
    record(context, "a", np.random.default_rng(0).random((6, 48, 48)), rows=[0, 2, 4, 6, 8, 10])
    record(context, "b", np.random.default_rng(1).random((4, 48, 48)), rows=[10, 4, 3, 2])
    rows, positions = views.common_positions(context.attributions)
    assert rows.tolist() == [2, 4, 10] and positions["a"].tolist() == [1, 2, 5] and positions["b"].tolist() == [3, 1, 0]
    artifact = MethodDisagreement().explain(context, MethodDisagreementOptions())
    assert artifact.summary["images"] == 3


# The whole split on a Keras-2 .h5 model of another input (64x64 RGB, a strided 1x1 conv: maps still come at the
# data's 48x48), the ordinary run on a .keras one.
@pytest.mark.parametrize("all_images, builder, suffix", [
    (True, tiny_models.residual_separable_rgb64, ".h5"), (False, tiny_models.sequential_fused_softmax, ".keras")])
def test_views_end_to_end(tmp_path, all_images, builder, suffix):
    model_path = tmp_path / f"model{suffix}"
    builder().save(model_path)
    data = write_npz(tmp_path / "data.npz", sample_images(40, seed=4), labels=np.arange(40) % K)
    names = ["saliency", "grad-cam", "class-maps", "confusion-maps", "confidence-extremes", "method-disagreement"]
    options = {"saliency": {"grid_rows": "2"}, "grad-cam": {"grid_rows": "2"},
               "confidence-extremes": {"count": "1"}, "method-disagreement": {"count": "2"}}
    if not all_images:
        options["saliency"]["per_class"] = options["grad-cam"]["per_class"] = "3"
    run = run_explain(model_path, data, tmp_path / "out", names, options, preprocess="unit", all_images=all_images)
    out = tmp_path / "out"
    assert (out / "class-maps" / "class_maps.png").exists()
    assert (out / "method-disagreement" / "agreement.png").exists()
    assert run.artifacts["method-disagreement"].summary["images"] == (40 if all_images else 21)
    assert (out / "maps.h5").exists() == all_images
    if all_images:
        with h5py.File(out / "maps.h5", "r") as handle:
            assert handle["maps/grad-cam"].shape == (40, 48, 48) and list(handle.attrs["methods"]) == names[:2]
    shown = read_data_script((out / "_browser" / "data.js").read_text())  # the image browser of the same run
    assert shown["count"] == 40 and [method["name"] for method in shown["methods"]] == names[:2]
    assert all(method["rows"] is None for method in shown["methods"]) == all_images  # a map for every image
