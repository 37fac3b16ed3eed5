"""``xai-fer explain``: run explainers on a model and images and write a browsable report. The command line
becomes an :class:`~xai_fer.explain.request.ExplainRequest`, which the pipeline runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..display import line
from ..errors import UserError
from ..explain.output import MAX_FIGURES
from .arguments import (
    DATA_HELP,
    FACES,
    LABELS,
    PREPROCESS,
    UNSAFE,
    command_line,
    data_source,
    model_file,
    parse_pairs,
    scaling_note,
)
from .shared import command, console, err_console

# The options of `xai-fer explain`, declared once here so that its signature reads as the list of them.
_EXPLAIN_MODEL = typer.Argument(help="Saved Keras model or a training run's folder; default: the bundled reference "
                                     "CNN.")
_IMAGES = typer.Option("--data", help="Images; default: the bundled PrivateTest sample. " + DATA_HELP)
_OUT = typer.Option("--out", help="Directory for figures, arrays, summaries, index.html.")
_EXPLAINER = typer.Option("--explainer", "-e", help="Explainer; default: all that apply.")
_OPTION = typer.Option("--option", "-o", help="EXPLAINER.KEY=VALUE (repeatable).")
_SPLIT = typer.Option(help="Training, PublicTest or PrivateTest (sources with Usage).")
_SEED = typer.Option(help="Seed for every random choice (noise, jitter).")
_OVERWRITE = typer.Option("--overwrite", help="Replace the previous report in --out (never another kind of "
                                              "folder).")
_FORMAT = typer.Option("--format", help="Dataset format; default: detected.")
_MAX_FIGURES = typer.Option("--max-figures", help="At most this many figures per explainer (the arrays keep every "
                                                  "result).")
_PRESET = typer.Option(help="Named options for what -o leaves out: quick (one image per class, lighter checks; "
                            "under a minute).")
_PROGRESS = typer.Option(help="Progress on stderr: auto (bars on a terminal, nothing in a pipe), bar, lines (one "
                              "per explainer, for logs) or off.")
_OPEN = typer.Option("--open", help="Open the report (index.html) in the web browser once it is written.")
_ALL_IMAGES = typer.Option("--all-images", help="Every attribution method explains every image (the whole split), "
                                                "streamed in chunks into one maps.h5; an interrupted run resumes "
                                                "(run it again).")
_CHUNK_SIZE = typer.Option("--chunk-size", help="Images per chunk with --all-images (whole batches).")
_MAPS_DTYPE = typer.Option("--maps-dtype", help="float32 or float16: how maps.h5 stores maps (--all-images).")
_ENGINE = typer.Option("--engine", help="What computes the chunks of --all-images: local, or ray (Ray workers; the "
                                        "cluster of RAY_ADDRESS).")
_WORKERS = typer.Option("--workers", help="--engine ray: Ray workers (0: as many as the cluster's CPUs hold).")
_WORKER_CPUS = typer.Option("--worker-cpus", help="--engine ray: CPUs per Ray worker.")


@command
def explain(
    model: Annotated[Path | None, _EXPLAIN_MODEL] = None,
    data: Annotated[list[str], _IMAGES] = [],  # noqa: B006
    out: Annotated[Path, _OUT] = Path("xai-fer-out"),
    explainer: Annotated[list[str], _EXPLAINER] = [],  # noqa: B006
    option: Annotated[list[str], _OPTION] = [],  # noqa: B006
    split: Annotated[str | None, _SPLIT] = None,
    preprocess: Annotated[str, PREPROCESS] = "auto",
    seed: Annotated[int, _SEED] = 0,
    overwrite: Annotated[bool, _OVERWRITE] = False,
    unsafe: Annotated[bool, UNSAFE] = False,
    data_format: Annotated[str | None, _FORMAT] = None,
    labels: Annotated[Path | None, LABELS] = None,
    faces: Annotated[bool, FACES] = False,
    max_figures: Annotated[int, _MAX_FIGURES] = MAX_FIGURES,
    preset: Annotated[str | None, _PRESET] = None,
    progress: Annotated[str, _PROGRESS] = "auto",
    open_report: Annotated[bool, _OPEN] = False,
    all_images: Annotated[bool, _ALL_IMAGES] = False,
    chunk_size: Annotated[int, _CHUNK_SIZE] = 1024,
    maps_dtype: Annotated[str, _MAPS_DTYPE] = "float32",
    engine: Annotated[str, _ENGINE] = "local",
    workers: Annotated[int, _WORKERS] = 0,
    worker_cpus: Annotated[int, _WORKER_CPUS] = 1,
):
    """Run explainers (by default all that apply to the model and data) and write a browsable report."""
    from ..explain.command import print_explained, resume_note
    from ..explain.pipeline import run_request
    from ..explain.plan import split_option_pairs
    from ..explain.progress import PROGRESS_MODES, progress_for
    from ..explain.request import ExplainRequest, ReadSettings, RunSettings, WholeSplitSettings, WriteSettings

    if progress not in PROGRESS_MODES:
        raise UserError(f"--progress {progress!r} is not one of {', '.join(PROGRESS_MODES)}",
                        "auto shows bars on a terminal and stays quiet in a pipe")
    options = split_option_pairs(parse_pairs(option, "option", "EXPLAINER.KEY=VALUE"))
    request = ExplainRequest(
        read=ReadSettings(model=model_file(model) if model is not None else None,
                          data=data_source(data) if data else None, split=split, labels=labels, faces=faces,
                          data_format=data_format, unsafe=unsafe),
        run=RunSettings(explainers=explainer or None, options=options, preset=preset, preprocess=preprocess,
                        seed=seed),
        write=WriteSettings(out_dir=out, overwrite=overwrite, max_figures=max_figures, command=command_line(),
                            progress=progress_for(progress, sys.stderr)),
        whole_split=WholeSplitSettings(all_images=all_images, chunk_size=chunk_size, maps_dtype=maps_dtype,
                                       engine=engine, workers=workers, worker_cpus=worker_cpus))
    try:
        result = run_request(request)
    except KeyboardInterrupt:
        resume_note(err_console, out, all_images)
        raise
    scaling_note(result.manifest.get("scaling_choice"))
    print_explained(console, err_console, result, out)
    if open_report:
        _open_in_browser(out / "index.html")


def _open_in_browser(page: Path) -> None:
    """The report in the user's web browser; where none can be started (a server, no display), a note."""
    import webbrowser

    if not webbrowser.open(page.resolve().as_uri()):
        err_console.print(line("Note: no web browser could be started; open ", str(page), " yourself"))
