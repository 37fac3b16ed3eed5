"""The plugin guide's example, ``examples/xai-fer-blur-ig`` (Blur Integrated Gradients written on the attribution
core), installed the way a user installs a third-party plugin and run through the real ``xai_fer`` entry point by
the real CLI; and its maps checked against what the method must compute.

Isolation: the example is built from a copy into a temporary ``--target`` folder and put on ``PYTHONPATH`` of
the subprocesses only, so the test environment itself is never changed. The subprocesses run without
``XAI_FER_DISABLE_PLUGINS`` (which tests/conftest.py sets for every other test), or third-party plugins would
be ignored.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_models

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "xai-fer-blur-ig"
MODULE = EXAMPLE / "xai_fer_blur_ig.py"


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "xai-fer"
    return [str(script)] if script.exists() else [sys.executable, "-m", "xai_fer"]


def _example_module():
    """The example's module from its source file (not installed in this process)."""
    spec = importlib.util.spec_from_file_location("xai_fer_blur_ig_source", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict:
    """Environment for subprocesses that see the example plugin (and any other installed one)."""
    root = tmp_path_factory.mktemp("blur-ig-plugin")
    source = shutil.copytree(EXAMPLE, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                                  "__pycache__"))
    target = root / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-input", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, f"pip could not install the example plugin:\n{install.stdout}{install.stderr}"
    assert list(target.glob("xai_fer_blur_ig-*.dist-info/entry_points.txt"))
    env = {k: v for k, v in os.environ.items() if k != "XAI_FER_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    return env


def test_example_declares_the_entry_point_the_guide_shows():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["xai_fer"] == {"blur-ig": "xai_fer_blur_ig"}
    assert "xai-fer" in project["dependencies"]
    # xai-fer brings TensorFlow; a plugin pinning its own build (tensorflow-cpu) would fight the user's.
    assert not [d for d in project["dependencies"] if d.lower().startswith(("tensorflow", "keras"))]


def test_installed_example_is_listed_by_plugins(plugin_env):
    result = subprocess.run([*_cli(), "plugins", "--json"], env=plugin_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    infos = {info["name"]: info for info in json.loads(result.stdout)}
    assert infos["blur-ig"]["package"] == "xai-fer-blur-ig"
    assert infos["blur-ig"]["version"] == "0.1.0"
    assert infos["blur-ig"]["registers"] == {"explainers": ["blur-ig"]}


def test_disable_plugins_hides_the_example(plugin_env):
    env = {**plugin_env, "XAI_FER_DISABLE_PLUGINS": "1"}
    result = subprocess.run([*_cli(), "plugins", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    names = {info["name"] for info in json.loads(result.stdout)}
    assert "blur-ig" not in names and "cnn" in names


def test_example_runs_through_explain_and_faithfulness_scores_it(plugin_env, tmp_path):
    tiny_models.sequential_fused_softmax().save(tmp_path / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", images=rng.integers(0, 256, size=(6, 48, 48), dtype=np.uint8),
             labels=np.arange(6) % 7)
    out = tmp_path / "run"
    result = subprocess.run(
        [*_cli(), "explain", str(tmp_path / "model.keras"), "--data", str(tmp_path / "data.npz"), "--out", str(out),
         "--preprocess", "unit", "-e", "faithfulness", "-e", "blur-ig", "-o", "blur-ig.indices=0,1,2",
         "-o", "blur-ig.steps=8", "-o", "faithfulness.randomization_images=2"],
        env=plugin_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = out / "blur-ig"
    assert (folder / "grid.png").stat().st_size > 1000 and (folder / "image_2.png").is_file()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["method"] == "blur-ig" and summary["signed"] is True and summary["num_images"] == 3
    assert summary["path"] == "Gaussian blur, sigma 8 to 0 in 8 steps"
    assert [image["row"] for image in summary["images"]] == [0, 1, 2]
    with np.load(folder / "arrays.npz") as arrays:
        maps = arrays["maps"]
        assert maps.shape == (3, 48, 48) and np.isfinite(maps).all() and (maps < 0).any() and (maps > 0).any()
        assert list(arrays["indices"]) == [0, 1, 2]
        errors = arrays["completeness_error"]
    assert errors.shape == (3,) and np.isfinite(errors).all()
    np.testing.assert_allclose([image["completeness_error"] for image in summary["images"]], errors, rtol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["explainers"]["blur-ig"]
    assert entry["options"]["steps"] == 8 and entry["options"]["max_sigma"] == 8.0
    assert entry["plugin"]["package"] == "xai-fer-blur-ig"
    assert list(manifest["explainers"]) == ["blur-ig", "faithfulness"]  # the planner ran faithfulness after it
    assert 'src="blur-ig/grid.png"' in (out / "index.html").read_text()
    # A method written on the core is scored like the built-in ones: next to the random and the Sobel map,
    # and re-run on the randomised models.
    faithfulness = json.loads((out / "faithfulness" / "summary.json").read_text())
    ranked = {row["map"] for row in faithfulness["ranking"]}
    assert "blur-ig" in ranked and len(ranked) == 3
    assert faithfulness["randomization"] == "done"


def test_example_options_are_validated():
    from xai_fer.errors import UserError
    from xai_fer.options import parse_options

    options = _example_module().BlurIGOptions
    parsed = parse_options(options, {"steps": "6", "per_class": "1"}, "blur-ig")
    assert (parsed.steps, parsed.per_class, parsed.max_sigma) == (6, 1, 8.0)
    with pytest.raises(UserError, match=r"max_sigma must be in \(0, 100\] and steps in 1..1024"):
        parse_options(options, {"steps": "0"}, "blur-ig")
    with pytest.raises(UserError, match="did you mean blur-ig.max_sigma"):
        parse_options(options, {"max_sigm": "2"}, "blur-ig")


def _context(model, size=12, count=3):
    from xai_fer.data import FER2013_CLASSES, Dataset
    from xai_fer.explain.pipeline import build_context

    images = np.random.default_rng(5).integers(0, 256, size=(count, size, size, 1), dtype=np.uint8)
    return build_context(model, Dataset(images=images, labels=np.arange(count) % 7, class_names=FER2013_CLASSES,
                                        source="test"), preprocess="raw")


def test_on_a_linear_model_the_maps_are_weight_times_the_path_difference():
    """f(x) = W x + b: every gradient on the path is W[:, class], so the maps are exactly W * (x - blur(x))
    summed over channels, whatever the steps, and they add up to f(x) - f(blur(x))."""
    import keras
    from scipy.ndimage import gaussian_filter

    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(), keras.layers.Dense(7)])
    context = _context(model)
    module = _example_module()
    rows = np.arange(3)
    targets = context.predictions[rows]
    result = module.BlurIG().compute(context, rows, targets, module.BlurIGOptions(steps=3, max_sigma=2.0))
    images = context.images(rows)
    blurred = gaussian_filter(images, sigma=(0, 2.0, 2.0, 0), mode="reflect")
    weights = model.layers[-1].get_weights()[0][:, targets].T.reshape(3, 12, 12, 1)
    expected = (weights * (images - blurred)).sum(axis=-1)
    np.testing.assert_allclose(result.values, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    assert (result.per_image["completeness_error"] < 1e-3).all()


def test_more_steps_make_the_maps_add_up_on_a_conv_model():
    """On a ReLU network the gradient changes along the path: the completeness error is what the steps buy, and
    it must fall as they grow."""
    context = _context(tiny_models.functional_separate_softmax(), size=48, count=6)
    module = _example_module()
    rows = np.arange(6)
    targets = context.predictions[rows]
    errors = [np.median(module.BlurIG().compute(context, rows, targets, module.BlurIGOptions(steps=steps))
                        .per_image["completeness_error"]) for steps in (4, 256)]
    assert errors[1] < 0.1 and errors[1] < errors[0] / 2, errors
