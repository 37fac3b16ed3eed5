"""``xai-fer train``: train a registered architecture with a preset recipe, ``--set`` settings on top."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..training.config import TrainConfig
from .arguments import command_line, parse_pairs
from .shared import command, console, err_console

# The training settings are named in `xai-fer train --help`, read from TrainConfig itself (no TensorFlow).
_SETTINGS_HELP = "Any training setting as KEY=VALUE (repeatable): " + ", ".join(
    field.name for field in dataclasses.fields(TrainConfig)) + " (the tutorial's table explains each)."


@command
def train(
    model: Annotated[str, typer.Argument(help="Registered architecture, e.g. cnn or dnn (see `xai-fer plugins`).")],
    data: Annotated[str, typer.Option("--data", help="Labelled source: fer2013.csv, train.csv, folder, .h5, .npz")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the model, history, curves and metrics.")],
    preset: Annotated[str, typer.Option(help="Training recipe: study (the paper's) or improved.")] = "study",
    epochs: Annotated[int | None, typer.Option(help="Override the preset's number of epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the preset's batch size.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed: on a CPU the same command trains the same weights, also "
                                                  "when interrupted and resumed after the same epochs (a resumed "
                                                  "run differs from an uninterrupted one: see --resume).")] = None,
    setting: Annotated[list[str], typer.Option("--set", help=_SETTINGS_HELP)] = [],  # noqa: B006
    option: Annotated[list[str], typer.Option("--option", help="Architecture option KEY=VALUE (repeatable).")] = [],  # noqa: B006
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out from its last "
                                                          "epoch: weights and optimizer state are restored, while "
                                                          "shuffling, augmentation and dropout restart from the "
                                                          "seed.")] = False,
    strategy: Annotated[str | None, typer.Option(help="'mirrored': TensorFlow's MirroredStrategy, one replica "
                                                      "per GPU (or per XAI_FER_CPU_DEVICES).")] = None,
    data_format: Annotated[str | None, typer.Option("--format", help="Dataset format; default: detected.")] = None,
    finish: Annotated[bool, typer.Option("--finish", help="Stop an interrupted run where it is: write the model "
                                                          "and metrics from its best checkpoint without training "
                                                          "further.")] = False,
    init_from: Annotated[Path | None, typer.Option(help="Start from the weights of this saved model (same "
                                                        "architecture and --option widths).")] = None,
):
    """Train a registered architecture (the study's protocol by default)."""
    from .. import registry
    from ..atomic import stop_signals_as_interrupt
    from ..data import load_dataset
    from ..options import parse_options
    from ..training.checkpoints import check_run_folder
    from ..training.command import after_training_settings, note_holdout_leaks, print_trained
    from ..training.distillation import check_teachers
    from ..training.initialisation import check_init_from
    from ..training.trainer import train as run_training

    continuing = resume or finish
    explicit = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)) if v is not None}
    config, overrides = _train_config(preset, setting, explicit)
    # Everything that can be checked cheaply is, before reading what may be a large dataset.
    init_from = check_init_from(init_from, continuing)
    architecture = registry.lookup("models", model)
    model_options = dataclasses.asdict(parse_options(architecture.Options, parse_pairs(option, "option"), model))
    check_run_folder(out, continuing)
    note_holdout_leaks(err_console, init_from, check_teachers(config.teachers) if not continuing else [], config)
    dataset = load_dataset(data, format=data_format)
    after_training = after_training_settings(err_console, config, overrides, explicit, option, preset, continuing)
    with stop_signals_as_interrupt():  # SIGTERM, SIGHUP: temp files removed, as on Ctrl-C
        result = run_training(model, dataset, out, config, model_options, resume=resume,
                              strategy=strategy, deterministic=seed is not None, command=command_line(),
                              finish=finish, init_from=init_from, after_training=after_training)
    print_trained(console, result)


def _train_config(preset: str, setting: list[str], explicit: dict) -> tuple[TrainConfig, dict[str, str]]:
    """(config, the ``--set`` pairs): the preset with ``--set`` and ``--epochs/--batch-size/--seed`` on top,
    validated together: settings that depend on each other (average_last_epochs <= epochs) are checked against
    the --epochs given, not the preset's."""
    from ..options import parse_options
    from ..training.config import PRESETS

    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}", f"use one of {', '.join(PRESETS)}")
    overrides = parse_pairs(setting, "set")
    config = parse_options(TrainConfig, {**_as_strings(dataclasses.asdict(PRESETS[preset])), **overrides,
                                         **_as_strings(explicit)}, "train")
    return config, overrides


def _as_strings(values: dict) -> dict[str, str]:
    """Settings as ``--set`` would give them: lists comma-joined, everything else ``str``."""
    return {k: ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v) for k, v in values.items()}
