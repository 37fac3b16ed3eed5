"""Models and data as users bring them, beyond the common shapes: integer or mixed-precision inputs, channel
layouts, pixel scales, scaling layers made for 0-1 pixels, nested backbones, log-softmax outputs, models that
cannot load or were never built. Each either works or is refused in one clear line."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from fixtures import sample_images, write_image_folder, write_npz
from keras import layers
from typer.testing import CliRunner

from xai_fer.cli import app
from xai_fer.data import FER2013_CLASSES, Dataset, load_dataset
from xai_fer.errors import UserError
from xai_fer.explain.pipeline import build_context, run_explainers
from xai_fer.models.introspect import inspect_model, layer_output_model, logits_model
from xai_fer.models.loading import load_model


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(*args) -> str:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3, result.output
    return " ".join(result.output.split())


def small_convnet(inputs, x, classes=7, name="user"):
    x = layers.Conv2D(4, 3, activation="relu", name="conv_a")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax", name="out")(x), name=name)


@pytest.fixture
def data(tmp_path):
    return write_npz(tmp_path / "data.npz", sample_images(14)[..., None], np.arange(14) % 7)


def test_a_uint8_input_model_is_explained_without_gradients_and_refused_with_them(tmp_path, data):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1), dtype="uint8")
    model = small_convnet(inputs, layers.Rescaling(1 / 255)(inputs), name="uint8_input")
    model.save(tmp_path / "u8.keras")

    result = invoke("explain", tmp_path / "u8.keras", "--data", data, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "report" / "manifest.json").read_text())
    # Methods that need no gradient (forward passes only) still explain it; every gradient method is skipped.
    assert {"confusion", "occlusion", "rise"} <= set(manifest["explainers"])
    for name in ("saliency", "grad-cam", "smoothgrad", "integrated-gradients", "gradient-x-input"):
        assert "takes uint8 input" in manifest["skipped"][name]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<h2>not run</h2>" in page and "takes uint8 input" in page.split("<h2>manifest</h2>")[0]
    assert "saliency: model 'uint8_input' takes uint8 input" in one_line_error(
        "explain", tmp_path / "u8.keras", "--data", data, "-e", "saliency", "--out", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_gradient_explainers_name_the_backend_they_need(monkeypatch):
    from xai_fer.explain.gradients import check_differentiable

    inputs = keras.Input((48, 48, 1))
    info = inspect_model(small_convnet(inputs, inputs))
    check_differentiable(info, "saliency")
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    check_differentiable(info, "saliency")  # the core has compiled gradients under JAX too
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(UserError, match="saliency: gradients are computed under Keras' TensorFlow or JAX backend, "
                                        "and KERAS_BACKEND is 'torch'"):
        check_differentiable(info, "saliency")


def test_activation_max_runs_on_a_mixed_precision_model(tiny_dataset):
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((48, 48, 1))
        x = layers.Conv2D(4, 3, activation="relu", name="conv_a")(inputs)
        x = layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, layers.Dense(7, activation="softmax", dtype="float32")(x))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    artifacts, *_ = run_explainers(model, tiny_dataset, ["activation-max"],
                                   {"activation-max": {"steps": "3", "first": "2"}})
    reached = artifacts["activation-max"].summary["filters"]
    assert len(reached) == 2 and all(np.isfinite(f["activation"]) for f in reached)


@pytest.mark.parametrize(("data_shape", "model_shape", "hint"), [
    ((48, 48, 4), (48, 48, 1), "gray and RGB are converted into each other"),
    ((1, 48, 48), (48, 48, 1), "the images look channels-first (1x48x48)"),
    ((48, 48, 1), (1, 48, 48), "the model looks channels-first (1x48x48)"),
])
def test_channel_counts_that_do_not_convert_are_refused(data_shape, model_shape, hint):
    from xai_fer.models.adapt import InputAdapter

    with pytest.raises(UserError) as refused:
        InputAdapter("unit", data_shape, model_shape)
    assert hint in str(refused.value)
    InputAdapter("unit", (48, 48, 3), (48, 48, 1))  # RGB data on a gray model: converted by luma


def _ringing(x):
    """0-1 floats with a resampling's slight overshoot."""
    unit = x.astype(np.float32) / 255
    unit[0, 0, :2] = (-0.003, 1.004)
    return unit


@pytest.mark.parametrize(("stored", "recorded"), [
    (lambda x: x.astype(np.float32) / 255, "floats 0-1 x 255"),
    (_ringing, "floats 0-1 x 255 (clipped to 0-1 first)"),
    (lambda x: x.astype(np.uint16) * 257, "16-bit x 255/65535"),
    (lambda x: x.astype(np.float32), None),  # floats already 0-255
])
def test_pixels_are_put_on_the_0_255_scale_and_it_is_recorded(tmp_path, stored, recorded):
    images = sample_images(14)
    dataset = load_dataset(write_npz(tmp_path / "d.npz", stored(images), np.arange(14) % 7))
    np.testing.assert_allclose(dataset.images[..., 0].ravel()[2:], images.ravel()[2:], atol=1e-3)
    assert dataset.pixel_scaling == recorded and dataset.subset(slice(0, 3)).pixel_scaling == recorded
    if recorded:  # and evaluate says what was done
        inputs = keras.Input((48, 48, 1))
        small_convnet(inputs, layers.Rescaling(1 / 255)(inputs)).save(tmp_path / "m.keras")
        result = invoke("evaluate", tmp_path / "m.keras", "--data", tmp_path / "d.npz")
        assert result.exit_code == 0 and f"pixel_scaling {recorded}" in result.output, result.output


@pytest.mark.parametrize(("images", "message"), [
    (lambda x: x.astype(np.int32) + 43, "pixel values run from 43 to 298"),  # not a bit depth xai-fer knows
    (lambda x: x.astype(np.uint16) * 16, "pixel values run from 0 to 4080"),  # 12-bit values in 16-bit integers
])
def test_pixels_of_other_bit_depths_are_refused(tmp_path, images, message):
    with pytest.raises(UserError, match=message):
        load_dataset(write_npz(tmp_path / "d.npz", images(sample_images(14)), np.arange(14) % 7))


def test_a_resamplings_overshoot_is_clipped_and_the_range_found_without_a_copy(tmp_path):
    import tracemalloc

    images = sample_images(14).astype(np.float64)
    images[0, 0, :2] = (-0.4, 255.6)  # bicubic ringing
    dataset = Dataset(images=np.repeat(images, 40, axis=0), labels=None, class_names=FER2013_CLASSES, source="d")
    tracemalloc.start()
    dataset.put_on_255_scale(chunk=16)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert dataset.images.min() == 0 and dataset.images.max() == 255
    assert peak > dataset.images.nbytes  # the clipped copy...
    dataset.put_on_255_scale(chunk=16)  # ...but finding the range alone stays within a few chunks
    tracemalloc.start()
    dataset.put_on_255_scale(chunk=16)
    assert tracemalloc.get_traced_memory()[1] < 4 * 16 * 48 * 48 * 8
    tracemalloc.stop()


def test_a_dataset_made_in_python_is_put_on_the_0_255_scale_too(tiny_dataset):
    unit = Dataset(images=tiny_dataset.images / 255.0, labels=tiny_dataset.labels,
                   class_names=tiny_dataset.class_names, source="unit")
    inputs = keras.Input((48, 48, 1))
    model = small_convnet(inputs, layers.Rescaling(1 / 255)(inputs))
    np.testing.assert_allclose(build_context(model, unit).probabilities,
                               build_context(model, tiny_dataset).probabilities, atol=1e-5)


@pytest.mark.parametrize("transform", [
    lambda x: (x - x.mean()) / x.std(),  # standardised
    lambda x: (x - 0.3 * 255) / (x.std() * 3),  # standardised, within [-1, 4]
    lambda x: x / 127.5 - 1,  # [-1, 1]
])
def test_standardised_pixels_are_refused(tmp_path, transform):
    images = sample_images(14).astype(np.float32)
    with pytest.raises(UserError, match="pixel values run from -"):
        load_dataset(write_npz(tmp_path / "d.npz", transform(images), np.arange(14) % 7))


def test_a_class_name_given_twice_is_refused(tmp_path):
    path = write_npz(tmp_path / "d.npz", sample_images(6), np.arange(6) % 3, class_names=["x", "x", "y"])
    with pytest.raises(UserError, match="class name 'x' is given twice"):
        load_dataset(path)


@pytest.mark.parametrize(("scaling_layer", "expected"), [
    (lambda: layers.Rescaling(1 / 255), "raw"),
    (lambda: layers.Rescaling(1 / 127.5, offset=-1), "raw"),
    (lambda: layers.Rescaling(2.0, offset=-1), "unit"),  # made for 0-1 pixels
    (lambda: layers.Normalization(mean=120.0, variance=3000.0), "raw"),
    (lambda: layers.Normalization(mean=0.47, variance=0.06), "unit"),  # adapted on pixels / 255
])
def test_auto_scaling_reads_what_a_scaling_layer_was_made_for(scaling_layer, expected, tiny_dataset):
    inputs = keras.Input((48, 48, 1))
    model = small_convnet(inputs, scaling_layer()(inputs))
    assert build_context(model, tiny_dataset).adapter.scaling == expected


@pytest.mark.filterwarnings("ignore:You are saving a model that has not yet been built")
def test_an_unbuilt_sequential_model_is_one_line(tmp_path):
    model = keras.Sequential([layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(7)], name="unbuilt")
    model.save(tmp_path / "unbuilt.keras")
    message = one_line_error("info", tmp_path / "unbuilt.keras")
    assert "model 'unbuilt' was saved before it was built" in message and "model.build" in message


def test_an_unregistered_custom_layer_is_named(tmp_path):
    class MyScale(layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((48, 48, 1))
    model = small_convnet(inputs, MyScale()(inputs))
    model.save(tmp_path / "custom.keras")
    with pytest.raises(UserError, match="it uses the custom object '.*MyScale', which is not registered here"):
        load_model(tmp_path / "custom.keras")


def test_a_subset_of_fer_folders_on_a_smaller_model_says_why(tmp_path):
    images = sample_images(6)
    root = write_image_folder(tmp_path / "faces", images, np.array([3, 4, 6, 3, 4, 6]))
    inputs = keras.Input((48, 48, 1))
    small_convnet(inputs, inputs, classes=3).save(tmp_path / "three.keras")
    message = one_line_error("evaluate", tmp_path / "three.keras", "--data", root)
    assert "labels go up to 6 (Neutral) but the model has 3 classes" in message
    assert "keep FER2013's label indices" in message


def backbone_model():
    """Transfer-learning layout: a functional backbone called once as one layer, then a head."""
    keras.utils.set_random_seed(4)
    inner_in = keras.Input((48, 48, 1))
    y = layers.Conv2D(4, 3, activation="relu", name="inner_a")(inner_in)
    y = layers.Conv2D(6, 3, activation="relu", name="inner_b")(y)
    backbone = keras.Model(inner_in, y, name="backbone")
    inputs = keras.Input((48, 48, 1))
    x = backbone(layers.Rescaling(1 / 255)(inputs))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(7, activation="softmax")(x), name="wrapped")


def test_conv_layers_of_a_nested_backbone_can_be_visualised(tiny_dataset):
    model = backbone_model()
    assert inspect_model(model).conv_layers == ["backbone/inner_a", "backbone/inner_b"]
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype(np.float32)
    cut = layer_output_model(model, "backbone/inner_b")
    backbone = model.get_layer("backbone")
    expected = keras.Model(backbone.inputs, backbone.get_layer("inner_b").output)(x / 255)
    np.testing.assert_allclose(np.asarray(cut(x)), np.asarray(expected), atol=1e-5)

    artifacts, *_ = run_explainers(model, tiny_dataset, ["activation-max"],
                                   {"activation-max": {"layer": "backbone/inner_b", "steps": "5", "filters": "1,5"}})
    summary = artifacts["activation-max"].summary
    assert summary["layer"] == "backbone/inner_b"
    assert all(f["activation"] > f["activation_start"] for f in summary["filters"])


def test_a_log_softmax_output_gives_probabilities_and_pre_softmax_scores(tiny_dataset):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((48, 48, 1))
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(inputs))
    logits = layers.Dense(7, name="logits")(x)
    model = keras.Model(inputs, layers.Activation("log_softmax")(logits))
    info = inspect_model(model)
    assert info.output_activation == "log_softmax" and info.softmax_is_separate_layer
    assert logits_model(model, info).outputs[0].name == model.get_layer("logits").output.name
    context = build_context(model, tiny_dataset)
    log_probabilities = np.asarray(model(context.model_inputs()))
    np.testing.assert_allclose(context.probabilities, np.exp(log_probabilities), atol=1e-5)


def test_a_dataset_with_unconvertible_channels_fails_before_work(tmp_path):
    data = Dataset(images=np.zeros((2, 48, 48, 4), np.uint8), labels=None, class_names=FER2013_CLASSES,
                   source="rgba")
    inputs = keras.Input((48, 48, 1))
    with pytest.raises(UserError, match="data has 4 channels but the model expects 1"):
        build_context(small_convnet(inputs, inputs), data)


def test_a_model_on_flat_pixels_is_explained_on_the_images(tmp_path, data):
    keras.utils.set_random_seed(6)
    inputs = keras.Input((48 * 48,))
    hidden = layers.Dense(16, activation="relu")(layers.Rescaling(1 / 255)(inputs))
    keras.Model(inputs, layers.Dense(7, activation="softmax")(hidden), name="flat").save(tmp_path / "flat.keras")

    result = invoke("explain", tmp_path / "flat.keras", "--data", data, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "report" / "manifest.json").read_text())
    assert manifest["preprocessing"]["reshape"] == "48x48x1 -> 2304"
    forced = one_line_error("explain", tmp_path / "flat.keras", "--data", data, "-o", "activation-max.steps=5",
                            "--out", tmp_path / "forced")
    assert "has no conv layers" in forced and "it ran because options were given for it" in forced
    assert {"confusion", "saliency"} <= set(manifest["explainers"])
    assert {"activation-max", "grad-cam", "grad-cam-plus-plus"} == set(manifest["skipped"])  # no conv layers
    maps = np.load(tmp_path / "report" / "saliency" / "arrays.npz")["maps"]
    assert maps.shape[1:] == (48, 48) and maps.max() > 0

    model = load_model(tmp_path / "flat.keras")
    dataset = load_dataset(data)
    expected = np.asarray(model(dataset.images.reshape(len(dataset), -1).astype(np.float32)))
    np.testing.assert_allclose(build_context(model, dataset).probabilities, expected, atol=1e-5)


def test_models_on_h_by_w_input_and_on_any_image_size(tiny_dataset):
    from xai_fer.models.adapt import InputAdapter

    keras.utils.set_random_seed(7)
    inputs = keras.Input((48, 48))
    x = layers.Reshape((48, 48, 1))(layers.Rescaling(1 / 255)(inputs))
    two_d = small_convnet(inputs, x)
    context = build_context(two_d, tiny_dataset)
    assert context.adapter.describe()["reshape"] == "48x48x1 -> 48x48"
    np.testing.assert_allclose(context.probabilities, np.asarray(two_d(tiny_dataset.images[..., 0] * 1.0)),
                               atol=1e-5)
    artifacts, *_ = run_explainers(two_d, tiny_dataset, ["activation-max"],
                                   {"activation-max": {"steps": "2", "first": "1"}})
    assert artifacts["activation-max"].summary["layer"] == "conv_a"

    flat_rgb = InputAdapter.for_model("unit", (40, 56, 1), (40 * 56 * 3,))  # gray data, a flat RGB model
    assert flat_rgb.model_shape == (40, 56, 3) and flat_rgb.describe()["reshape"] == "40x56x3 -> 6720"

    inputs = keras.Input((None, None, 1))
    any_size = small_convnet(inputs, layers.Rescaling(1 / 255)(inputs))
    wide = Dataset(images=np.zeros((2, 40, 56, 1), np.uint8), labels=None, class_names=FER2013_CLASSES,
                   source="wide")
    adapter = build_context(any_size, wide).adapter
    assert adapter.model_shape == (40, 56, 1) and adapter.describe()["resize"] is None


def test_rgb_becomes_gray_by_luma_and_shrinking_is_antialiased():
    from xai_fer.models.adapt import InputAdapter

    red = np.zeros((1, 4, 4, 3), np.float32)
    red[..., 0] = 255
    gray = np.asarray(InputAdapter("raw", (4, 4, 3), (4, 4, 1))(red))
    np.testing.assert_allclose(gray, 0.299 * 255, rtol=1e-5)  # as PIL's "L" mode converts it

    stripes = np.zeros((1, 64, 64, 1), np.float32)
    stripes[:, :, ::2] = 255  # one-pixel stripes: plain bilinear sampling at 48/64 would alias them
    shrink = InputAdapter("raw", (64, 64, 1), (48, 48, 1))
    assert shrink.describe()["resize"] == "64x64 -> 48x48 bilinear antialiased"
    assert np.asarray(shrink(stripes)).std() < 0.25 * stripes.std()
    assert InputAdapter("raw", (48, 48, 1), (64, 64, 1)).describe()["resize"] == "48x48 -> 64x64 bilinear"


@pytest.mark.parametrize("head", ["sigmoid", "separate_sigmoid", "logit"])
def test_a_binary_model_with_one_output_is_explained_as_two_classes(tmp_path, head):
    keras.utils.set_random_seed(8)
    inputs = keras.Input((48, 48, 1))
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, name="conv_a")(layers.Rescaling(1 / 255)(inputs)))
    z = layers.Dense(1, activation="sigmoid" if head == "sigmoid" else None, name="score")(x)
    output = layers.Activation("sigmoid")(z) if head == "separate_sigmoid" else z
    model = keras.Model(inputs, output, name="binary")
    model.save(tmp_path / "binary.keras")
    info = inspect_model(model)
    assert info.binary_output and info.num_classes == 2

    images = sample_images(10)[..., None]
    data = write_npz(tmp_path / "happy.npz", images, np.arange(10) % 2, class_names=["other", "happy"])
    context = build_context(model, load_dataset(data))
    raw = np.asarray(model(images.astype(np.float32)))[:, 0]
    p = raw if head != "logit" else 1 / (1 + np.exp(-raw))
    np.testing.assert_allclose(context.probabilities, np.stack([1 - p, p], axis=1), atol=1e-5)
    logit = np.log(p / (1 - p))
    scores = np.asarray(context.data_model(logits=True)(images.astype(np.float32)))
    np.testing.assert_allclose(scores, np.stack([-logit / 2, logit / 2], axis=1), atol=1e-3)
    assert context.class_names == ("other", "happy")

    result = invoke("explain", tmp_path / "binary.keras", "--data", data, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "report" / "manifest.json").read_text())
    assert {"activation-max", "confusion", "saliency", "grad-cam"} <= set(manifest["explainers"])
    assert not manifest["skipped"]
    summary = json.loads((tmp_path / "report" / "saliency" / "summary.json").read_text())
    assert "fell back" not in json.dumps(summary)


def test_a_model_of_any_size_refuses_images_too_small_for_it(tmp_path):
    inputs = keras.Input((None, None, 1))
    x = layers.Conv2D(4, 3)(layers.Conv2D(4, 3)(layers.Rescaling(1 / 255)(inputs)))
    model = keras.Model(inputs, layers.Dense(7, activation="softmax")(layers.GlobalAveragePooling2D()(x)),
                        name="open")
    tiny = Dataset(images=np.zeros((2, 3, 3, 1), np.uint8), labels=None, class_names=FER2013_CLASSES,
                   source="tiny")
    with pytest.raises(UserError, match="model 'open' cannot take the data's 3x3 images: ") as refused:
        build_context(model, tiny)
    assert "output size would be" in str(refused.value) and "inputs=" not in str(refused.value)
    assert "\x1b" not in str(refused.value) and "function_node" not in str(refused.value)
