"""``xai-fer info``: what a saved model takes and gives; with ``--data``, the scaling ``--preprocess auto``
would choose on that data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .arguments import LABELS, MODEL_ARG, UNSAFE, data_source, model_file, scaling_note
from .shared import command, console


@command
def info(
    model: Annotated[Path, MODEL_ARG],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    unsafe: Annotated[bool, UNSAFE] = False,
    data: Annotated[list[str], typer.Option("--data", help="Also show which scaling --preprocess auto picks on "
                                                            "this data, and why.")] = [],  # noqa: B006
    split: Annotated[str | None, typer.Option(help="Training, PublicTest or PrivateTest (with --data).")] = None,
    labels: Annotated[Path | None, LABELS] = None,
    data_format: Annotated[str | None, typer.Option("--format", help="Dataset format; default: detected.")] = None,
):
    """Input and output, layers, parameter count and softmax handling of a saved model; with --data, the
    scaling --preprocess auto would choose."""
    from ..models.introspect import inspect_model
    from ..models.loading import load_model

    model = model_file(model)
    loaded = load_model(model, unsafe=unsafe)
    details = inspect_model(loaded).as_dict()
    if data:
        from ..data import load_dataset
        from ..models.scaling_choice import choose_scaling

        dataset = load_dataset(data_source(data), split=split, format=data_format, labels=labels,
                               allow_mixed_splits=False)
        dataset.put_on_255_scale()
        choice, _ = choose_scaling(loaded, inspect_model(loaded), dataset)
        details["preprocess_auto"] = choice.describe()
    if as_json:
        console.print_json(json.dumps(details))
        return
    from ..display import TextTable as Table

    table = Table(title=str(model), show_header=False)
    choice = details.pop("preprocess_auto", None)
    for key, value in details.items():
        table.add_row(key, ", ".join(value) if isinstance(value, list) else f"{value:,}" if isinstance(value, int)
                      and not isinstance(value, bool) else str(value))
    console.print(table)
    if choice is not None:
        console.print(f"--preprocess auto on {', '.join(data)}: {choice['summary']}", highlight=False)
        scaling_note(choice)
