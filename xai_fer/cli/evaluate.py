"""``xai-fer evaluate``: accuracy, overall and per class, of a saved model on labelled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .arguments import DATA_HELP, FACES, LABELS, MODEL_ARG, PREPROCESS, UNSAFE, data_source, model_file, scaling_note
from .shared import command, console


@command
def evaluate(
    model: Annotated[Path, MODEL_ARG],
    data: Annotated[list[str], typer.Option("--data", help="Labelled source: " + DATA_HELP)],
    split: Annotated[str | None, typer.Option(help="Training, PublicTest or PrivateTest (sources with Usage).")] = None,
    preprocess: Annotated[str, PREPROCESS] = "auto",
    labels: Annotated[Path | None, LABELS] = None,
    faces: Annotated[bool, FACES] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    unsafe: Annotated[bool, UNSAFE] = False,
    data_format: Annotated[str | None, typer.Option("--format", help="Dataset format; default: detected.")] = None,
    tta_flip: Annotated[bool, typer.Option("--tta-flip", help="Average each image's prediction with its mirror "
                                                              "image's (the reference models' view).")] = False,
):
    """Accuracy and per-class accuracy of a saved model on labelled data."""
    from ..data import load_dataset
    from ..evaluation import evaluate_model
    from ..models.loading import load_model

    model = model_file(model)
    loaded = load_model(model, unsafe=unsafe)
    source = data_source(data)
    dataset = load_dataset(source, split=split, format=data_format, labels=labels, faces=faces,
                           allow_mixed_splits=False)
    report = evaluate_model(loaded, dataset, preprocess, tta_flip) | {"model": str(model), "data": source,
                                                                      "split": split}
    scaling_note(report["scaling_choice"])
    if as_json:
        console.print_json(json.dumps(report))
        return
    _print_report(report, ", ".join(data))


def _print_report(report: dict, data: str) -> None:
    """The accuracy line, how the images were prepared, then a table of the classes."""
    from ..display import TextTable as Table

    view = ", with the mirrored view" if report["tta_flip"] else ""
    # Plain lines, not a table title: paths stay whole when the output goes to a file or a pipe.
    console.print(f"{report['model']} on {data} ({report['split'] or 'all rows'}{view}): accuracy "
                  f"{report['accuracy']:.2%}, n={report['n']}", highlight=False)
    console.print("preprocessing: " + ", ".join(f"{key} {value}" for key, value in report["preprocessing"].items()
                                                if value), highlight=False)
    console.print(f"scaling: {report['scaling_choice']['summary']}", highlight=False)
    table = Table()
    table.add_column("class")
    table.add_column("n", justify="right")
    table.add_column("accuracy", justify="right")
    for name, row in report["per_class"].items():
        table.add_row(name, str(row["n"]), "-" if row["accuracy"] is None else f"{row['accuracy']:.2%}")
    console.print(table)
