"""The plugin registry: entry points, registering and unregistering a plugin, duplicate names, listing."""

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from xai_fer import hookspecs, registry
from xai_fer.cli import app
from xai_fer.errors import UserError
from xai_fer.hookspecs import hookimpl

BUILTIN = {"cnn", "dnn", "confusion", "saliency", "activation-max", "fer-csv", "homework-csv", "image-folder",
           "hdf5", "npz"}


@dataclass
class _NoOptions:
    pass


class _EchoExplainer:
    name = "echo"
    description = "test explainer"
    Options = _NoOptions

    def explain(self, context, options):
        from xai_fer.explain.artifact import Artifact

        return Artifact(summary={"n": len(context.dataset)})


class _TestPlugin:
    @hookimpl
    def register_explainers(self, register):
        register(_EchoExplainer())


@pytest.fixture
def test_plugin():
    manager = registry.get_manager()
    plugin = _TestPlugin()
    manager.register(plugin, name="test-plugin")
    try:
        yield plugin
    finally:
        manager.unregister(plugin)


def test_builtin_plugins_come_from_entry_points():
    names = {info.name for info in registry.plugin_infos()}
    assert BUILTIN <= names
    assert all(info.package == "xai-fer" for info in registry.plugin_infos() if info.name in BUILTIN)


def test_registering_and_unregistering_a_plugin(test_plugin):
    assert "echo" in registry.explainers()
    info = next(i for i in registry.plugin_infos() if i.name == "test-plugin")
    assert info.registers == {"explainers": ["echo"]}
    registry.get_manager().unregister(test_plugin)
    assert "echo" not in registry.explainers()
    registry.get_manager().register(test_plugin, name="test-plugin")  # the fixture unregisters it


def test_two_plugins_registering_one_name_is_an_error_naming_both():
    class Duplicate:
        @hookimpl
        def register_models(self, register):
            class Clash:
                name = "cnn"

            register(Clash())

    plugin = Duplicate()
    registry.get_manager().register(plugin, name="clashing-plugin")
    try:
        with pytest.raises(UserError, match=r"'cnn'.*'cnn' and 'clashing-plugin'"):
            registry.models()
    finally:
        registry.get_manager().unregister(plugin)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UserError, match="did you mean 'saliency'"):
        registry.lookup("explainers", "saliancy")


def test_hookspecs_are_typed_and_documented():
    specs = [name for name in dir(hookspecs) if name.startswith("register_")]
    assert specs == ["register_datasets", "register_explainers", "register_models"]
    for name in specs:
        function = getattr(hookspecs, name)
        assert function.__doc__ and len(function.__doc__) > 40
        assert "register" in function.__annotations__
    registry.get_manager().check_pending()


def test_plugins_command_json_lists_every_builtin():
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listed = {row["name"]: row for row in json.loads(result.output)}
    assert BUILTIN <= set(listed)
    assert listed["saliency"]["registers"] == {"explainers": ["saliency"]}
    assert listed["cnn"]["version"]


def test_disabling_env_var_keeps_builtins_only(monkeypatch):
    monkeypatch.setenv(registry.DISABLE_ENV, "1")
    registry.reset()
    try:
        assert {i.package for i in registry.plugin_infos()} == {"xai-fer"}
    finally:
        registry.reset()


def test_help_and_plugins_import_nothing_heavy():
    """They must stay instant (target < 0.3 s): TensorFlow takes ~3 s to import, numpy ~80 ms."""
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom xai_fer.cli import app\n"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['plugins']); assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
