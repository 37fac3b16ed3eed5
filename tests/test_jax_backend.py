"""Keras' JAX backend: every built-in attribution method and activation-max give the maps TensorFlow gives (the
same saved model, loaded under each backend in its own subprocess, since the backend is fixed per process), and
``xai-fer explain`` runs where TensorFlow cannot be imported. Skipped where JAX is not installed."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from fixtures import sample_images, write_npz

from xai_fer.errors import UserError
from xai_fer.explain import backends

TESTS = Path(__file__).resolve().parent
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                               reason="jax is not installed (pip install -e '.[test]' installs it)")


def _run(args, backend: str, cwd=None, timeout=900):
    """A Python subprocess under ``backend``; under JAX, TensorFlow is made unimportable in it."""
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(TESTS)}
    if backend == "jax":
        args = ["-c", "import without_tensorflow, runpy, sys; sys.argv = sys.argv[1:]; "
                      "runpy.run_path(sys.argv[0], run_name='__main__')", *args]
    result = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _maps(model_path: Path, backend: str, preprocess: str, out: Path) -> dict:
    flags = ["--no-tensorflow"] if backend == "jax" else []
    _run([str(TESTS / "backend_maps.py"), str(model_path), str(out), preprocess, *flags], backend)
    with np.load(out) as saved:
        return {key: saved[key] for key in saved.files}


@needs_jax
@pytest.mark.parametrize("build, preprocess", [
    (tiny_models.batch_norm_branches, "unit"),  # conv + batch norm + residual branch, 48x48x1
    (tiny_models.residual_separable_rgb64, "symmetric"),  # strided 1x1 conv, separable convs, 64x64x3 from 48x48x1
], ids=["batch-norm-conv", "strided-1x1"])
def test_every_method_gives_the_same_maps_under_jax_and_tensorflow(tmp_path, build, preprocess):
    model_path = tmp_path / "model.keras"
    build().save(model_path)
    under_tf = _maps(model_path, "tensorflow", preprocess, tmp_path / "tf.npz")
    under_jax = _maps(model_path, "jax", preprocess, tmp_path / "jax.npz")
    assert str(under_tf.pop("backend")) == "tensorflow" and str(under_jax.pop("backend")) == "jax"
    assert not under_jax.pop("tensorflow_loaded")  # JAX alone computed these
    under_tf.pop("tensorflow_loaded")
    assert under_jax.keys() == under_tf.keys() and len(under_tf) == 20
    for key, expected in under_tf.items():
        scale = float(np.abs(expected).max())
        assert scale > 0, f"{key}: all zero, the comparison would prove nothing"
        # float32 tolerance, relative to each map set's own scale (maps are in score units per pixel). Occlusion
        # maps are differences of two nearly equal scores: their rounding is that of the scores (about 1e-7 on a
        # probability), whatever the map's own scale.
        floor = 1e-6 if key.startswith("occlusion/") else 0.0
        np.testing.assert_allclose(under_jax[key], expected, rtol=1e-4, atol=max(1e-4 * scale, floor), err_msg=key)


@needs_jax
def test_explain_runs_under_jax_where_tensorflow_cannot_be_imported(tmp_path):
    tiny_models.functional_separate_softmax().save(tmp_path / "model.keras")
    write_npz(tmp_path / "faces.npz", sample_images(14), labels=np.arange(14) % 7)
    script = ("import sys; from xai_fer.cli import main; sys.argv = ['xai-fer'] + sys.argv[1:]; main()")
    out = tmp_path / "report"
    args = ["--backend", "jax", "explain", "model.keras", "--data", "faces.npz", "--preprocess", "unit",
            "--out", str(out), "-e", "confusion", "-e", "saliency", "-e", "grad-cam", "-e", "integrated-gradients",
            "-e", "rise", "-e", "faithfulness", "-e", "activation-max", "-o", "integrated-gradients.steps=8",
            "-o", "rise.masks=40", "-o", "activation-max.steps=5", "-o", "activation-max.first=2"]
    (tmp_path / "cli.py").write_text(script)
    _run(["cli.py", *args], "jax", cwd=tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["keras_backend"] == "jax" and "tensorflow" not in manifest["versions"]
    assert "jax" in manifest["versions"]
    for name in ("confusion", "saliency", "grad-cam", "integrated-gradients", "rise", "faithfulness",
                 "activation-max"):
        assert (out / name / "summary.json").is_file(), name


def test_a_backend_keras_does_not_run_is_refused_in_one_line():
    import keras

    assert keras.backend.backend() == "tensorflow"  # the tests' own process (conftest.py)
    backends.use_backend("tensorflow")  # the one it runs: nothing to do
    backends.use_backend(None)
    with pytest.raises(UserError, match="already runs on 'tensorflow'"):
        backends.use_backend("jax")
    with pytest.raises(UserError, match="unknown backend 'torch'"):
        backends.use_backend("torch")


def test_batches_are_padded_to_a_handful_of_shapes():
    from xai_fer.explain.backends.jax import _bucket, _padded

    assert [_bucket(n) for n in (1, 2, 3, 5, 100, 128, 129)] == [1, 2, 4, 8, 128, 128, 256]
    seen = []

    def double(rows):
        seen.append(len(rows))
        return rows * 2

    got = _padded(double)(np.arange(5.0))
    np.testing.assert_array_equal(got, np.arange(5.0) * 2)
    assert seen == [8]
