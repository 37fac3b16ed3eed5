"""The plugin registry: one pluggy ``PluginManager`` fed from the ``xai_fer`` entry-point group, and what its
plugins register, collected once per process.

Built-in plugins are entry points of the ``xai-fer`` distribution itself, so they take exactly the path a
third-party plugin takes. Set ``XAI_FER_DISABLE_PLUGINS=1`` to load only the built-in ones (the tests do).
A plugin added in-process (a test's, a notebook's) goes through :func:`add_plugin` and :func:`remove_plugin`,
which rebuild what was collected; :func:`reset` forgets everything and re-reads the entry points.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as metadata
import os
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import pluggy

from . import hookspecs
from .errors import PluginError, UserError, did_you_mean, reason

ENTRY_POINT_GROUP = "xai_fer"
DISABLE_ENV = "XAI_FER_DISABLE_PLUGINS"
OWN_DISTRIBUTION = "xai-fer"
KINDS = ("models", "explainers", "datasets")

# For a plugin that cannot be used, named in the message: shared by the loaders that run plugin code.
BROKEN_PLUGIN_HINT = f"fix or uninstall it, or set {DISABLE_ENV}=1 to load only the built-in plugins"


class Registered(NamedTuple):
    """One registered object, the plugin (entry-point name) that registered it and that plugin's package."""

    obj: object
    plugin: str
    distribution: metadata.Distribution | None


class Registry:
    """The plugin manager, each plugin's distribution, and {kind: {name: Registered}}, each kind collected the
    first time it is asked for (a broken ``register_explainers`` does not stop ``xai-fer train``)."""

    def __init__(self, manager: pluggy.PluginManager, distributions: dict[str, metadata.Distribution]):
        self.manager = manager
        self.distributions = distributions  # plugin name -> the installed package that declared its entry point
        self._tables: dict[str, dict[str, Registered]] = {}

    def table(self, kind: str) -> dict[str, Registered]:
        if kind not in self._tables:
            self._tables[kind] = _collect(self, kind)
        return self._tables[kind]

    def forget_tables(self) -> None:
        self._tables.clear()

    def package_of(self, plugin_name: str) -> str | None:
        dist = self.distributions.get(plugin_name)
        return dist.name if dist else None


_current: Registry | None = None


def current() -> Registry:
    """The process-wide registry, built on first use."""
    global _current
    if _current is None:
        _current = _load_entry_points()
    return _current


def get_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (every installed plugin imported), created on first use."""
    return current().manager


def reset() -> None:
    """Forget the registry, so that the next call re-reads the entry points (tests, the docs build)."""
    global _current
    _current = None


def add_plugin(plugin, name: str) -> None:
    """Register ``plugin`` (a module or object with ``@hookimpl`` functions) in this process, as its entry point
    would; what the plugins register is collected again on next use."""
    current().manager.register(plugin, name=name)
    current().forget_tables()


def remove_plugin(plugin) -> None:
    """Undo :func:`add_plugin`."""
    current().manager.unregister(plugin)
    current().forget_tables()


def _third_party_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _load_entry_points() -> Registry:
    manager = pluggy.PluginManager("xai_fer")
    manager.add_hookspecs(hookspecs)
    loaded = Registry(manager, {})
    only_builtin = _third_party_disabled()
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist.name if entry_point.dist else None
        if only_builtin and not _same(dist, OWN_DISTRIBUTION):
            continue
        if manager.get_plugin(entry_point.name) is not None or manager.is_blocked(entry_point.name):
            earlier_dist = loaded.package_of(entry_point.name)
            if earlier_dist is not None and _same(earlier_dist, dist):
                continue  # one package seen twice (a stale egg-info next to the installed one)
            raise UserError(f"two packages declare the plugin {entry_point.name!r}: {earlier_dist or 'unknown'} and "
                            f"{dist or 'unknown'}", f"uninstall one of them or rename its entry point ({DISABLE_ENV}=1 "
                            "loads only the built-in plugins)")
        _register_entry_point(manager, entry_point, f"plugin {entry_point.name!r} (from {dist or 'unknown package'})")
        if entry_point.dist:
            loaded.distributions[entry_point.name] = entry_point.dist
    try:
        manager.check_pending()  # a hook name that is no hook of xai-fer's (a typo)
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin) if exc.plugin is not None else "unknown"
        why = _pluggy_reason(exc).split(" in plugin ")[0]  # the rest is the module's repr
        raise UserError(f"plugin {name!r} does not fit xai-fer's hooks: {why}", BROKEN_PLUGIN_HINT) from exc
    return loaded


def _register_entry_point(manager: pluggy.PluginManager, entry_point, where: str) -> None:
    try:
        plugin = entry_point.load()
    except (Exception, SystemExit) as exc:  # a broken plugin must not take the whole tool down silently
        raise UserError(f"{where} failed to import: {type(exc).__name__}: {exc}", BROKEN_PLUGIN_HINT) from exc
    try:
        manager.register(plugin, name=entry_point.name)
    except (pluggy.PluginValidationError, ValueError) as exc:  # a misnamed hook or argument, a module twice
        raise UserError(f"{where} does not fit xai-fer's hooks: {_pluggy_reason(exc)}", BROKEN_PLUGIN_HINT) from exc
    if not manager.get_hookcallers(plugin) and not manager.is_blocked(entry_point.name):
        # pluggy registers a module without any @hookimpl function silently: it would just never appear.
        raise UserError(f"{where} implements no hook: mark its register_models, register_explainers or "
                        "register_datasets function with @xai_fer.hookspecs.hookimpl", BROKEN_PLUGIN_HINT)


def _pluggy_reason(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    if isinstance(exc, pluggy.PluginValidationError) and len(lines) > 1:
        return lines[-1]  # pluggy's reason ("Argument(s) {...} are declared in the hookimpl but ...") comes last
    return reason(exc)


def _same(first: str | None, second: str | None) -> bool:
    return (first or "").replace("_", "-").lower() == (second or "").replace("_", "-").lower()


# What each kind of registered object must have besides its name (``Options`` a dataclass of options).
_REQUIRED = {"models": ("description", "Options", "build"), "explainers": ("description", "Options", "explain"),
             "datasets": ("description", "detect", "load")}
_ARTICLE = {"models": "a model", "explainers": "an explainer", "datasets": "a dataset format"}
# Names become folder names (an explainer's results), option prefixes (NAME.KEY=VALUE) and command words.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


def _check_registered(kind: str, obj, plugin: str) -> str:
    """The name of ``obj``, registered by ``plugin``, after checking it has what xai-fer will call."""
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        raise UserError(f"plugin {plugin!r} registered {type(obj).__name__} {obj!r:.40} as {_ARTICLE[kind]}, "
                        "which has no name", f"register objects with a name attribute; {BROKEN_PLUGIN_HINT}")
    if not _NAME.match(name):
        raise UserError(f"plugin {plugin!r} registered {_ARTICLE[kind]} named {name!r}: names are letters, "
                        "digits, '-' and '_', starting with a letter or digit", BROKEN_PLUGIN_HINT)
    missing = [attribute for attribute in _REQUIRED[kind] if not hasattr(obj, attribute)]
    if missing:
        raise UserError(f"plugin {plugin!r} registered {_ARTICLE[kind]} {name!r} without {', '.join(missing)}",
                        BROKEN_PLUGIN_HINT)
    options = getattr(obj, "Options", None)
    if options is not None and not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        raise UserError(f"plugin {plugin!r} registered {_ARTICLE[kind]} {name!r} whose Options is not a dataclass",
                        BROKEN_PLUGIN_HINT)
    return name


def _in_call_order(loaded: Registry, kind: str) -> list:
    """``register_<kind>`` implementations in the order xai-fer uses (also the order formats are detected in):
    those marked ``tryfirst``, then the built-in plugins, then the others in the order Python finds their
    packages, then those marked ``trylast``. A third-party format therefore never takes over a file a built-in
    one reads, unless it asks to with ``tryfirst``."""
    impls = getattr(loaded.manager.hook, f"register_{kind}").get_hookimpls()

    def order(pair):
        position, impl = pair
        own = _same(loaded.package_of(impl.plugin_name), OWN_DISTRIBUTION)
        return 0 if impl.tryfirst else 2 if impl.trylast else 1, not own, position

    return [impl for _, impl in sorted(enumerate(impls), key=order)]


def _collect(loaded: Registry, kind: str) -> dict[str, Registered]:
    """Call ``register_<kind>`` on every plugin, one by one, so each registered object knows its plugin."""
    found: dict[str, Registered] = {}
    for impl in _in_call_order(loaded, kind):
        plugin_name = impl.plugin_name

        def register(obj, _plugin=plugin_name):
            name = _check_registered(kind, obj, _plugin)
            if name in found:
                raise UserError(
                    f"two plugins register the {kind[:-1]} {name!r}: {found[name].plugin!r} and {_plugin!r}",
                    "uninstall one of them or rename the name it registers",
                )
            found[name] = Registered(obj, _plugin, loaded.distributions.get(_plugin))

        try:
            impl.function(register=register)
        except UserError:
            raise
        except Exception as exc:  # a plugin's own bug, or a missing optional dependency of it
            raise UserError(f"plugin {plugin_name!r} failed in register_{kind}: {type(exc).__name__}: "
                            f"{_pluggy_reason(exc)}", BROKEN_PLUGIN_HINT) from exc
    return found


def entries(kind: str) -> dict[str, Registered]:
    """Everything of ``kind`` registered, by name, in registration order, with its plugin and package."""
    return current().table(kind)


def provenance(kind: str, name: str) -> dict | None:
    """Which plugin (and package, version) registered ``name`` (None for a name no plugin registered): kept with
    results, so that a run that depends on a third-party plugin says which one."""
    entry = entries(kind).get(name)
    if entry is None:
        return None
    dist = entry.distribution
    return {"plugin": entry.plugin, "package": dist.name if dist else None, "version": dist.version if dist else None}


def guarded(kind: str, name: str, action: str, function, *args, **kwargs):
    """Call a registered object's ``function``. Its UserErrors pass through; any other exception (a bug in the
    plugin) becomes one line naming the plugin, with the traceback kept for ``--debug``."""
    try:
        return function(*args, **kwargs)
    except UserError:
        raise
    except Exception as exc:
        raise plugin_failure(kind, name, action, exc) from exc


def plugin_failure(kind: str, name: str, action: str, exc: Exception) -> PluginError:
    """The one-line error for an unexpected exception ``exc`` raised by registered object ``name``."""
    owner = provenance(kind, name) or {"plugin": "unknown", "package": None}
    package = f", package {owner['package']}" if owner["package"] else ""
    own = _same(owner["package"], OWN_DISTRIBUTION)
    advice = ("if the model and data look right, this is a bug in xai-fer: please report it" if own
              else BROKEN_PLUGIN_HINT)
    return PluginError(f"{kind[:-1]} {name!r} (plugin {owner['plugin']!r}{package}) failed in {action}: "
                       f"{type(exc).__name__}: {reason(exc)}", f"rerun with --debug for the traceback; {advice}")


def models() -> dict[str, object]:
    """Model architectures by name."""
    return {name: entry.obj for name, entry in entries("models").items()}


def explainers() -> dict[str, object]:
    """Explainers by name."""
    return {name: entry.obj for name, entry in entries("explainers").items()}


def datasets() -> dict[str, object]:
    """Dataset formats by name, in registration order (the order auto-detection tries them in)."""
    return {name: entry.obj for name, entry in entries("datasets").items()}


def lookup(kind: str, name: str) -> object:
    """One registered object, or a UserError that suggests the closest valid name."""
    table = entries(kind)
    if name in table:
        return table[name].obj
    valid = ", ".join(sorted(table)) or "none installed"
    raise UserError(f"unknown {kind[:-1]} {name!r}", f"{did_you_mean(name, list(table))}valid: {valid}")


@dataclass
class PluginInfo:
    name: str
    package: str | None
    version: str | None
    registers: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "package": self.package, "version": self.version, "registers": self.registers}


def plugin_infos() -> list[PluginInfo]:
    """Every loaded plugin with its package, version and what it registers."""
    loaded = current()
    infos: dict[str, PluginInfo] = {}
    for name, _ in loaded.manager.list_name_plugin():
        dist = loaded.distributions.get(name)
        infos[name] = PluginInfo(name=name, package=dist.name if dist else None,
                                 version=dist.version if dist else None)
    for kind in KINDS:
        for thing, entry in entries(kind).items():
            infos[entry.plugin].registers.setdefault(kind, []).append(thing)
    return sorted(infos.values(), key=lambda info: (info.package != OWN_DISTRIBUTION, info.name))
