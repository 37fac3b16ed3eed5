"""``xai-fer plugins``: the installed plugins and what they register; with a name, what one of them offers.
Never imports Keras, so it stays instant."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..display import line
from ..errors import UserError, did_you_mean
from .shared import command, console


@command
def plugins(
    name: Annotated[str | None, typer.Argument(help="An explainer, model or dataset format: show its description "
                                                    "and options.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
):
    """List installed plugins, their versions and what they register; with NAME, what one of them offers."""
    from ..registry import plugin_infos

    if name is not None:
        _describe_registered(name, as_json)
        return
    infos = plugin_infos()
    if as_json:
        console.print_json(json.dumps([info.as_dict() for info in infos]))
        return
    from ..display import TextTable as Table

    table = Table(title="xai-fer plugins")
    for column in ("plugin", "package", "version", "models", "explainers", "datasets"):
        table.add_column(column, overflow="fold")  # whole names, also in a pipe (80 columns)
    for info in infos:
        table.add_row(info.name, info.package or "-", info.version or "-",
                      *(", ".join(info.registers.get(kind, [])) for kind in ("models", "explainers", "datasets")))
    console.print(table)


def _describe_registered(name: str, as_json: bool) -> None:
    """Description, provider and options (with types, defaults and help) of every object registered as ``name``."""
    from .. import registry
    from ..options import describe_options

    found = []
    for kind in registry.KINDS:
        obj = getattr(registry, kind)().get(name)
        if obj is not None:
            options = getattr(obj, "Options", None)
            found.append({"kind": kind[:-1], "name": name, "description": getattr(obj, "description", ""),
                          **(registry.provenance(kind, name) or {}),
                          "options": describe_options(options) if options is not None else []})
    if not found:
        every = sorted({n for kind in registry.KINDS for n in getattr(registry, kind)()})
        raise UserError(f"no explainer, model or dataset format is named {name!r}",
                        f"{did_you_mean(name, every)}installed: {', '.join(every)}")
    if as_json:
        console.print_json(json.dumps(found))
        return
    for entry in found:
        _print_registered(entry, name)


def _print_registered(entry: dict, name: str) -> None:
    """One registered object: a line saying what and whose it is, then its options as a table."""
    from ..display import TextTable as Table

    console.print(line((f"{entry['kind']} {entry['name']}", "bold"), f" (plugin {entry.get('plugin')}, package "
                       f"{entry.get('package') or '-'} {entry.get('version') or ''}): {entry['description']}"))
    if not entry["options"]:
        console.print("no options")
        return
    flag = {"explainer": f"-o {name}.KEY=VALUE", "model": "--option KEY=VALUE (xai-fer train)",
            "dataset": "no options"}[entry["kind"]]
    table = Table(title=f"options ({flag})", title_justify="left")
    for column in ("option", "type", "default", "help"):
        table.add_column(column, overflow="fold")
    for row in entry["options"]:
        table.add_row(row["name"], row["type"], row["default"], row["help"])
    console.print(table)
