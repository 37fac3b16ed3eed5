"""The plugin guide's example, ``examples/xai-fer-occlusion``, installed the way a user installs a third-party
plugin and run through the real ``xai_fer`` entry point by the real CLI.

Isolation: the example is built from a copy into a temporary ``--target`` folder and put on ``PYTHONPATH`` of
the subprocesses only, so the test environment itself is never changed. The subprocesses run without
``XAI_FER_DISABLE_PLUGINS`` (which tests/conftest.py sets for every other test), or third-party plugins would
be ignored.
"""

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
EXAMPLE = ROOT / "examples" / "xai-fer-occlusion"


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "xai-fer"
    return [str(script)] if script.exists() else [sys.executable, "-m", "xai_fer"]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict:
    """Environment for subprocesses that see the example plugin (and any other installed one)."""
    root = tmp_path_factory.mktemp("occlusion-plugin")
    source = shutil.copytree(EXAMPLE, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                                  "__pycache__"))
    target = root / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-input", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, f"pip could not install the example plugin:\n{install.stdout}{install.stderr}"
    assert list(target.glob("xai_fer_occlusion-*.dist-info/entry_points.txt"))
    env = {k: v for k, v in os.environ.items() if k != "XAI_FER_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    return env


def test_example_declares_the_entry_point_the_guide_shows():
    text = (EXAMPLE / "pyproject.toml").read_text()
    assert "[project.entry-points.xai_fer]" in text
    assert 'occlusion = "xai_fer_occlusion"' in text


def test_installed_example_is_listed_by_plugins(plugin_env):
    result = subprocess.run([*_cli(), "plugins", "--json"], env=plugin_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    infos = {info["name"]: info for info in json.loads(result.stdout)}
    assert infos["occlusion"]["package"] == "xai-fer-occlusion"
    assert infos["occlusion"]["version"] == "0.1.0"
    assert infos["occlusion"]["registers"] == {"explainers": ["occlusion"]}


def test_disable_plugins_hides_the_example(plugin_env):
    env = {**plugin_env, "XAI_FER_DISABLE_PLUGINS": "1"}
    result = subprocess.run([*_cli(), "plugins", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    names = {info["name"] for info in json.loads(result.stdout)}
    assert "occlusion" not in names and "cnn" in names


def test_example_runs_through_explain(plugin_env, tmp_path):
    tiny_models.sequential_fused_softmax().save(tmp_path / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", images=rng.integers(0, 256, size=(6, 48, 48), dtype=np.uint8),
             labels=np.arange(6) % 7)
    out = tmp_path / "run"
    result = subprocess.run(
        [*_cli(), "explain", str(tmp_path / "model.keras"), "--data", str(tmp_path / "data.npz"), "--out", str(out),
         "-e", "occlusion", "-o", "occlusion.images=3", "-o", "occlusion.stride=8"],
        env=plugin_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = out / "occlusion"
    assert (folder / "occlusion.png").stat().st_size > 1000
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["num_images"] == 3 and summary["patch"] == 8 and summary["stride"] == 8
    with np.load(folder / "arrays.npz") as arrays:
        assert arrays["heatmaps"].shape == (3, 48, 48)
        assert np.isfinite(arrays["heatmaps"]).all()
        assert list(arrays["indices"]) == [0, 1, 2]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["explainers"]["occlusion"]["options"] == {"patch": 8, "stride": 8, "images": 3}
    assert 'src="occlusion/occlusion.png"' in (out / "index.html").read_text()


def test_example_options_are_validated():
    import importlib.util

    from xai_fer.errors import UserError
    from xai_fer.options import parse_options

    spec = importlib.util.spec_from_file_location("xai_fer_occlusion_source", EXAMPLE / "xai_fer_occlusion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert parse_options(module.OcclusionOptions, {"patch": "6"}, "occlusion").patch == 6
    with pytest.raises(UserError, match="patch, stride and images must be at least 1"):
        parse_options(module.OcclusionOptions, {"patch": "0"}, "occlusion")
    with pytest.raises(UserError, match="did you mean occlusion.stride"):
        parse_options(module.OcclusionOptions, {"strid": "2"}, "occlusion")


@pytest.mark.parametrize("size, patch, stride", [(48, 6, 4), (48, 5, 3), (48, 8, 8), (10, 12, 4)])
def test_example_occludes_every_pixel(size, patch, stride):
    import importlib.util

    spec = importlib.util.spec_from_file_location("xai_fer_occlusion_source", EXAMPLE / "xai_fer_occlusion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    covered = np.zeros(size, bool)
    for start in module._starts(size, patch, stride):
        covered[start:start + patch] = True
    assert covered.all()
