"""Loading any saved Keras model, and refusing what cannot be loaded with one clear line."""

import h5py
import keras
import numpy as np
import pytest
import tiny_models

from xai_fer.errors import UserError
from xai_fer.models.introspect import inspect_model, logits_model
from xai_fer.models.loading import load_model


@pytest.mark.parametrize("builder", list(tiny_models.ALL.values()), ids=list(tiny_models.ALL))
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_loads_keras_and_legacy_h5(tmp_path, builder, suffix):
    model = builder()
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = load_model(path)
    info = inspect_model(loaded)
    assert info.input_shape == tuple(model.inputs[0].shape[1:])
    assert info.num_classes == 7
    assert info.output_activation == "softmax"
    assert info.parameters == model.count_params()
    assert info.conv_layers
    x = np.random.default_rng(0).random((2, *info.input_shape)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("builder", list(tiny_models.ALL.values()), ids=list(tiny_models.ALL))
def test_logits_model_drops_only_the_softmax(builder):
    model = builder()
    info = inspect_model(model)
    logits = logits_model(model, info)
    x = np.random.default_rng(1).random((3, *info.input_shape)).astype("float32")
    z = np.asarray(logits(x))
    np.testing.assert_allclose(keras.ops.softmax(z).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(z.sum(axis=1), 1.0)


def test_separate_and_fused_softmax_are_told_apart():
    assert inspect_model(tiny_models.functional_separate_softmax()).softmax_is_separate_layer
    assert inspect_model(tiny_models.sequential_softmax_layer()).softmax_is_separate_layer
    assert not inspect_model(tiny_models.sequential_fused_softmax()).softmax_is_separate_layer


@pytest.mark.parametrize("builder", [tiny_models.sequential_softmax_layer, tiny_models.nested_softmax])
def test_probabilities_are_the_models_own_whatever_hides_the_softmax(builder):
    # A softmax the inspection cannot see (inside a sub-model) must not be applied a second time.
    from xai_fer.data import Dataset
    from xai_fer.explain.pipeline import build_context

    model = builder()
    images = np.random.default_rng(3).integers(0, 256, (5, 48, 48, 1)).astype(np.uint8)
    data = Dataset(images=images, labels=None, class_names=tuple("abcdefg"), source="memory")
    context = build_context(model, data, "raw")
    np.testing.assert_allclose(context.probabilities, model.predict(images.astype("float32"), verbose=0),
                               rtol=1e-5, atol=1e-6)


def _write(path, content: bytes):
    path.write_bytes(content)
    return path


def _weights_only(tmp_path):
    path = tmp_path / "w.weights.h5"
    tiny_models.sequential_fused_softmax().save_weights(path)
    plain = tmp_path / "weights.h5"
    plain.write_bytes(path.read_bytes())
    return plain


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.keras", "does not exist"),
        (lambda p: p, "is a directory"),
        (lambda p: _write(p / "saved_model.pb", b"x").parent, "SavedModel"),
        (lambda p: _write(p / "notes.h5", b"hello"), "not a Keras model"),
        (_weights_only, "only weights"),
    ],
    ids=["missing", "directory", "savedmodel", "text-as-h5", "weights-only"],
)
def test_unloadable_paths_get_one_clear_line(tmp_path, make, message):
    with pytest.raises(UserError, match=message) as caught:
        load_model(make(tmp_path))
    assert "\n" not in caught.value.one_line()


def test_truncated_files(tmp_path):
    model = tiny_models.sequential_fused_softmax()
    for suffix in (".keras", ".h5"):
        full = tmp_path / f"full{suffix}"
        model.save(full)
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(UserError, match="truncated|corrupt"):
            load_model(cut)


def _lambda_model(marker):
    inputs = keras.Input((8, 8, 1))
    # The path is a constant inside the lambda's code, so loading the model would write the file.
    side_effect = eval(f"lambda x: x + float(open({str(marker)!r}, 'w').write('ran') * 0)")  # noqa: S307
    touched = keras.layers.Lambda(side_effect)(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(touched))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_model_refused_in_safe_mode_and_code_does_not_run(tmp_path, suffix):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / f"lambda{suffix}"
    _lambda_model(marker).save(path)
    marker.unlink()
    with pytest.raises(UserError, match="--unsafe"):
        load_model(path)
    assert not marker.exists()
    assert inspect_model(load_model(path, unsafe=True)).num_classes == 3


@pytest.mark.parametrize("kind", ["multi-input", "multi-output", "not-image"])
def test_models_that_are_not_single_image_classifiers_are_refused(tmp_path, kind):
    if kind == "not-image":  # volumes (D, H, W, C); flat vectors and (H, W) are read as images (test_user_models)
        inputs = [keras.Input((4, 8, 8, 1))]
        outputs = [keras.layers.Dense(3)(keras.layers.Flatten()(inputs[0]))]
    else:
        inputs = [keras.Input((8, 8, 1)), keras.Input((8, 8, 1))] if kind == "multi-input" else [keras.Input((8, 8, 1))]
        flat = keras.layers.Flatten()(inputs[0])
        outputs = [keras.layers.Dense(3)(flat)] + ([keras.layers.Dense(2)(flat)] if kind == "multi-output" else [])
    path = tmp_path / "odd.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(UserError, match="inputs|outputs|not images"):
        inspect_model(load_model(path))


def test_h5_without_model_config_attr_is_weights_only(tmp_path):
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=[1, 2, 3])
    with pytest.raises(UserError, match="only weights"):
        load_model(path)


def _with_layers(*layers):
    return keras.Sequential([keras.Input((48, 48, 1)), *layers, keras.layers.Conv2D(2, 3, name="conv"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(7, activation="softmax")])


@pytest.mark.parametrize("layers, scales", [
    ([keras.layers.Rescaling(1 / 255)], True),
    ([keras.layers.RandomFlip("horizontal"), keras.layers.Rescaling(1 / 255)], True),  # augmentation first
    ([keras.Sequential([keras.layers.RandomFlip(), keras.layers.RandomRotation(0.1)]), keras.layers.Resizing(40, 40),
      keras.layers.Rescaling(1 / 127.5, offset=-1)], True),  # a nested augmentation block, then resizing
    ([], False),
    ([keras.layers.RandomFlip("horizontal")], False),
    ([keras.layers.Conv2D(3, 3), keras.layers.Rescaling(2.0)], False),  # scaling features, not the pixels
], ids=["first", "after-augmentation", "after-nested-augmentation-and-resizing", "none", "augmentation-only",
        "after-a-conv"])
def test_a_models_own_input_scaling_is_found_behind_augmentation(layers, scales):
    # Missing it would make `--preprocess auto` divide the pixels by 255 a second time.
    assert inspect_model(_with_layers(*layers)).scales_its_input is scales


def test_a_classifier_head_on_a_backbone_has_its_softmax_found():
    # Model(image, head(backbone(image))) with the head a model of its own on feature vectors.
    image = keras.Input((48, 48, 1))
    backbone = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Conv2D(4, 3, name="conv"),
                                 keras.layers.GlobalAveragePooling2D()], name="backbone")
    head = keras.Sequential([keras.Input((4,)), keras.layers.Dense(7, activation="softmax", name="scores")],
                            name="head")
    model = keras.Model(image, head(backbone(image)))
    info = inspect_model(model)
    assert (info.output_activation, info.softmax_layer) == ("softmax", "head/scores")
    x = np.random.default_rng(4).random((3, 48, 48, 1)).astype("float32")
    z = np.asarray(logits_model(model, info)(x))
    np.testing.assert_allclose(keras.ops.softmax(z).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(z.sum(axis=1), 1.0)
