"""activation-max on the tiny models: it raises the target filters' activations from noise and from an image,
sorts, is deterministic, and refuses bad layers and filters with one-line UserErrors before any work."""

import numpy as np
import pytest
from tiny_models import functional_separate_softmax, residual_separable_rgb64, sequential_fused_softmax
from xai_fer_plugins.activation_max import ActivationMax, ActivationMaxOptions, default_layer

from xai_fer.errors import UserError
from xai_fer.explain.ascent import AscentOptimiser, AscentRecipe, compiled, optimise
from xai_fer.explain.ascent_pieces import Jitter, TotalVariation, TowardGrey, laplacian
from xai_fer.explain.context import ExplainContext
from xai_fer.explain.filter_head import feature_model, filter_head
from xai_fer.explain.progress import RecordingProgress
from xai_fer.models.adapt import InputAdapter
from xai_fer.models.introspect import inspect_model
from xai_fer.options import parse_options

FAST = {"steps": 25, "learning_rate": 0.05}


def _context(model, dataset, scaling="unit", seed=0):
    info = inspect_model(model)
    return ExplainContext(model, info, dataset, InputAdapter(scaling, (48, 48, 1), info.input_shape), seed=seed)


@pytest.fixture(scope="module")
def residual():
    return residual_separable_rgb64()


@pytest.fixture
def residual_context(residual, tiny_dataset):
    """64x64x3 residual/separable model fed 48x48x1 data scaled to [-1, 1]."""
    return _context(residual, tiny_dataset, scaling="symmetric")


@pytest.mark.parametrize("seed_from", ["noise", "image"])
def test_raises_the_target_filters_on_the_residual_rgb64_model(residual_context, seed_from):
    options = ActivationMaxOptions(layer="sep_a", filters=(1, 4, 6), seed_from=seed_from, **FAST)
    artifact = ActivationMax().explain(residual_context, options)
    try:
        rows = artifact.summary["filters"]
        assert sorted(r["filter"] for r in rows) == [1, 4, 6]
        for row in rows:
            assert row["activation"] > row["activation_start"] * 1.2, row
            assert row["data_max"] > 0 and row["ratio_to_data_max"] is not None
        assert artifact.arrays["images"].shape == (3, 48, 48)  # data resolution and channels, not 64x64x3
        assert 0 <= artifact.arrays["images"].min() and artifact.arrays["images"].max() <= 255
        assert ("seed_image" in artifact.arrays) == (seed_from == "image")
        assert artifact.summary["seed_image"]["from"] == ("noise" if seed_from == "noise" else "data")
    finally:
        artifact.close()


def test_image_seed_starts_from_that_image(residual_context):
    options = ActivationMaxOptions(layer="sep_b", filters=(0,), seed_from="image", image_index=3, steps=1,
                                   learning_rate=1e-6)
    artifact = ActivationMax().explain(residual_context, options)
    try:
        seed = artifact.arrays["seed_image"]
        np.testing.assert_allclose(seed, residual_context.images(3)[..., 0], atol=1e-3)
        np.testing.assert_allclose(artifact.arrays["images"][0], seed, atol=0.05)
        assert artifact.summary["seed_image"] == {"from": "data", "image_index": 3}
    finally:
        artifact.close()


def test_image_file_seed_is_converted_to_the_data_shape(tmp_path, residual_context):
    from PIL import Image

    gradient = np.tile(np.linspace(0, 255, 30, dtype=np.uint8), (20, 1))
    path = tmp_path / "face.png"
    Image.fromarray(np.stack([gradient] * 3, axis=-1)).save(path)  # RGB, 30x20: other size and channels
    options = ActivationMaxOptions(layer="sep_a", filters=(0,), seed_from="image", image_file=str(path), steps=2)
    artifact = ActivationMax().explain(residual_context, options)
    try:
        seed = artifact.arrays["seed_image"]
        assert seed.shape == (48, 48)
        assert seed[:, 0].mean() < 20 and seed[:, -1].mean() > 235  # left-to-right ramp survived
    finally:
        artifact.close()


def test_results_are_sorted_and_labelled(tiny_dataset, tmp_path):
    context = _context(sequential_fused_softmax(), tiny_dataset)
    artifact = ActivationMax().explain(context, ActivationMaxOptions(layer="conv_b", **FAST))
    try:
        activation = artifact.arrays["activation"]
        assert len(activation) == 6  # default: all filters of the layer
        assert np.all(np.diff(activation) <= 0)
        assert [r["filter"] for r in artifact.summary["filters"]] == artifact.arrays["filters"].tolist()
        assert sorted(artifact.arrays["filters"].tolist()) == list(range(6))
        titles = [axis.get_title() for axis in artifact.figures["filters"].axes if axis.get_title()]
        assert titles[0].startswith(f"#{artifact.arrays['filters'][0]} ")
        assert artifact.summary["options"]["steps"] == FAST["steps"]
        assert artifact.summary["raised"] >= 5
        assert "filters.png" in artifact.write(tmp_path / "out")
    finally:
        artifact.close()


def test_the_callers_matplotlib_state_is_left_alone(tiny_dataset):
    # The Python API runs inside notebooks: no backend switch, no figure left registered with pyplot.
    import matplotlib
    import matplotlib.pyplot as plt

    plt.close("all")
    backend = matplotlib.get_backend()
    matplotlib.use("pdf")
    try:
        context = _context(sequential_fused_softmax(), tiny_dataset)
        artifact = ActivationMax().explain(context, ActivationMaxOptions(layer="conv_b", first=2, **FAST))
        assert matplotlib.get_backend() == "pdf" and plt.get_fignums() == []
        assert artifact.figures["filters"].axes
    finally:
        matplotlib.use(backend)


def test_same_seed_gives_identical_images(tiny_dataset):
    options = ActivationMaxOptions(layer="conv_b", first=3, jitter=2, **FAST)
    runs = []
    for _ in range(2):  # fresh contexts: nothing cached between the two runs
        artifact = ActivationMax().explain(_context(functional_separate_softmax(), tiny_dataset, seed=7), options)
        runs.append(artifact.arrays)
        artifact.close()
    for key in ("images", "filters", "activation"):
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    other = ActivationMax().explain(_context(functional_separate_softmax(), tiny_dataset, seed=8), options)
    other.close()
    assert not np.array_equal(other.arrays["images"], runs[0]["images"])


def test_default_layer_is_a_middle_conv_with_a_real_kernel(residual):
    from xai_fer_plugins.cnn import Cnn, CnnOptions

    cnn = Cnn().build((48, 48, 1), 7, CnnOptions())
    assert default_layer(cnn, inspect_model(cnn)) == "block2_conv2"
    assert default_layer(residual, inspect_model(residual)) == "sep_a"  # the 1x1 shortcut is skipped


def test_unknown_layer_lists_the_conv_layers(residual_context):
    with pytest.raises(UserError) as caught:
        ActivationMax().explain(residual_context, ActivationMaxOptions(layer="sep_c"))
    assert "unknown layer 'sep_c'" in caught.value.message
    assert "stem, sep_a, shortcut_1x1_s2, sep_b" in caught.value.hint
    with pytest.raises(UserError, match="not a conv layer.*valid conv layers: stem"):
        ActivationMax().validate(residual_context.info, ActivationMaxOptions(layer="sep_c"))


def test_non_conv_layer_is_refused(residual_context):
    dense = next(layer.name for layer in residual_context.model.layers if type(layer).__name__ == "Dense")
    with pytest.raises(UserError) as caught:
        ActivationMax().explain(residual_context, ActivationMaxOptions(layer=dense))
    assert "Dense layer, not a conv layer" in caught.value.message
    assert "valid conv layers: stem, sep_a, shortcut_1x1_s2, sep_b" in caught.value.hint


def test_filter_out_of_range_names_the_filter_count(residual_context):
    with pytest.raises(UserError) as caught:
        ActivationMax().explain(residual_context, ActivationMaxOptions(layer="sep_a", filters=(2, 8)))
    assert "filter 8 is out of range: layer 'sep_a' has 8 filters" in caught.value.one_line()


def test_bad_seed_image_references_are_user_errors(residual_context, tmp_path):
    with pytest.raises(UserError, match="image_index 99 is out of range: the data has 14 images"):
        ActivationMax().explain(residual_context, ActivationMaxOptions(seed_from="image", image_index=99))
    with pytest.raises(UserError, match="does not exist"):
        ActivationMax().explain(residual_context,
                                ActivationMaxOptions(seed_from="image", image_file=str(tmp_path / "no.png")))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(UserError, match="text.png: not a readable image"):
        ActivationMax().explain(residual_context,
                                ActivationMaxOptions(seed_from="image", image_file=str(tmp_path / "text.png")))


@pytest.mark.parametrize("raw, message", [
    ({"image_index": "3"}, "need seed_from=image"),
    ({"filters": "1,2", "first": "4"}, "filters or first"),
    ({"seed_from": "picture"}, "not one of noise, image"),
    ({"steps": "0"}, "steps must be at least 1"),
    ({"filters": "-1"}, "filters must be indices >= 0"),
])
def test_option_errors(raw, message):
    with pytest.raises(UserError, match=message):
        parse_options(ActivationMaxOptions, raw, "activation-max")


@pytest.mark.parametrize("build, layer", [
    (sequential_fused_softmax, "conv_a"),  # first layer: valid padding, relu, reads the model input itself
    (functional_separate_softmax, "conv_b"),  # stride 2, same padding, relu
    (residual_separable_rgb64, "sep_b"),  # separable conv after a residual add
])
def test_one_filter_head_matches_the_layer(build, layer):
    import tensorflow as tf

    model = build()
    picked = tf.constant([3, 0, 1], tf.int32)
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (3, *model.inputs[0].shape[1:])).astype(np.float32))
    full = tf.function(feature_model(model, layer))(x).numpy()
    got = tf.function(filter_head(model, model.get_layer(layer)))(x, picked).numpy()
    np.testing.assert_allclose(got, np.stack([full[i, ..., f] for i, f in enumerate(picked.numpy())]), atol=1e-5)


def test_full_layer_objective_gives_the_same_ascent(residual, residual_context):
    """The generic path (objective from the full layer output, used for layer kinds without a one-filter
    head) and the head path optimise the same thing; here through the strided 1x1 conv, compiled."""
    layer = residual.get_layer("shortcut_1x1_s2")
    features = feature_model(residual, layer.name)
    start = np.random.default_rng(0).uniform(0.3, 0.7, (48, 48, 1)).astype(np.float32)
    recipe = AscentRecipe(10, 0.05, (Jitter(1),), (TowardGrey(0.05), TotalVariation(1.0)))
    results = [optimise(start, [0, 5], recipe, 0, AscentOptimiser(features, residual_context.adapter, head))
               for head in (None, filter_head(residual, layer))]
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-3)
    assert np.all(results[0][2] > results[0][1])


# ---------------------------------------------------------------------------------------------------------
# The ascent engine: its composable pieces reproduce the fused step it replaced, and take new pieces.


def _fused_reference_ascent(optimiser, start, filters, steps, lr, l2, tv, jitter, seed):
    """The step as activation-max wrote it before its regularisers became pieces: one fused expression,
    ``grad / rms - 2 l2 (v - 0.5) + 2 tv laplacian(v)``, jitter shifts from ``default_rng([seed, 1])``."""
    import tensorflow as tf

    shifts = np.random.default_rng([seed, 1]).integers(-jitter, jitter + 1, size=(steps, 2))

    @tf.function
    def run(v, picked, shifts, lr, l2, tv):
        for step in tf.range(steps):
            with tf.GradientTape() as tape:
                tape.watch(v)
                score = optimiser._objective(tf.roll(v, shifts[step], axis=[1, 2]), picked)
            grad = tape.gradient(score, v)
            rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=[1, 2, 3], keepdims=True))
            direction = grad / (rms + 1e-12) - 2.0 * l2 * (v - 0.5) + 2.0 * tv * laplacian(v)
            v = tf.clip_by_value(v + lr * direction, 0.0, 1.0)
        return v

    v0 = np.broadcast_to(start, (len(filters), *start.shape)).astype(np.float32)
    hyper = [tf.constant(x, tf.float32) for x in (lr, l2, tv)]
    return run(tf.constant(v0), tf.constant(filters, tf.int32), tf.constant(shifts, tf.int32), *hyper).numpy()


@pytest.mark.parametrize("build, layer", [(sequential_fused_softmax, "conv_b"), (residual_separable_rgb64, "sep_a")])
def test_the_pieces_reproduce_the_fused_step(tiny_dataset, build, layer):
    context = _context(build(), tiny_dataset, scaling="unit")
    optimiser = compiled(context, layer).optimiser
    start = np.random.default_rng(3).uniform(0.2, 0.8, (48, 48, 1)).astype(np.float32)
    recipe = AscentRecipe(23, 0.03, (Jitter(2),), (TowardGrey(0.2), TotalVariation(0.7)))  # 23: chunks of 10, 3
    images, before, after = optimise(start, [2, 0, 3], recipe, 5, optimiser)
    expected = _fused_reference_ascent(optimiser, start, [2, 0, 3], 23, 0.03, 0.2, 0.7, 2, 5)
    np.testing.assert_array_equal(images, expected)
    assert (after > before).any()  # the ascent did move (a filter dead on this start may not)


def test_the_explainer_takes_added_pieces(tiny_dataset):
    """A subclass adds a regulariser (toward white) and a modifier (a fixed flip): both change the result the
    way they say, and a regulariser whose gradient is zero changes nothing."""
    import tensorflow as tf

    class TowardWhite:
        weight = 0.5

        def gradient(self, v, weight):
            return weight * (v - 1.0)

    class Nothing:
        weight = 1.0

        def gradient(self, v, weight):
            return tf.zeros_like(v)

    class Flip:
        salt = 7

        def draw(self, steps, rng):
            return np.zeros((steps, 1), np.float32)

        def apply(self, x, drawn):
            return tf.reverse(x, axis=[2])

    def run(extra_regularizers=(), extra_modifiers=()):
        class Extended(ActivationMax):
            def regularizers(self, options):
                return [*super().regularizers(options), *extra_regularizers]

            def modifiers(self, options):
                return [*super().modifiers(options), *extra_modifiers]

        context = _context(sequential_fused_softmax(), tiny_dataset)
        artifact = Extended().explain(context, ActivationMaxOptions(layer="conv_b", first=2, **FAST))
        artifact.close()
        return artifact.arrays["images"], artifact.arrays["filters"]

    plain, filters = run()
    np.testing.assert_array_equal(run([Nothing()])[0], plain)
    brighter, _ = run([TowardWhite()])
    assert brighter.mean() > plain.mean() + 10
    flipped, _ = run(extra_modifiers=[Flip()])
    assert not np.array_equal(flipped, plain)


def test_a_long_ascent_reports_moving_progress(tiny_dataset):
    progress = RecordingProgress()
    context = _context(sequential_fused_softmax(), tiny_dataset)
    context.progress = progress
    ActivationMax().explain(context, ActivationMaxOptions(layer="conv_b", steps=35, learning_rate=0.05)).close()
    steps = "activation-max: ascent steps (6 filters)"
    assert ("open", steps, 35) in progress.events
    assert [e[2] for e in progress.events if e[:2] == ("advance", steps)] == [10, 10, 10, 5]
    assert progress.done(steps) == [35] and progress.done("activation-max: data images scanned") == [14]
