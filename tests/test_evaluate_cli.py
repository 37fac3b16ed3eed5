"""``xai-fer evaluate`` on the bundled reference CNN and sample: plain and with the mirrored test-time view."""

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from xai_fer.cli import app
from xai_fer.reference import MODELS, SAMPLE


def _evaluate(*extra):
    result = CliRunner().invoke(app, ["evaluate", str(MODELS["cnn"]), "--data", str(SAMPLE), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_tta_flip_averages_each_image_with_its_mirror():
    with np.load(SAMPLE) as sample:
        images, labels = sample["images"].astype(np.float32), sample["labels"]
    images = images[..., None] if images.ndim == 3 else images
    model = keras.models.load_model(MODELS["cnn"], compile=False)
    plain = model.predict(images, verbose=0)
    mirrored = model.predict(images[:, :, ::-1], verbose=0)
    expected_plain = (plain.argmax(1) == labels).mean()
    expected_flipped = ((plain + mirrored).argmax(1) == labels).mean()
    # The two views must score differently here, or this test could not tell the two paths apart.
    assert expected_plain != expected_flipped

    report, flipped = _evaluate(), _evaluate("--tta-flip")
    assert report["tta_flip"] is False and flipped["tta_flip"] is True
    assert report["accuracy"] == pytest.approx(expected_plain, abs=1e-9)
    assert flipped["accuracy"] == pytest.approx(expected_flipped, abs=1e-9)
    assert flipped["n"] == report["n"] == len(labels)


def test_the_table_says_when_the_mirrored_view_was_used():
    result = CliRunner().invoke(app, ["evaluate", str(MODELS["cnn"]), "--data", str(SAMPLE), "--tta-flip"])
    assert result.exit_code == 0, result.output
    assert "with the mirrored view" in " ".join(result.output.split())


def test_the_bundled_sample_is_the_private_test_split_it_says_it_is():
    assert _evaluate("--split", "PrivateTest")["n"] == _evaluate()["n"] == 196
    result = CliRunner().invoke(app, ["evaluate", str(MODELS["cnn"]), "--data", str(SAMPLE), "--split", "Training"])
    assert result.exit_code == 2 and "no rows in split Training" in result.output


def test_labels_the_model_cannot_answer_are_refused(tmp_path):
    three = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")])
    three.save(tmp_path / "three.keras")
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "three.keras"), "--data", str(SAMPLE)])
    assert result.exit_code == 2 and "labels go up to 6 (Neutral) but the model has 3 classes" in result.output
