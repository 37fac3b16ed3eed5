"""Typed options for plugins: a plugin declares a dataclass, users pass ``KEY=VALUE`` strings (the command
line) or Python values (the API: ``{"saliency": {"indices": [0, 1, 2]}}``).

Values are converted by the field's type annotation and then checked by the dataclass's ``__post_init__``
(which raises ``ValueError`` with a readable message); both failures become one-line ``UserError``s.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal, get_args, get_origin

from .errors import UserError, did_you_mean

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _first_that_fits(candidates: list, convert, nothing_fits: str) -> Any:
    """A union's value: ``convert(type)`` for its first type that takes it; else the first type's message."""
    errors = []
    for candidate in candidates:
        try:
            return convert(candidate)
        except UserError as exc:
            errors.append(exc.message)
    raise UserError(errors[0] if errors else nothing_fits)


def _convert(text: str, annotation: Any, where: str) -> Any:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if type(None) in args and text.strip().lower() in ("", "none", "null"):
            return None
        return _first_that_fits([a for a in args if a is not type(None)], lambda t: _convert(text, t, where),
                                f"{where}: cannot read {text!r}")
    if origin is Literal:
        for choice in args:  # Literal[3, 5] is written 5 on the command line: compare as text, return the value
            if str(choice) == text.strip():
                return choice
        raise UserError(f"{where}: {text!r} is not one of {', '.join(map(str, args))}")
    if origin in (tuple, list):
        parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[int, str]: fixed length, typed items
            if len(parts) != len(args):
                raise UserError(f"{where}: expected {len(args)} comma-separated values, got {len(parts)}")
            return tuple(_convert(p, t, where) for p, t in zip(parts, args, strict=True))
        item_type = args[0] if args else str
        values = [_convert(p, item_type, where) for p in parts]
        return tuple(values) if origin is tuple else values
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise UserError(f"{where}: expected true or false, got {text!r}")
    if annotation in (int, float):
        try:
            value = annotation(text)
        except ValueError:
            kind = "a whole number" if annotation is int else "a number"
            raise UserError(f"{where}: expected {kind}, got {text!r}") from None
        if annotation is float and not math.isfinite(value):  # nan slips through every `x < 0` check
            raise UserError(f"{where}: expected a finite number, got {text!r}")
        return value
    if annotation is str:
        return text
    raise UserError(f"{where}: unsupported option type {annotation!r}")


def field_types(options_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(options_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(options_cls)}


def parse_options(options_cls: type, raw: dict[str, str], owner: str) -> Any:
    """Build ``options_cls`` from ``KEY=VALUE`` strings or Python values; unknown keys get the closest valid
    suggestion."""
    types = field_types(options_cls)
    values: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in types:
            hint = did_you_mean(key, types, spell=lambda close: f"{owner}.{close}")
            valid = ", ".join(types) or "none"
            raise UserError(f"unknown option {owner}.{key}", f"{hint}valid options: {valid}")
        where = f"option {owner}.{key}"
        values[key] = _convert(text, types[key], where) if isinstance(text, str) else _value(text, types[key], where)
    return build_options(options_cls, values, owner)


def _value(value: Any, annotation: Any, where: str) -> Any:
    """A Python value given for an option (``{"indices": [0, 1, 2]}`` from the API), checked against the
    field's type as the command line's text is: numbers stay numbers, sequences are converted item by item,
    and a value of another type is one line naming the option."""
    if isinstance(value, str):
        return _convert(value, annotation, where)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        return _first_that_fits([a for a in args if a is not type(None)], lambda t: _value(value, t, where),
                                f"{where}: cannot use {value!r}")
    if origin is Literal:
        if any(value == choice and type(value) is type(choice) for choice in args):  # True is not 1 here
            return value
        return _convert(str(value), annotation, where)  # 5 for Literal["5"] is fine; the message names choices
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list, range)) and not hasattr(value, "tolist"):
            raise UserError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        items = list(value.tolist() if hasattr(value, "tolist") else value)  # numpy arrays too
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise UserError(f"{where}: expected {len(args)} values, got {len(items)}")
            return tuple(_value(v, t, where) for v, t in zip(items, args, strict=True))
        converted = [_value(v, args[0] if args else str, where) for v in items]
        return tuple(converted) if origin is tuple else converted
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar such as np.int64(3)
        value = value.item()
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected True or False, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{where}: expected a whole number, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UserError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
        raise UserError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # target=3 means class 3, as "3" does
            return str(value)
        raise UserError(f"{where}: expected text, got {type(value).__name__} {value!r}")
    raise UserError(f"{where}: unsupported option type {annotation!r}")


def build_options(options_cls: type, values: dict[str, Any], owner: str) -> Any:
    """Instantiate an options dataclass from Python values, turning validation errors into UserErrors."""
    try:
        return options_cls(**values)
    except (ValueError, TypeError) as exc:
        raise UserError(f"invalid options for {owner}: {exc}") from None


def describe_options(options_cls: type) -> list[dict[str, str]]:
    """Name, type, default and help (from ``field(metadata={'help': ...})``) of every option."""
    rows = []
    for f in dataclasses.fields(options_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append({"name": f.name, "type": type_name(field_types(options_cls)[f.name]), "default": repr(default),
                     "help": f.metadata.get("help", "")})
    return rows


def type_name(annotation: Any) -> str:
    """What an option accepts, as a user reads it: ``one of a, b``, ``int, ...`` (a comma-separated list),
    ``int or None``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (tuple, list) and args:
        if origin is tuple and args[-1] is not Ellipsis:
            return ", ".join(type_name(a) for a in args)
        return f"{type_name(args[0])}, ..."
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join("None" if a is type(None) else type_name(a) for a in args)
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def option(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse's word
    """A dataclass field with a help text; mutable defaults are wrapped in a factory."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})
