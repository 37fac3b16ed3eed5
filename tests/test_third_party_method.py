"""Attribution methods written by a third party, as the plugin guide teaches, registered through a pluggy plugin
(this module itself, as an installed plugin's module would be) and run through ``run_explainers`` and the CLI
on the model whose EAGER backward pass corrupts memory in TensorFlow 2.21's oneDNN CPU kernels (residual add,
separable convs, a 1x1 stride-2 conv, 64x64x3; "double free or corruption", exit 134/139): the regression test
that the way the guide shows (the engine's compiled gradients, or a ``tf.function`` of one's own) is safe.

The guide includes the code between the ``--8<--`` markers below, so what it shows is what runs here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from typer.testing import CliRunner

from xai_fer import registry
from xai_fer.cli import app
from xai_fer.data import FER2013_CLASSES, Dataset
from xai_fer.errors import UserError
from xai_fer.explain.artifact import Artifact

# --8<-- [start:method]
from xai_fer.explain.attribution import Attribution, AttributionOptions
from xai_fer.explain.gradients import saliency_maps
from xai_fer.hookspecs import hookimpl
from xai_fer.options import option


@dataclass
class MySmoothGradOptions(AttributionOptions):
    samples: int = option(8, "noisy copies per image")
    noise: float = option(0.1, "noise standard deviation, a fraction of the data's range (0-255)")


class MySmoothGrad(Attribution):
    name = "my-smoothgrad"
    description = "gradients averaged over noisy copies of each image"
    Options = MySmoothGradOptions

    def attribute(self, engine, images, targets, options):
        low, high = engine.data_range
        rng = engine.rng(salt=1)  # seeded by the run's --seed: the same run draws the same noise
        total = np.zeros_like(images)
        for _ in range(options.samples):
            noisy = images + rng.normal(0, options.noise * (high - low), images.shape).astype(np.float32)
            total += engine.gradients(noisy, targets)  # compiled and batched: never an eager tape
        return saliency_maps(total / options.samples)  # |gradient|, max over channels: (N, H, W)
# --8<-- [end:method]


# --8<-- [start:own-gradient]
@dataclass
class MarginOptions(AttributionOptions):
    pass


def margin_gradients(model, images, targets):
    """d (target score - best other score) / d pixel: a gradient the engine does not offer, so compiled here."""
    import tensorflow as tf

    @tf.function  # traced once per call (chunk); the same tape run eagerly can crash the process
    def gradient(x, classes):
        with tf.GradientTape() as tape:
            tape.watch(x)
            scores = model(x, training=False)
            own = tf.gather(scores, classes, axis=1, batch_dims=1)
            others = tf.where(tf.one_hot(classes, tf.shape(scores)[1]) > 0, -np.inf, scores)
            total = tf.reduce_sum(own - tf.reduce_max(others, axis=1))  # inside the tape, or it is not recorded
        return tape.gradient(total, x)  # images are independent: row i's gradient is its own margin's

    return gradient(tf.constant(images), tf.constant(targets, tf.int32)).numpy()


class MarginSaliency(Attribution):
    name = "margin-saliency"
    description = "saliency of the target class's lead over the runner-up"
    Options = MarginOptions
    signed = True

    def attribute(self, engine, images, targets, options):
        return margin_gradients(engine.model, images, targets).sum(axis=-1)  # engine.model: the score model
# --8<-- [end:own-gradient]


# --8<-- [start:reads-others]
@dataclass
class AgreementOptions:
    pass


def rank_correlation(first, second) -> float | None:
    """Spearman correlation of two maps' magnitudes; None when one is constant (it ranks nothing)."""
    from scipy.stats import rankdata

    a, b = rankdata(np.abs(first).ravel()), rankdata(np.abs(second).ravel())
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else None


class MapAgreement:
    name = "map-agreement"
    description = "how far the run's attribution maps agree: Spearman correlation of |map|, per image"
    Options = AgreementOptions
    reads_attributions = True  # the planner runs it after every attribution method of the run

    def check(self, context, options):
        methods = [item.name for item in context.plan if isinstance(item.explainer, Attribution)]
        if len(methods) < 2:
            raise UserError("map-agreement compares maps, and this run has fewer than two attribution methods",
                            "add some, e.g. -e saliency -e grad-cam -e map-agreement")

    def explain(self, context, options):
        pairs = []
        for first, second in combinations(context.attributions, 2):  # name -> AttributionResult, in run order
            a, b = context.attributions[first], context.attributions[second]
            in_a = {key: k for k, key in enumerate(zip(a.rows, a.targets, strict=True))}  # (row, class) -> index
            rhos = [rank_correlation(a.maps[in_a[key]], b.maps[k])  # the same image explained for the same class
                    for k, key in enumerate(zip(b.rows, b.targets, strict=True)) if key in in_a]
            known = [rho for rho in rhos if rho is not None]
            pairs.append({"first": first, "second": second, "images": len(rhos),
                          "mean_rho": float(np.mean(known)) if known else None})
        return Artifact(summary={"pairs": pairs})
# --8<-- [end:reads-others]


@hookimpl
def register_explainers(register):
    register(MySmoothGrad())
    register(MarginSaliency())
    register(MapAgreement())


PLUGIN = "third-party-methods"


# --8<-- [start:registering]
@pytest.fixture
def third_party_plugin():
    """This module as a plugin, as its entry point would load it; unregistered after the test."""
    plugin = sys.modules[__name__]
    registry.add_plugin(plugin, name="third-party-methods")
    try:
        yield plugin  # registry.explainers() now holds what its register_explainers registers
    finally:
        registry.remove_plugin(plugin)
# --8<-- [end:registering]


def run_explainers(*args, **kwargs):
    from xai_fer.explain.pipeline import run_explainers

    return run_explainers(*args, **kwargs)


def rgb64_data(count: int = 7, seed: int = 0) -> Dataset:
    """64x64 RGB images, the model's own input size: nothing in between the data and the crashing convs."""
    images = np.random.default_rng(seed).integers(0, 256, size=(count, 64, 64, 3), dtype=np.uint8)
    return Dataset(images=images, labels=np.arange(count) % 7, class_names=FER2013_CLASSES, source="rgb64")


def test_the_plugin_registers_its_methods_under_its_name(third_party_plugin):
    assert registry.provenance("explainers", "my-smoothgrad")["plugin"] == PLUGIN
    assert isinstance(registry.explainers()["margin-saliency"], Attribution)
    registry.remove_plugin(third_party_plugin)
    assert "my-smoothgrad" not in registry.explainers()
    registry.add_plugin(third_party_plugin, name=PLUGIN)  # the fixture unregisters it


def test_third_party_methods_run_on_the_model_whose_eager_backward_pass_crashes(third_party_plugin):
    model = tiny_models.residual_separable_rgb64()
    options = {"my-smoothgrad": {"samples": 1, "noise": 0.0}, "margin-saliency": {"per_class": 1},
               "saliency": {"per_class": 1}}
    # map-agreement is named first: the planner moves it after the methods whose maps it reads.
    artifacts, planned, context, _ = run_explainers(
        model, rgb64_data(), ["map-agreement", "my-smoothgrad", "saliency", "margin-saliency"], options,
        preprocess="unit")
    assert [item.name for item in planned] == ["my-smoothgrad", "saliency", "margin-saliency", "map-agreement"]

    mine, saliency = context.attributions["my-smoothgrad"], context.attributions["saliency"]
    assert mine.maps.shape == (7, 64, 64) and mine.maps.max() > 0
    # Without noise, one sample of SmoothGrad is the vanilla gradient: the same maps as the built-in saliency.
    np.testing.assert_array_equal(mine.rows, saliency.rows)
    np.testing.assert_allclose(mine.maps, saliency.maps, rtol=1e-5, atol=1e-7)

    # The margin's gradient is the target's gradient minus the runner-up's, both taken by the engine.
    margin = context.attributions["margin-saliency"]
    images = context.images(margin.rows)
    engine = context.attribution_engine("logit")
    runner_up = np.argsort(engine.predict(images), axis=1)[:, -2]
    expected = (engine.gradients(images, margin.targets) - engine.gradients(images, runner_up)).sum(axis=-1)
    np.testing.assert_allclose(margin.maps, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert margin.signed and (margin.maps < 0).any() and (margin.maps > 0).any()

    # The core made the rest: masks, figures, arrays and the summary, as for a built-in method.
    artifact = artifacts["my-smoothgrad"]
    assert artifact.summary["method"] == "my-smoothgrad" and artifact.summary["num_images"] == 7
    assert artifact.arrays["masks"].shape == (7, 64, 64) and "grid" in artifact.figures

    pairs = {(p["first"], p["second"]): p for p in artifacts["map-agreement"].summary["pairs"]}
    assert pairs[("my-smoothgrad", "saliency")] == {"first": "my-smoothgrad", "second": "saliency", "images": 7,
                                                     "mean_rho": pytest.approx(1.0)}
    assert pairs[("saliency", "margin-saliency")]["images"] == 7


def test_the_noise_is_seeded_by_the_run(third_party_plugin):
    model = tiny_models.residual_separable_rgb64()
    options = {"my-smoothgrad": {"samples": 2, "indices": [0, 3]}}
    runs = [run_explainers(model, rgb64_data(), ["my-smoothgrad"], options, preprocess="unit", seed=seed)[2]
            for seed in (0, 0, 1)]
    maps = [context.attributions["my-smoothgrad"].maps for context in runs]
    np.testing.assert_array_equal(maps[0], maps[1])
    assert not np.allclose(maps[0], maps[2])


def test_map_agreement_refuses_a_run_without_two_methods(third_party_plugin):
    with pytest.raises(UserError, match="map-agreement compares maps, and this run has fewer than two"):
        run_explainers(tiny_models.residual_separable_rgb64(), rgb64_data(), ["saliency", "map-agreement"],
                       preprocess="unit")


def _save(tmp_path: Path) -> tuple[Path, Path]:
    tiny_models.residual_separable_rgb64().save(tmp_path / "model.keras")
    data = rgb64_data()
    np.savez(tmp_path / "data.npz", images=data.images, labels=data.labels)
    return tmp_path / "model.keras", tmp_path / "data.npz"


def test_third_party_methods_run_through_the_cli(third_party_plugin, tmp_path):
    model, data = _save(tmp_path)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "explain", str(model), "--data", str(data), "--out", str(out), "--preprocess", "unit",
        "-e", "my-smoothgrad", "-e", "margin-saliency", "-e", "map-agreement",
        "-o", "my-smoothgrad.samples=2", "-o", "my-smoothgrad.indices=0,1,2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["explainers"]["my-smoothgrad"]["plugin"]["plugin"] == PLUGIN
    assert manifest["explainers"]["my-smoothgrad"]["options"]["samples"] == 2
    with np.load(out / "my-smoothgrad" / "arrays.npz") as arrays:
        assert arrays["maps"].shape == (3, 64, 64) and np.isfinite(arrays["maps"]).all()
        assert list(arrays["indices"]) == [0, 1, 2]
    assert (out / "margin-saliency" / "grid.png").stat().st_size > 1000
    agreement = json.loads((out / "map-agreement" / "summary.json").read_text())
    assert agreement["pairs"] == [{"first": "my-smoothgrad", "second": "margin-saliency", "images": 3,
                                   "mean_rho": pytest.approx(agreement["pairs"][0]["mean_rho"])}]
    assert -1 <= agreement["pairs"][0]["mean_rho"] <= 1
    assert 'src="my-smoothgrad/grid.png"' in (out / "index.html").read_text()


# --- a method with a bug -----------------------------------------------------------------------------------


class HalfSizeMaps(Attribution):
    """Maps at half the data's resolution."""

    name = "half-maps"
    description = "returns maps of the wrong shape"

    def attribute(self, engine, images, targets, options):
        return np.zeros((len(images), images.shape[1] // 2, images.shape[2] // 2), np.float32)


class BrokenPlugin:
    @staticmethod
    @hookimpl
    def register_explainers(register):
        register(HalfSizeMaps())


@pytest.fixture
def broken_plugin():
    plugin = BrokenPlugin()
    registry.add_plugin(plugin, name="broken-methods")
    try:
        yield plugin
    finally:
        registry.remove_plugin(plugin)


WRONG_SHAPE = ("explainer 'half-maps' (plugin 'broken-methods') failed in explain: ValueError: attribute returned "
               "maps of shape (2, 32, 32), expected (2, 64, 64) (one map per image at the data's resolution)")


def test_maps_of_the_wrong_shape_fail_in_one_line_naming_the_plugin(broken_plugin):
    with pytest.raises(UserError) as failed:
        run_explainers(tiny_models.residual_separable_rgb64(), rgb64_data(), ["half-maps"],
                       {"half-maps": {"indices": [0, 1]}}, preprocess="unit")
    message = str(failed.value)
    assert "\n" not in message and message.startswith(WRONG_SHAPE)
    assert "XAI_FER_DISABLE_PLUGINS=1" in message  # and what to do about it


def test_maps_of_the_wrong_shape_through_the_cli(broken_plugin, tmp_path):
    model, data = _save(tmp_path)
    result = CliRunner().invoke(app, ["explain", str(model), "--data", str(data), "--out", str(tmp_path / "run"),
                                      "--preprocess", "unit", "-e", "half-maps", "-o", "half-maps.indices=0,1"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors and errors[0].startswith("Error: " + WRONG_SHAPE), result.output
    assert len(errors) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing half-written


# --- the plugin guide's code ---------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$')


def _section(path: Path, name: str | None) -> str:
    """What pymdownx.snippets puts in a page for ``--8<-- "path[:name]"``: the file, or one marked section."""
    lines = path.read_text().splitlines()
    if name is not None:
        start = lines.index(f"# --8<-- [start:{name}]")
        lines = lines[start + 1:lines.index(f"# --8<-- [end:{name}]")]
    return "\n".join(line for line in lines if not re.match(r"\s*# --8<-- \[(start|end):", line))


def guide_blocks() -> list[str]:
    """Every ``python`` block of the plugin guide as the built page shows it (snippets included)."""
    text = (ROOT / "docs" / "plugin-guide.md").read_text()
    blocks = []
    for block in re.findall(r"^```python\n(.*?)^```", text, re.S | re.M):
        lines = [_section(ROOT / m.group(1), m.group(2)) if (m := SNIPPET.match(line)) else line
                 for line in block.splitlines()]
        blocks.append("\n".join(lines) + "\n")
    return blocks


def test_every_python_block_of_the_plugin_guide_is_complete():
    """Each block stands on its own, as a reader copies it: no undefined name, no unused import (ruff's
    pyflakes rules, which see into function bodies), and it runs."""
    blocks = guide_blocks()
    assert len(blocks) >= 6
    for number, code in enumerate(blocks):
        lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F",
                               "--stdin-filename", f"guide_block_{number}.py", "-"], input=code, capture_output=True,
                              text=True, timeout=60)
        assert lint.returncode == 0, f"plugin guide, python block {number}:\n{code}\n{lint.stdout}{lint.stderr}"


def test_the_plugin_guides_plugins_register_and_run():
    """Blocks that implement a hook are loaded as a plugin module each, registered, and what they register is
    run on the crashing model."""
    ran = 0
    for number, code in enumerate(guide_blocks()):
        module = types.ModuleType(f"plugin_guide_block_{number}")
        sys.modules[module.__name__] = module
        try:
            exec(compile(code, f"<plugin guide block {number}>", "exec"), module.__dict__)
            if not hasattr(getattr(module, "register_explainers", None), "xai_fer_impl"):  # not a hookimpl
                continue
            registry.add_plugin(module, name=module.__name__)
            try:
                found = [name for name, entry in registry.entries("explainers").items()
                         if entry.plugin == module.__name__]
                assert found, f"plugin guide block {number} registers no explainer"
                attributions = [n for n in found if isinstance(registry.explainers()[n], Attribution)]
                options = {name: {"indices": [0, 1]} for name in attributions}
                artifacts = run_explainers(tiny_models.residual_separable_rgb64(), rgb64_data(), attributions,
                                           options, preprocess="unit")[0]
                assert all(artifacts[name].arrays["maps"].shape == (2, 64, 64) for name in attributions)
                ran += len(attributions)
            finally:
                registry.remove_plugin(module)
        finally:
            del sys.modules[module.__name__]
    assert ran >= 2
