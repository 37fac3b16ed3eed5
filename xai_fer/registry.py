"""The plugin registry: one pluggy ``PluginManager`` fed from the ``xai_fer`` entry-point group.

Built-in plugins are entry points of the ``xai-fer`` distribution itself, so they take exactly the path a
third-party plugin takes. Set ``XAI_FER_DISABLE_PLUGINS=1`` to load only the built-in ones (the tests do).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata as metadata
import os
import re
from dataclasses import dataclass, field

import pluggy

from . import hookspecs
from .errors import PluginError, UserError, reason

ENTRY_POINT_GROUP = "xai_fer"
DISABLE_ENV = "XAI_FER_DISABLE_PLUGINS"
OWN_DISTRIBUTION = "xai-fer"
KINDS = ("models", "explainers", "datasets")

_manager: pluggy.PluginManager | None = None


def _third_party_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("xai_fer")
    manager.add_hookspecs(hookspecs)
    only_builtin = _third_party_disabled()
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist.name if entry_point.dist else None
        if only_builtin and not _same(dist, OWN_DISTRIBUTION):
            continue
        earlier = manager.get_plugin(entry_point.name)
        if earlier is not None or manager.is_blocked(entry_point.name):
            earlier_dist = _distribution_of(manager, earlier)
            if earlier_dist is not None and _same(earlier_dist, dist):
                continue  # one package seen twice (a stale egg-info next to the installed one)
            raise UserError(f"two packages declare the plugin {entry_point.name!r}: {earlier_dist or 'unknown'} and "
                            f"{dist or 'unknown'}", f"uninstall one of them or rename its entry point ({DISABLE_ENV}=1 "
                            "loads only the built-in plugins)")
        where = f"plugin {entry_point.name!r} (from {dist or 'unknown package'})"
        try:
            plugin = entry_point.load()
        except (Exception, SystemExit) as exc:  # a broken plugin must not take the whole tool down silently
            raise UserError(f"{where} failed to import: {type(exc).__name__}: {exc}", BROKEN_PLUGIN_HINT) from exc
        try:
            manager.register(plugin, name=entry_point.name)
        except (pluggy.PluginValidationError, ValueError) as exc:  # a misnamed hook or argument, a module twice
            raise UserError(f"{where} does not fit xai-fer's hooks: {_first_line(exc)}", BROKEN_PLUGIN_HINT) from exc
        if not manager.get_hookcallers(plugin) and not manager.is_blocked(entry_point.name):
            # pluggy registers a module without any @hookimpl function silently: it would just never appear.
            raise UserError(f"{where} implements no hook: mark its register_models, register_explainers or "
                            "register_datasets function with @xai_fer.hookspecs.hookimpl", BROKEN_PLUGIN_HINT)
        if dist:
            manager._plugin_distinfo.append((plugin, entry_point.dist))  # so list_plugin_distinfo() knows it
    try:
        manager.check_pending()  # a hook name that is no hook of xai-fer's (a typo)
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin) if exc.plugin is not None else "unknown"
        reason = _first_line(exc).split(" in plugin ")[0]  # the rest is the module's repr
        raise UserError(f"plugin {name!r} does not fit xai-fer's hooks: {reason}", BROKEN_PLUGIN_HINT) from exc
    return manager


# For a plugin that cannot be used, named in the message: shared by the loaders that run plugin code.
BROKEN_PLUGIN_HINT = f"fix or uninstall it, or set {DISABLE_ENV}=1 to load only the built-in plugins"


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    if isinstance(exc, pluggy.PluginValidationError) and len(lines) > 1:
        return lines[-1]  # pluggy's reason ("Argument(s) {...} are declared in the hookimpl but ...") comes last
    return reason(exc)


def _distribution_of(manager: pluggy.PluginManager, plugin) -> str | None:
    return next((dist.name for known, dist in manager.list_plugin_distinfo() if known is plugin), None)


def _same(first: str | None, second: str | None) -> bool:
    return (first or "").replace("_", "-").lower() == (second or "").replace("_", "-").lower()


def get_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _manager
    if _manager is None:
        _manager = _new_manager()
    return _manager


def reset() -> None:
    """Forget the manager, so that the next call re-reads the entry points (used by tests)."""
    global _manager
    _manager = None


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


def _in_call_order(manager: pluggy.PluginManager, kind: str) -> list:
    """``register_<kind>`` implementations in the order xai-fer uses (also the order formats are detected in):
    those marked ``tryfirst``, then the built-in plugins, then the others in the order Python finds their
    packages, then those marked ``trylast``. A third-party format therefore never takes over a file a built-in
    one reads, unless it asks to with ``tryfirst``."""
    own = {id(plugin) for plugin, dist in manager.list_plugin_distinfo() if _same(dist.project_name, OWN_DISTRIBUTION)}
    impls = getattr(manager.hook, f"register_{kind}").get_hookimpls()
    return [impl for _, impl in sorted(enumerate(impls), key=lambda pair: (
        0 if pair[1].tryfirst else 2 if pair[1].trylast else 1, id(pair[1].plugin) not in own, pair[0]))]


def _collect(kind: str) -> dict[str, tuple[object, str]]:
    """Call ``register_<kind>`` on every plugin, one by one, so each registered object knows its plugin."""
    manager = get_manager()
    found: dict[str, tuple[object, str]] = {}
    for impl in _in_call_order(manager, kind):
        plugin_name = impl.plugin_name

        def register(obj, _plugin=plugin_name):
            name = _check_registered(kind, obj, _plugin)
            if name in found:
                raise UserError(
                    f"two plugins register the {kind[:-1]} {name!r}: {found[name][1]!r} and {_plugin!r}",
                    "uninstall one of them or rename the name it registers",
                )
            found[name] = (obj, _plugin)

        try:
            impl.function(register=register)
        except UserError:
            raise
        except Exception as exc:  # a plugin's own bug, or a missing optional dependency of it
            raise UserError(f"plugin {plugin_name!r} failed in register_{kind}: {type(exc).__name__}: "
                            f"{_first_line(exc)}", BROKEN_PLUGIN_HINT) from exc
    return found


def provenance(kind: str, name: str) -> dict | None:
    """Which plugin (and package, version) registered ``name`` (None for a name no plugin registered): kept with
    results, so that a run that depends on a third-party plugin says which one."""
    if name not in (found := _collect(kind)):
        return None
    plugin = found[name][1]
    dist = next((d for p, d in get_manager().list_plugin_distinfo() if p is get_manager().get_plugin(plugin)), None)
    return {"plugin": plugin, "package": dist.project_name if dist else None, "version": dist.version if dist else None}


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
                       f"{type(exc).__name__}: {_first_line(exc)}", f"rerun with --debug for the traceback; {advice}")


def models() -> dict[str, object]:
    """Model architectures by name."""
    return {name: obj for name, (obj, _) in _collect("models").items()}


def explainers() -> dict[str, object]:
    """Explainers by name."""
    return {name: obj for name, (obj, _) in _collect("explainers").items()}


def datasets() -> dict[str, object]:
    """Dataset formats by name, in registration order (the order auto-detection tries them in)."""
    return {name: obj for name, (obj, _) in _collect("datasets").items()}


def lookup(kind: str, name: str) -> object:
    """One registered object, or a UserError that suggests the closest valid name."""
    table = {"models": models, "explainers": explainers, "datasets": datasets}[kind]()
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=1)
    hint = f"did you mean {close[0]!r}?" if close else ""
    valid = ", ".join(sorted(table)) or "none installed"
    raise UserError(f"unknown {kind[:-1]} {name!r}", f"{hint} valid: {valid}".strip())


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
    manager = get_manager()
    dists = {id(plugin): dist for plugin, dist in manager.list_plugin_distinfo()}
    infos: dict[str, PluginInfo] = {}
    for name, plugin in manager.list_name_plugin():
        dist = dists.get(id(plugin))
        infos[name] = PluginInfo(
            name=name,
            package=dist.project_name if dist else None,
            version=dist.version if dist else None,
        )
    for kind in KINDS:
        for thing, (_, plugin_name) in _collect(kind).items():
            infos[plugin_name].registers.setdefault(kind, []).append(thing)
    return sorted(infos.values(), key=lambda info: (info.package != OWN_DISTRIBUTION, info.name))
