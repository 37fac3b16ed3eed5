"""Arguments several ``xai-fer`` commands take, declared once, and how the commands read them: ``KEY=VALUE``
pairs, a training run's folder given as a model, repeated ``--data``, the command line as typed."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from ..errors import UserError
from .shared import err_console

MODEL_ARG = typer.Argument(help="A saved Keras model (.keras, or Keras-2 .h5), or a training run's folder.")
PREPROCESS = typer.Option(help="Input scaling: auto, unit [0,1], symmetric [-1,1], raw [0,255], standardize.")
UNSAFE = typer.Option("--unsafe", help="Allow models that carry code (Lambda layers). Only for trusted files.")
DATA_HELP = ("fer2013.csv, train.csv/test.csv, a folder, .h5, .npz, or photos: image files (repeat --data, or "
             "a quoted glob 'photos/*.jpg')")
LABELS = typer.Option("--labels", help="Labels for an unlabelled source (test.csv, photos): .npy or one-column "
                                       ".csv, one per image in order.")
FACES = typer.Option("--faces", help="Cut each photo to the face found in it (OpenCV Haar cascade: the faces "
                                     "extra of xai-fer, opencv-python-headless).")


def parse_pairs(pairs: list[str], what: str, form: str = "KEY=VALUE") -> dict[str, str]:
    """``--what KEY=VALUE`` options (repeated) as a dict; one not in that form is a UserError naming it."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--{what} {pair!r} is not {form}", f"write it like --{what} {form}")
        parsed[key.strip()] = value
    return parsed


def model_file(model: Path) -> Path:
    """A training run's folder (``xai-fer train --out runs/dnn1``) stands for the model in it, and says so."""
    if not model.is_dir():
        return model
    saved = model / "model.keras"
    if saved.is_file():
        err_console.print(f"{model} is a training run: using its model {saved}", highlight=False)
        return saved
    if (model / "checkpoints" / "state.json").is_file():
        raise UserError(f"{model} is a training run without a model.keras yet (it was interrupted or is still "
                        "training)", f"let it finish, or write its best epoch with `xai-fer train ... --out {model} "
                        "--finish`")
    return model


def command_line() -> str | None:
    """The command as typed (quoted for a shell), recorded in a run's manifest or metrics so it can be rerun."""
    return "xai-fer " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None


def data_source(data: list[str]):
    """One --data as given; several as a list of files (repeated --data, or a shell-expanded glob)."""
    return data[0] if len(data) == 1 else data


def scaling_note(choice: dict | None) -> None:
    """The close-call warning of --preprocess auto, one line on stderr."""
    if choice and choice.get("warning"):
        err_console.print(f"Warning: {choice['warning']}", highlight=False)
