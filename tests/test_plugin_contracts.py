"""What xai-fer checks of what third-party plugins register and return: each mistake is one line naming the
plugin, checked where it is made (registration, explain, load, build), never a traceback from deep inside."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest
from fixtures import sample_images, write_npz
from typer.testing import CliRunner

from xai_fer import registry
from xai_fer.cli import app
from xai_fer.data import FER2013_CLASSES, Dataset, load_dataset
from xai_fer.errors import UserError
from xai_fer.hookspecs import hookimpl


@dataclass
class NoOptions:
    pass


@contextlib.contextmanager
def registered(kind: str, *objects, name: str = "third-party", **marks):
    """A plugin registering ``objects`` through ``register_<kind>`` (with hookimpl ``marks``), unregistered after."""
    def hook(register):
        for obj in objects:
            register(obj)

    hook.__name__ = f"register_{kind}"
    plugin = type("Plugin", (), {hook.__name__: staticmethod(hookimpl(**marks)(hook))})()
    registry.add_plugin(plugin, name=name)
    try:
        yield plugin
    finally:
        registry.remove_plugin(plugin)


class Explainer:
    description, Options = "test explainer", NoOptions

    def __init__(self, name="probe", returns=None):
        self.name, self.returns = name, returns

    def explain(self, context, options):
        from xai_fer.explain.artifact import Artifact

        return self.returns(Artifact) if self.returns else Artifact(summary={"n": len(context.dataset)})


@pytest.mark.parametrize(("obj", "message"), [
    (Explainer(name="../escape"), "registered an explainer named '../escape': names are letters, digits"),
    (Explainer(name="index.html"), "registered an explainer named 'index.html'"),
    ("saliency", "plugin 'third-party' registered str 'saliency' as an explainer, which has no name"),
    (type("Bare", (), {"name": "bare"})(), "registered an explainer 'bare' without description, Options, explain"),
    (type("NotData", (Explainer,), {"Options": dict})(), "whose Options is not a dataclass"),
])
def test_what_a_plugin_registers_is_checked_as_it_registers(obj, message):
    with registered("explainers", obj), pytest.raises(UserError) as refused:
        registry.explainers()
    assert message in str(refused.value) and "XAI_FER_DISABLE_PLUGINS=1" in str(refused.value)


@pytest.mark.parametrize(("returns", "message"), [
    (lambda Artifact: None, "explainer 'probe' returned NoneType, not an Artifact"),
    (lambda Artifact: 1 / 0, "explainer 'probe' (plugin 'third-party') failed in explain: ZeroDivisionError"),
    (lambda Artifact: Artifact(summary={"score": float("nan")}), "Artifact summary is not plain JSON data"),
    (lambda Artifact: Artifact(figures={"map": "not a figure"}), "Artifact figure 'map' is a str"),
    (lambda Artifact: Artifact(arrays={"rows": [[1, 2], [3]]}), "Artifact array 'rows' holds Python objects or rows"),
])
def test_an_explainers_mistakes_are_one_line_naming_it(tiny_dataset, returns, message):
    from xai_fer.explain.pipeline import run_explainers

    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs)))
    with registered("explainers", Explainer(returns=returns)), pytest.raises(UserError, match=re.escape(message)):
        run_explainers(model, tiny_dataset, ["probe"])


class Format:
    description = "test format"

    def __init__(self, load, name="probe-format", detects=lambda path: path.suffix == ".probe"):
        self.name, self._load, self._detects = name, load, detects

    def detect(self, path):
        return self._detects(path)

    def load(self, path):
        return self._load(path)


def _dataset(path, **fields):
    values = {"images": sample_images(4), "labels": np.arange(4), "class_names": FER2013_CLASSES,
              "source": str(path), **fields}
    return Dataset(**values)


@pytest.mark.parametrize(("load", "message"), [
    (lambda path: int("x"), "dataset 'probe-format' (plugin 'third-party') failed in loading"),
    (lambda path: {"images": []}, "dataset format 'probe-format' returned dict, not a Dataset"),
    (lambda path: _dataset(path, labels=np.eye(7)[:4]), "'labels' must hold 4 integers (one per image)"),
    (lambda path: _dataset(path, usage=np.zeros(3, int)), "'usage' must hold 4 integers"),
    (lambda path: _dataset(path, images=np.zeros((0, 48, 48)), labels=np.zeros(0, int)), "holds no images"),
    (lambda path: open(str(path) + ".index"), ".probe.index): No such file or directory"),
])
def test_a_formats_mistakes_are_one_line_naming_it(tmp_path, load, message):
    source = tmp_path / "data.probe"
    source.write_bytes(b"x")
    with registered("datasets", Format(load)), pytest.raises(UserError, match=re.escape(message)):
        load_dataset(source)


def test_usage_given_as_split_names_is_read(tmp_path):
    source = tmp_path / "data.probe"
    source.write_bytes(b"x")
    names = np.array(["PrivateTest", "Training", "PrivateTest", "PublicTest"])
    with registered("datasets", Format(lambda path: _dataset(path, usage=names))):
        assert len(load_dataset(source, split="PrivateTest")) == 2


def test_a_new_format_never_takes_over_a_built_in_ones_files_unless_it_asks(tmp_path):
    source = write_npz(tmp_path / "d.npz", sample_images(4), np.arange(4))
    greedy = Format(lambda path: pytest.fail("the greedy format read an .npz"), name="greedy",
                    detects=lambda path: True)
    with registered("datasets", greedy):
        assert load_dataset(source).format == "npz"
    eager = Format(lambda path: _dataset(path), name="eager", detects=lambda path: True)
    with registered("datasets", eager, tryfirst=True):
        assert load_dataset(source).format == "eager"


class Architecture:
    description, Options = "test architecture", NoOptions

    def __init__(self, build, name="probe-net"):
        self.name, self._build = name, build

    def build(self, input_shape, num_classes, options):
        return self._build(input_shape, num_classes)


def _network(input_shape, num_classes, scale=True, activation="softmax"):
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255)(inputs) if scale else inputs
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation=activation)(keras.layers.Flatten()(x)))


@pytest.mark.parametrize(("build", "message"), [
    (lambda shape, k: _network(shape, k), None),
    (lambda shape, k: keras.Sequential([keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                        keras.layers.Dense(k, activation="softmax")]), None),  # built by training
    (lambda shape, k: _network(shape, k, activation=None), "the network ends in linear, not a softmax"),
    (lambda shape, k: _network(shape, k, scale=False), "the network does not scale its input"),
    (lambda shape, k: _network(shape, 3), "made a network from (48, 48, 1) to 3 classes when asked for"),
    (lambda shape, k: None, "build() returned NoneType, not a keras.Model"),
    (lambda shape, k: [][1], "'probe-net' (plugin 'third-party') failed in build: IndexError"),
])
def test_xai_fer_train_checks_what_it_relies_on_in_a_model_plugin(build, message):
    from xai_fer.training.building import build_training_model
    from xai_fer.training.config import STUDY

    with registered("models", Architecture(build)):
        plugin = registry.lookup("models", "probe-net")
        if message is None:
            build_training_model(plugin, (48, 48, 1), 7, NoOptions(), STUDY, steps_per_epoch=1)
            return
        with pytest.raises(UserError) as refused:
            build_training_model(plugin, (48, 48, 1), 7, NoOptions(), STUDY, steps_per_epoch=1)
        assert message in str(refused.value)


def test_plugins_are_loaded_before_a_model_is_so_their_layers_are_registered(tmp_path, monkeypatch):
    @keras.saving.register_keras_serializable("probe")
    class PluginLayer(keras.layers.Layer):
        def call(self, x):
            return x * 1.0

    inputs = keras.Input((48, 48, 1))
    keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(
        keras.layers.Flatten()(PluginLayer(name="plugin_layer")(inputs)))).save(tmp_path / "m.keras")
    keras.saving.get_custom_objects().pop("probe>PluginLayer")  # as in a new process: the plugin not imported yet
    loaded_plugins = registry.get_manager

    def plugins_then_register():  # what importing a plugin module that registers its layer does
        keras.saving.get_custom_objects()["probe>PluginLayer"] = PluginLayer
        return loaded_plugins()

    monkeypatch.setattr(registry, "get_manager", plugins_then_register)
    from xai_fer.models.loading import load_model

    try:
        assert load_model(tmp_path / "m.keras").get_layer("plugin_layer")
    finally:
        keras.saving.get_custom_objects().pop("probe>PluginLayer", None)


def test_reports_record_which_plugin_and_package_provided_each_part(tmp_path):
    data = write_npz(tmp_path / "d.npz", sample_images(14)[..., None], np.arange(14) % 7)
    result = CliRunner().invoke(app, ["explain", "--data", str(data), "-e", "confusion", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    manifest = json.loads(Path(tmp_path / "o" / "manifest.json").read_text())
    assert manifest["explainers"]["confusion"]["plugin"] == {"plugin": "confusion", "package": "xai-fer",
                                                             "version": manifest["versions"]["xai_fer"]}
    assert manifest["data"]["format_plugin"]["plugin"] == "npz"


def test_an_explainer_that_fails_while_checking_is_not_quietly_skipped(tiny_dataset):
    from xai_fer.explain.pipeline import run_explainers

    class Buggy(Explainer):
        def validate(self, info, options):
            return 1 / 0

    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs)))
    with registered("explainers", Buggy(name="buggy")), pytest.raises(UserError) as failed:
        run_explainers(model, tiny_dataset)  # the default run: all that apply
    assert "explainer 'buggy' (plugin 'third-party') failed in validate: ZeroDivisionError" in str(failed.value)


def test_a_built_in_explainers_failure_asks_for_a_report_and_names_the_real_error(monkeypatch, tiny_dataset):
    from xai_fer_plugins import confusion

    from xai_fer.errors import reason
    from xai_fer.explain.pipeline import run_explainers

    def wrapped(*args, **kwargs):
        raise ValueError("Exception encountered when calling Functional.call().\n\nthe real reason\n")

    monkeypatch.setattr(confusion.Confusion, "explain", wrapped)
    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs)))
    with pytest.raises(UserError) as failed:
        run_explainers(model, tiny_dataset, ["confusion"])
    message = str(failed.value)
    assert "failed in explain: ValueError: the real reason" in message
    assert "this is a bug in xai-fer: please report it" in message and "uninstall" not in message
    assert reason(ValueError("first\nsecond")) == "first"
