"""The shape of a run's ``checkpoints/state.json``, checked in one place before anything of a resumed run runs.

A run folder is untrusted input (copied from another machine, edited, damaged): every key the trainer reads
gets its type and range checked here, so a tampered state is refused in one line that names the key, instead
of a ``KeyError`` or ``TypeError`` deep inside training, or an epoch trained before the refusal.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import UserError

# More epochs than any run can have trained: a larger count is a damaged or edited state.
MAX_EPOCHS = 1_000_000
TAMPERED = "the run's state was edited or damaged: restore an intact copy of the run, or start a new one"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _history(value) -> bool:
    """{metric: [number per epoch]} (NaN and infinity allowed: a diverged epoch records them)."""
    return isinstance(value, dict) and all(
        isinstance(values, list) and all(_number(v) for v in values) for values in value.values())


def _data(value) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("sha256"), str) and isinstance(value.get("source"), str)
            and _integer(value.get("train_images")) and _integer(value.get("validation_images")))


def _teachers(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, dict) and isinstance(t.get("path"), str) and isinstance(t.get("sha256"), str) for t in value)


def _distillation(value) -> bool:
    return (isinstance(value, dict) and _teachers(value.get("teachers")) and _number(value.get("teacher_weight"))
            and _number(value.get("train_accuracy_together")))


def _initialisation(value) -> bool:
    """A chain of earlier runs' records, each a dict whose ``history`` (if any) is a history."""
    while value is not None:
        if not isinstance(value, dict) or not (value.get("history") is None or _history(value["history"])):
            return False
        value = value.get("initialisation")
    return True


# key: (required, what it must be, the check). Optional keys may also be null.
_SCHEMA = {
    "model": (True, "a model's name", lambda v: isinstance(v, str)),
    "epoch": (True, f"a whole number from 1 to {MAX_EPOCHS:,}", lambda v: _integer(v) and 1 <= v <= MAX_EPOCHS),
    "best_val_loss": (True, "a number (not NaN)", lambda v: _number(v) and not math.isnan(v)),
    "history": (True, "{metric: [numbers]}", _history),
    "config": (True, "an object of training settings", lambda v: isinstance(v, dict)),
    "model_options": (True, "an object of the model's options", lambda v: isinstance(v, dict)),
    "best_epoch": (False, "null or a whole number", _integer),
    "command": (False, "null or a string", lambda v: isinstance(v, str)),
    "resume_commands": (False, "null or a list of strings", _strings),
    "changed_after_training": (False, "null or an object", lambda v: isinstance(v, dict)),
    "data": (False, "null or an object with source, train_images, validation_images and sha256", _data),
    "distillation": (False, "null or an object with teachers, teacher_weight and train_accuracy_together",
                     _distillation),
    "environment": (False, "null or an object", lambda v: isinstance(v, dict)),
    "initialisation": (False, "null or an earlier run's record (an object)", _initialisation),
}


def check_state(state, path: Path) -> dict:
    """``state`` (parsed ``state.json``), or a :class:`UserError` naming the first key that is missing, of the
    wrong type or out of range."""
    if not isinstance(state, dict):
        raise UserError(f"{path} holds {type(state).__name__}, not a run's state", TAMPERED)
    for key, (required, what, check) in _SCHEMA.items():
        if key not in state or state[key] is None:
            if required:
                raise UserError(f"{path} has no {key!r}", TAMPERED)
            continue
        if not check(state[key]):
            raise UserError(f"{path}: {key!r} is {_shown(state[key])}, not {what}", TAMPERED)
    best = state.get("best_epoch")
    if best is not None and not 1 <= best <= state["epoch"]:
        raise UserError(f"{path}: 'best_epoch' is {best}, not between 1 and the run's epoch {state['epoch']}",
                        TAMPERED)
    return state


def _shown(value) -> str:
    """A value as the error line quotes it: its type, and the start of its text."""
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
