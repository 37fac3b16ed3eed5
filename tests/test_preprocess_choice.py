"""``--preprocess auto`` decides from evidence: small models trained here on each scaling are recognised from a
labelled sample (accuracy) and, as a guess, from an unlabelled one (confidence spread over the classes); close
calls warn; a model that scales its own input is not searched; the choice is recorded everywhere."""

import json
import warnings

import keras
import numpy as np
import pytest
from fixtures import write_npz
from typer.testing import CliRunner

import xai_fer
from xai_fer.cli import app
from xai_fer.data import Dataset
from xai_fer.models import scaling_choice
from xai_fer.models.adapt import InputAdapter
from xai_fer.models.scaling_choice import CANDIDATES, ScalingWarning, choose_scaling, sample_rows

SIDE = 12
CLASSES = ("a", "b", "c", "d")
_Y, _X = np.mgrid[0:SIDE, 0:SIDE]
PATTERNS = [(_Y // 2) % 2, (_X // 2) % 2, ((_Y // 2) + (_X // 2)) % 2, ((_Y - SIDE / 2) ** 2 + (_X - SIDE / 2) ** 2
                                                                       < (SIDE / 3) ** 2)]


def brightness_bands(n: int, seed: int):
    """The class is the image's brightness band: learnable from pixels scaled by any fixed rule (unit, symmetric,
    raw), and lost as soon as they are scaled by another (the bands move)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    level = np.array([30, 95, 160, 225])[labels] + rng.uniform(-15, 15, n)
    images = level[:, None, None] + rng.normal(0, 12, (n, SIDE, SIDE))
    return np.clip(images, 0, 255).astype(np.uint8)[..., None], labels


def bright_patterns(n: int, seed: int):
    """The class is a faint pattern on a bright background: what standardising each image brings out, and what
    a fixed scaling leaves far from the range the standardised model learnt on."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    amplitude, base = rng.uniform(15, 40, n), rng.uniform(170, 210, n)
    images = (base[:, None, None] + amplitude[:, None, None] * np.stack([PATTERNS[c] for c in labels])
              + rng.normal(0, 4, (n, SIDE, SIDE)))
    return np.clip(images, 0, 255).astype(np.uint8)[..., None], labels


def data_for(scaling: str, n: int, seed: int):
    return (bright_patterns if scaling == "standardize" else brightness_bands)(n, seed)


def dataset(images, labels, source="synthetic") -> Dataset:
    return Dataset(images=images, labels=labels, class_names=CLASSES, source=source)


def train(scaling: str):
    """A small CNN trained (a few seconds) on pixels fed with ``scaling``."""
    images, labels = data_for(scaling, 600, seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((SIDE, SIDE, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                              keras.layers.Dense(4, activation="softmax")], name=f"trained_{scaling}")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(np.asarray(InputAdapter(scaling, (SIDE, SIDE, 1), (SIDE, SIDE, 1))(images)), labels, epochs=6,
              batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained():
    return {scaling: train(scaling) for scaling in CANDIDATES}


@pytest.mark.parametrize("scaling", CANDIDATES)
def test_auto_finds_the_scaling_each_model_was_trained_on_from_labels(trained, scaling):
    images, labels = data_for(scaling, 300, seed=1)
    context = xai_fer.build_context(trained[scaling], dataset(images, labels))
    choice = context.scaling_choice
    assert choice.how == "accuracy" and choice.scaling == scaling and context.adapter.scaling == scaling
    assert set(choice.scores) == set(CANDIDATES) and choice.sample_size == 300
    assert choice.scores[scaling] == max(choice.scores.values())
    wrong = [choice.scores[other] for other in CANDIDATES if other != scaling]
    assert max(wrong) < choice.scores[scaling] - 0.1, choice.scores  # the data really tells them apart
    assert not choice.close_call and f"{scaling}: best accuracy" in choice.summary()
    # The search saw every image with the chosen scaling: its probabilities are the run's, not computed again.
    expected = trained[scaling].predict(np.asarray(InputAdapter(scaling, (SIDE, SIDE, 1), (SIDE, SIDE, 1))(
        images.astype(np.float32))), verbose=0)
    np.testing.assert_allclose(context.probabilities, expected, atol=1e-5)


@pytest.mark.parametrize("scaling", ["symmetric", "raw", "standardize"])
def test_without_labels_auto_guesses_from_confidence_and_says_it_is_a_guess(trained, scaling):
    images, _ = data_for(scaling, 300, seed=2)
    context = xai_fer.build_context(trained[scaling], dataset(images, None))
    choice = context.scaling_choice
    assert choice.how == "confidence" and choice.scaling == scaling, choice.scores
    assert "a guess" in choice.summary() and "--labels" in choice.summary()
    assert choice.describe()["metric"] == "mutual information (nats)"


def test_plain_mean_confidence_would_pick_raw_which_is_why_it_is_not_used(trained):
    """Pixels 255 times too large saturate a unit-trained network: it answers one class, very confidently."""
    images, _ = data_for("unit", 300, seed=2)
    sample = dataset(images, None)
    info = xai_fer.inspect_model(trained["unit"])
    confidence = {name: scaling_choice._probabilities(trained["unit"], info, sample, name, 128).max(axis=1).mean()
                  for name in CANDIDATES}
    assert max(confidence, key=confidence.get) == "raw" and confidence["raw"] > 0.95
    assert choose_scaling(trained["unit"], info, sample)[0].scaling != "raw"


def test_a_close_call_warns_and_names_preprocess():
    """A model that normalises each image itself answers the same to every scaling: nothing can decide."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIDE, SIDE, 1))
    x = keras.layers.LayerNormalization(axis=(1, 2, 3))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(x)))
    images, labels = brightness_bands(120, seed=3)
    with pytest.warns(ScalingWarning, match="--preprocess"):
        context = xai_fer.build_context(model, dataset(images, labels))
    choice = context.scaling_choice
    assert choice.close_call and choice.scaling == "unit"  # equal scores: the first candidate
    assert choice.tied_with == ["symmetric", "raw", "standardize"]
    assert "--preprocess" in choice.warning and "did about as well" in choice.warning


def test_a_model_that_scales_its_own_input_is_not_searched(monkeypatch, trained):
    def no_forward_pass(*args):
        raise AssertionError("no candidate may be tried")

    monkeypatch.setattr(scaling_choice, "_probabilities", no_forward_pass)
    inputs = keras.Input((SIDE, SIDE, 1))
    model = keras.Model(inputs, trained["unit"](keras.layers.Rescaling(1 / 255)(inputs)))
    images, labels = brightness_bands(40, seed=4)
    choice = xai_fer.build_context(model, dataset(images, labels)).scaling_choice
    assert (choice.scaling, choice.how, choice.scores) == ("raw", "model scales its input", {})
    given = xai_fer.build_context(trained["unit"], dataset(images, labels), preprocess="symmetric").scaling_choice
    assert (given.scaling, given.how) == ("symmetric", "given")


def test_the_sample_is_seeded_and_class_stratified():
    labels = np.array([0] * 900 + [1] * 80 + [2] * 20)
    rows = sample_rows(len(labels), labels, 120, seed=0)
    assert len(rows) == 120 and np.all(np.diff(rows) > 0)
    counts = np.bincount(labels[rows], minlength=3)
    assert counts.tolist() == [50, 50, 20]  # the rare class gives all it has, the others share the rest
    assert np.array_equal(rows, sample_rows(len(labels), labels, 120, seed=0))
    assert not np.array_equal(rows, sample_rows(len(labels), labels, 120, seed=1))
    assert np.array_equal(sample_rows(50, labels[:50], 120, seed=0), np.arange(50))


def test_evaluate_info_and_explain_record_how_the_scaling_was_chosen(trained, tmp_path):
    model_path = tmp_path / "symmetric.keras"
    trained["symmetric"].save(model_path)
    images, labels = data_for("symmetric", 200, seed=5)
    data = write_npz(tmp_path / "data.npz", images[..., 0], labels, class_names=CLASSES)
    runner = CliRunner()

    result = runner.invoke(app, ["evaluate", str(model_path), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["preprocessing"]["scaling"] == "symmetric"
    assert report["scaling_choice"]["how"] == "accuracy" and set(report["scaling_choice"]["scores"]) == set(CANDIDATES)
    text = runner.invoke(app, ["evaluate", str(model_path), "--data", str(data)]).stdout
    assert "scaling: symmetric: best accuracy on a class-stratified sample of 200 labelled images" in text

    result = runner.invoke(app, ["info", str(model_path), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert f"--preprocess auto on {data}: symmetric: best accuracy" in result.stdout

    out = tmp_path / "report"
    result = runner.invoke(app, ["explain", str(model_path), "--data", str(data), "-e", "confusion", "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preprocessing"]["scaling"] == "symmetric"
    assert manifest["scaling_choice"]["chosen"] == "symmetric" and manifest["scaling_choice"]["how"] == "accuracy"
    assert "scaling chosen" in (out / "index.html").read_text()


def test_a_close_call_is_one_line_on_stderr_in_the_cli(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIDE, SIDE, 1))
    x = keras.layers.LayerNormalization(axis=(1, 2, 3))(inputs)
    path = tmp_path / "invariant.keras"
    keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(x))).save(path)
    images, labels = brightness_bands(60, seed=6)
    data = write_npz(tmp_path / "data.npz", images[..., 0], labels, class_names=CLASSES)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScalingWarning)  # the CLI prints it itself: no Python warning escapes
        result = CliRunner().invoke(app, ["evaluate", str(path), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    warning_lines = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warning_lines) == 1 and "pass --preprocess" in warning_lines[0]
    assert json.loads(result.stdout)["scaling_choice"]["close_call"] is True
