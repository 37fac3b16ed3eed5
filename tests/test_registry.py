"""The plugin registry: entry points, registering and unregistering a plugin, duplicate names, listing."""

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from typer.testing import CliRunner

from xai_fer import hookspecs, registry
from xai_fer.cli import app
from xai_fer.errors import UserError
from xai_fer.explain.plan import plan_explainers
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
    plugin = _TestPlugin()
    registry.add_plugin(plugin, name="test-plugin")
    try:
        yield plugin
    finally:
        registry.remove_plugin(plugin)


def test_builtin_plugins_come_from_entry_points():
    names = {info.name for info in registry.plugin_infos()}
    assert BUILTIN <= names
    assert all(info.package == "xai-fer" for info in registry.plugin_infos() if info.name in BUILTIN)


def test_registering_and_unregistering_a_plugin(test_plugin):
    assert "echo" in registry.explainers()
    info = next(i for i in registry.plugin_infos() if i.name == "test-plugin")
    assert info.registers == {"explainers": ["echo"]}
    registry.remove_plugin(test_plugin)
    assert "echo" not in registry.explainers()
    registry.add_plugin(test_plugin, name="test-plugin")  # the fixture unregisters it


@contextlib.contextmanager
def _plugin_added(plugin, name: str):
    registry.add_plugin(plugin, name=name)
    try:
        yield
    finally:
        registry.remove_plugin(plugin)


# One test per hook, named test_hook_<hook> and implementing it (tests/test_docs.py checks both, for every hook):
# a plugin registers something through the hook, and the command or function that uses that kind finds it.


def test_hook_register_models():
    class ProbeNet:
        name, description, Options = "probe-net", "test architecture", _NoOptions

        def build(self, input_shape, num_classes, options):
            raise NotImplementedError

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(ProbeNet())

    with _plugin_added(Plugin(), "probe-models"):
        assert isinstance(registry.lookup("models", "probe-net"), ProbeNet)
        described = json.loads(CliRunner().invoke(app, ["plugins", "probe-net", "--json"]).output)
        assert [(row["kind"], row["plugin"]) for row in described] == [("model", "probe-models")]
    assert "probe-net" not in registry.models()


def test_hook_register_explainers():
    class Plugin:
        @hookimpl
        def register_explainers(self, register):
            register(_EchoExplainer())

    from xai_fer.explain.plan import plan_explainers

    with _plugin_added(Plugin(), "probe-explainers"):
        [planned] = plan_explainers(["echo"], None)
        assert isinstance(planned.explainer, _EchoExplainer)
        assert registry.provenance("explainers", "echo") == {"plugin": "probe-explainers", "package": None,
                                                             "version": None}
    assert "echo" not in registry.explainers()


def test_hook_register_datasets(tmp_path):
    class ProbeFormat:
        name, description = "probe-format", "files ending in .probe"

        def detect(self, path):
            return path.suffix == ".probe"

        def load(self, path):
            import numpy as np

            from xai_fer.data import Dataset

            return Dataset(images=np.zeros((2, 8, 8, 1), np.uint8), labels=None, class_names=("a", "b"),
                           source=str(path))

    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register(ProbeFormat())

    from xai_fer.data import load_dataset

    (tmp_path / "x.probe").write_text("x")
    with _plugin_added(Plugin(), "probe-datasets"):
        assert load_dataset(tmp_path / "x.probe").format == "probe-format"  # found by detection
    assert "probe-format" not in registry.datasets()


def test_what_plugins_register_is_collected_once_until_a_plugin_is_added_or_removed():
    calls = []

    class Counting:
        @hookimpl
        def register_explainers(self, register):
            calls.append("explainers")
            register(_EchoExplainer())

    with _plugin_added(Counting(), "counting"):
        for _ in range(3):
            registry.lookup("explainers", "echo")
            registry.provenance("explainers", "echo")
            registry.plugin_infos()
        assert calls == ["explainers"]
    assert "echo" not in registry.explainers()


def test_a_run_plans_its_explainers_once(tmp_path, monkeypatch):
    from fixtures import sample_images, write_npz

    from xai_fer.explain import pipeline

    planned = []
    monkeypatch.setattr(pipeline, "plan_explainers", lambda *args: planned.append(args) or plan_explainers(*args))
    data = write_npz(tmp_path / "d.npz", sample_images(14)[..., None], np.arange(14) % 7)
    pipeline.run_explain(data=data, out_dir=tmp_path / "o", explainers=["confusion"])
    assert planned == [(["confusion"], None, None)]  # names, options, preset: once


def test_two_plugins_registering_one_name_is_an_error_naming_both():
    class Duplicate:
        @hookimpl
        def register_models(self, register):
            from xai_fer_plugins.cnn import Cnn

            register(Cnn())  # a complete architecture, under a name a built-in plugin already registers

    plugin = Duplicate()
    registry.add_plugin(plugin, name="clashing-plugin")
    try:
        with pytest.raises(UserError, match=r"'cnn'.*'cnn' and 'clashing-plugin'"):
            registry.models()
    finally:
        registry.remove_plugin(plugin)


def test_a_plugin_that_fails_while_registering_is_one_error_naming_it():
    class Broken:
        @hookimpl
        def register_explainers(self, register):
            raise ImportError("optional dependency torch is missing")

    plugin = Broken()
    registry.add_plugin(plugin, name="broken-plugin")
    try:
        with pytest.raises(UserError, match="plugin 'broken-plugin' failed in register_explainers: ImportError: "
                                            "optional dependency torch is missing"):
            registry.explainers()
    finally:
        registry.remove_plugin(plugin)


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
    registry.add_plugin(plugin, name="clumsy-plugin")
    try:
        from xai_fer.data import load_dataset

        with pytest.raises(UserError, match="dataset format 'clumsy' failed while checking .*IsADirectoryError"):
            load_dataset(tmp_path)
    finally:
        registry.remove_plugin(plugin)


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
