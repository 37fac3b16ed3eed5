"""The plugin registry: entry points, registering and unregistering a plugin, duplicate names, listing."""

import json
import os
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
            from xai_fer_plugins.cnn import Cnn

            register(Cnn())  # a complete architecture, under a name a built-in plugin already registers

    plugin = Duplicate()
    registry.get_manager().register(plugin, name="clashing-plugin")
    try:
        with pytest.raises(UserError, match=r"'cnn'.*'cnn' and 'clashing-plugin'"):
            registry.models()
    finally:
        registry.get_manager().unregister(plugin)


def test_a_plugin_that_fails_while_registering_is_one_error_naming_it():
    class Broken:
        @hookimpl
        def register_explainers(self, register):
            raise ImportError("optional dependency torch is missing")

    plugin = Broken()
    registry.get_manager().register(plugin, name="broken-plugin")
    try:
        with pytest.raises(UserError, match="plugin 'broken-plugin' failed in register_explainers: ImportError: "
                                            "optional dependency torch is missing"):
            registry.explainers()
    finally:
        registry.get_manager().unregister(plugin)


_PACKAGES = {
    "misnamed-argument": "@hookimpl\ndef register_explainers(reg):\n    pass\n",
    "hook-name-typo": "@hookimpl\ndef register_explainer(register):\n    pass\n",
    "raises-on-import": "raise RuntimeError('needs a GPU library')\n",
    "fits": "@hookimpl\ndef register_explainers(register):\n    pass\n",
    "no-hookimpl": "def register_explainers(register):\n    pass\n",
    "exits-on-import": "raise SystemExit(3)\n",
}


@pytest.mark.parametrize("case, entry_point, message", [
    ("misnamed-argument", "fake", "plugin 'fake' (from fake-plugin) does not fit xai-fer's hooks: Argument(s) {'reg'}"),
    ("hook-name-typo", "fake", "plugin 'fake' does not fit xai-fer's hooks: unknown hook 'register_explainer'"),
    ("raises-on-import", "fake", "plugin 'fake' (from fake-plugin) failed to import: RuntimeError: needs a GPU"),
    ("no-hookimpl", "fake", "plugin 'fake' (from fake-plugin) implements no hook: mark its register_models"),
    ("exits-on-import", "fake", "plugin 'fake' (from fake-plugin) failed to import: SystemExit: 3"),
    # A plugin that fits, so the clash is found whichever package's entry points are read first.
    ("fits", "saliency", "two packages declare the plugin 'saliency'"),
], ids=["misnamed-argument", "hook-name-typo", "raises-on-import", "no-hookimpl", "exits-on-import",
        "takes-a-built-in-name"])
def test_a_broken_installed_plugin_is_one_line_naming_it(tmp_path, case, entry_point, message):
    # An installed package, as pip leaves it: the module and a dist-info with its entry point.
    (tmp_path / "fake_plugin.py").write_text("from xai_fer.hookspecs import hookimpl\n" + _PACKAGES[case])
    info = tmp_path / "fake_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[xai_fer]\n{entry_point} = fake_plugin\n")
    env = {**os.environ, "XAI_FER_DISABLE_PLUGINS": "0", "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "xai_fer", "plugins"], env=env, capture_output=True, text=True,
                            timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0] and "XAI_FER_DISABLE_PLUGINS=1" in lines[0], lines[0]
    if entry_point == "saliency":  # both packages named, whichever entry point was read first
        assert "xai-fer and fake-plugin" in lines[0] or "fake-plugin and xai-fer" in lines[0], lines[0]


def test_a_dataset_format_whose_detect_crashes_is_named(tmp_path):
    class Clumsy:
        name, description = "clumsy", "opens every path as a file"

        def detect(self, path):
            return open(path).read(1) == "x"  # IsADirectoryError on a folder

        def load(self, path):
            raise NotImplementedError

    class ClumsyPlugin:
        @hookimpl
        def register_datasets(self, register):
            register(Clumsy())

    plugin = ClumsyPlugin()
    registry.get_manager().register(plugin, name="clumsy-plugin")
    try:
        from xai_fer.data import load_dataset

        with pytest.raises(UserError, match="dataset format 'clumsy' failed while checking .*IsADirectoryError"):
            load_dataset(tmp_path)
    finally:
        registry.get_manager().unregister(plugin)


def test_an_error_in_the_shared_set_up_is_one_line_too():
    env = {**os.environ, "XAI_FER_CPU_DEVICES": "abc"}
    result = subprocess.run([sys.executable, "-m", "xai_fer", "info", "missing.keras"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == "Error: XAI_FER_CPU_DEVICES='abc' is not a positive whole number: " \
                                    "e.g. XAI_FER_CPU_DEVICES=2"


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


@pytest.mark.parametrize("args, line", [
    (["evaluate"], "Error: Missing argument 'model': see `"),  # then the program's name, "evaluate --help`"
    (["explain", "--seed", "abc"], "Error: Invalid value for '--seed'"),
    (["explain", "--bogus"], "Error: No such option: --bogus"),
])
def test_a_command_line_typer_cannot_parse_is_one_line(args, line):
    result = subprocess.run([sys.executable, "-m", "xai_fer", *args], capture_output=True, text=True, timeout=120)
    lines = [text for text in result.stderr.splitlines() if text.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(line), result.stderr


def test_help_and_version_still_exit_zero():
    for args in (["--help"], ["--version"], ["explain", "--help"]):
        result = subprocess.run([sys.executable, "-m", "xai_fer", *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and result.stdout and not result.stderr, (args, result.stderr)


def test_plugins_name_shows_what_one_registered_object_offers():
    result = CliRunner().invoke(app, ["plugins", "saliency"])
    assert result.exit_code == 0, result.output
    assert "explainer saliency (plugin saliency, package xai-fer" in result.output
    assert "KEY=VALUE" in result.output and "per_class" in result.output  # the table folds long names
    described = json.loads(CliRunner().invoke(app, ["plugins", "cnn", "--json"]).output)
    assert [entry["kind"] for entry in described] == ["model"]
    assert {row["name"]: row["type"] for row in described[0]["options"]}["filters"] == "int, ..."
    missing = CliRunner().invoke(app, ["plugins", "salency"])
    assert missing.exit_code == 2 and "did you mean 'saliency'?" in missing.output
