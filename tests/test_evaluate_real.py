"""``xai-fer evaluate`` on a model trained elsewhere (plain Keras, not xai-fer) from the Kaggle fer2013.csv."""

import json

import h5py
import keras
import numpy as np
import pytest
from fixtures import write_fer_csv
from typer.testing import CliRunner

from xai_fer.cli import app


@pytest.mark.slow
@pytest.mark.real_data
def test_evaluate_reports_accuracy_of_an_outside_model_on_private_test(fer2013_h5, tmp_path):
    with h5py.File(fer2013_h5, "r") as handle:
        usage, labels = handle["usage"][()], handle["labels"][()]
        rows = np.concatenate([np.flatnonzero(usage == 0)[:6000], np.flatnonzero(usage == 2)])
        images = handle["images"][np.sort(rows)]
        labels, usage = labels[np.sort(rows)], usage[np.sort(rows)]
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, usage)

    # "Trained elsewhere": plain Keras, inputs scaled to [-1, 1] by the caller, saved as a Keras-2 style .h5.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((48, 48, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(), keras.layers.Dense(7, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    train = usage == 0
    model.fit(images[train][..., None] / 127.5 - 1, labels[train], epochs=3, batch_size=64, verbose=0)
    model.save(tmp_path / "outside.h5")

    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "outside.h5"), "--data", str(csv),
                                      "--split", "PrivateTest", "--preprocess", "symmetric", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 3589 and report["split"] == "PrivateTest"
    assert sum(row["n"] for row in report["per_class"].values()) == 3589
    test = usage == 2
    expected = (model.predict(images[test][..., None] / 127.5 - 1, verbose=0).argmax(1) == labels[test]).mean()
    assert report["accuracy"] == pytest.approx(expected, abs=1e-6)
    assert report["accuracy"] > 0.30  # well above the 24.5% of always answering Happy
