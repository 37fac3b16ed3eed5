"""The ``xai-fer`` command line. Heavy imports (TensorFlow, Keras) happen inside commands, never at start-up,
so ``xai-fer --help`` and ``xai-fer plugins`` stay instant."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .display import TextConsole, line
from .errors import UserError, did_you_mean
from .explain.output import MAX_FIGURES
from .training.config import TrainConfig

app = typer.Typer(
    name="xai-fer",
    help="Explain image classifiers (any saved Keras model), starting with facial expressions (FER2013).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# soft_wrap: a long path or result line stays one line when the output goes to a file or a pipe (Rich would
# otherwise wrap it at 80 columns there); tables get 200 columns there too, unless COLUMNS says otherwise.
_PIPE_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
# Text consoles: every string printed is text (class names, file names and layer names can hold Rich markup or
# terminal escape sequences: see xai_fer.display); styled words are built with display.line.
console = TextConsole(soft_wrap=True, width=_PIPE_WIDTH)
err_console = TextConsole(stderr=True, soft_wrap=True)
_state = {"debug": False}


def _help_layout() -> None:
    """Typer's help, made to read right: flags show no type (``--overwrite <bool>`` reads as if it took a
    value), and in a pipe or file the help is as wide as the other output (Rich would cut option help at 80
    columns there, mid-word)."""
    from typer import core, rich_utils

    shown_type = core.TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown_type(self, ctx)

    core.TyperOption.display_type_rich = display_type_rich
    if rich_utils.MAX_WIDTH is None and not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        rich_utils.MAX_WIDTH = 120


_help_layout()


def _command(function):
    """Register a command whose UserErrors become one line on stderr and exit code 2 (raised with --debug)."""

    return app.command()(_one_line_errors(function))


def _one_line_errors(function):
    """UserErrors become one line on stderr and exit code 2 (raised with --debug); Ctrl-C exits 130."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except UserError as exc:
            if _state["debug"]:
                raise
            # As text: a path like "runs/[old]/model.keras" prints as it is, not as Rich markup.
            err_console.print(line(("Error:", "bold red"), f" {exc.one_line()}"), soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("Interrupted: earlier results were left as they were, nothing half-written remains.")
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool):
    if value:
        console.print(f"xai-fer {__version__}")
        raise typer.Exit()


@app.callback()
@_one_line_errors  # the set-up below (XAI_FER_CPU_DEVICES) can fail on the user's input too
def _main(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and TensorFlow's logs.")] = False,
    backend: Annotated[str | None, typer.Option(
        "--backend", metavar="tensorflow|jax",
        help="Keras backend to compute with (default: KERAS_BACKEND, else tensorflow); jax needs `pip install "
             "jax` (its CUDA wheels on a GPU), and TensorFlow need not be installed.")] = None,
):
    _state["debug"] = debug
    if ctx.invoked_subcommand not in (None, "plugins"):
        from .explain.backends import use_backend

        use_backend(backend)  # before anything imports Keras: it reads KERAS_BACKEND once
    if ctx.invoked_subcommand not in (None, "plugins"):
        # Before TensorFlow starts: XAI_FER_CPU_DEVICES splits the CPU into logical devices (mirrored training).
        from .training.devices import configure_cpu_devices

        configure_cpu_devices()
        if not debug:
            import warnings

            from .quiet import import_tensorflow_quietly

            import_tensorflow_quietly()
            # A model saved with a list of one input, called on the tensor of images: Keras warns on every
            # call, and the call is right. Other warnings still show; --debug shows this one too.
            warnings.filterwarnings("ignore", message=r"The structure of .?inputs.? doesn't match",
                                    category=UserWarning)
            # Every Keras-2 Sequential .h5 declares its input on the first layer, which Keras 3 advises against
            # as it rebuilds the model: advice for whoever writes the model, not for whoever explains it.
            warnings.filterwarnings("ignore", message=r"Do not pass an .?input_shape.?/.?input_dim.? argument",
                                    category=UserWarning)
        # --preprocess auto's close calls: each command prints them as one line of its own (_scaling_note).
        import warnings

        from .models.scaling_choice import ScalingWarning

        warnings.filterwarnings("ignore", category=ScalingWarning)


def _parse_pairs(pairs: list[str], what: str, form: str = "KEY=VALUE") -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--{what} {pair!r} is not {form}", f"write it like --{what} {form}")
        parsed[key.strip()] = value
    return parsed


@_command
def plugins(
    name: Annotated[str | None, typer.Argument(help="An explainer, model or dataset format: show its description "
                                                    "and options.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
):
    """List installed plugins, their versions and what they register; with NAME, what one of them offers."""
    from .registry import plugin_infos

    if name is not None:
        _describe_registered(name, as_json)
        return
    infos = plugin_infos()
    if as_json:
        console.print_json(json.dumps([info.as_dict() for info in infos]))
        return
    from .display import TextTable as Table

    table = Table(title="xai-fer plugins")
    for column in ("plugin", "package", "version", "models", "explainers", "datasets"):
        table.add_column(column, overflow="fold")  # whole names, also in a pipe (80 columns)
    for info in infos:
        table.add_row(info.name, info.package or "-", info.version or "-",
                      *(", ".join(info.registers.get(kind, [])) for kind in ("models", "explainers", "datasets")))
    console.print(table)


def _describe_registered(name: str, as_json: bool) -> None:
    """Description, provider and options (with types, defaults and help) of every object registered as ``name``."""
    from . import registry
    from .options import describe_options

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
    from .display import TextTable as Table

    for entry in found:
        console.print(line((f"{entry['kind']} {entry['name']}", "bold"), f" (plugin {entry.get('plugin')}, package "
                           f"{entry.get('package') or '-'} {entry.get('version') or ''}): {entry['description']}"))
        if not entry["options"]:
            console.print("no options")
            continue
        flag = {"explainer": f"-o {name}.KEY=VALUE", "model": "--option KEY=VALUE (xai-fer train)",
                "dataset": "no options"}[entry["kind"]]
        table = Table(title=f"options ({flag})", title_justify="left")
        for column in ("option", "type", "default", "help"):
            table.add_column(column, overflow="fold")
        for row in entry["options"]:
            table.add_row(row["name"], row["type"], row["default"], row["help"])
        console.print(table)


@_command
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
    from . import registry
    from .data import load_dataset
    from .options import parse_options
    from .training.checkpoints import check_run_folder
    from .training.command import after_training_settings, note_holdout_leaks, print_trained
    from .training.distillation import check_teachers
    from .training.initialisation import check_init_from
    from .training.trainer import train as run_training

    continuing = resume or finish
    explicit = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)) if v is not None}
    config, overrides = _train_config(preset, setting, explicit)
    # Everything that can be checked cheaply is, before reading what may be a large dataset.
    init_from = check_init_from(init_from, continuing)
    architecture = registry.lookup("models", model)
    model_options = dataclasses.asdict(parse_options(architecture.Options, _parse_pairs(option, "option"), model))
    check_run_folder(out, continuing)
    note_holdout_leaks(err_console, init_from, check_teachers(config.teachers) if not continuing else [], config)
    dataset = load_dataset(data, format=data_format)
    command = "xai-fer " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None
    after_training = after_training_settings(err_console, config, overrides, explicit, option, preset, continuing)
    from .atomic import stop_signals_as_interrupt

    with stop_signals_as_interrupt():  # SIGTERM, SIGHUP: temp files removed, as on Ctrl-C
        result = run_training(model, dataset, out, config, model_options, resume=resume,
                              strategy=strategy, deterministic=seed is not None, command=command, finish=finish,
                              init_from=init_from, after_training=after_training)
    print_trained(console, result)


def _train_config(preset: str, setting: list[str], explicit: dict) -> tuple[TrainConfig, dict[str, str]]:
    """(config, the ``--set`` pairs): the preset with ``--set`` and ``--epochs/--batch-size/--seed`` on top,
    validated together: settings that depend on each other (average_last_epochs <= epochs) are checked against
    the --epochs given, not the preset's."""
    from .options import parse_options
    from .training.config import PRESETS

    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}", f"use one of {', '.join(PRESETS)}")
    overrides = _parse_pairs(setting, "set")
    config = parse_options(TrainConfig, {**_as_strings(dataclasses.asdict(PRESETS[preset])), **overrides,
                                         **_as_strings(explicit)}, "train")
    return config, overrides


_MODEL_ARG = typer.Argument(help="A saved Keras model (.keras, or Keras-2 .h5), or a training run's folder.")


def _model_file(model: Path) -> Path:
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
# The training settings are named in `xai-fer train --help`, read from TrainConfig itself (no TensorFlow).
_SETTINGS_HELP = "Any training setting as KEY=VALUE (repeatable): " + ", ".join(
    field.name for field in dataclasses.fields(TrainConfig)) + " (the tutorial's table explains each)."
_PREPROCESS = typer.Option(help="Input scaling: auto, unit [0,1], symmetric [-1,1], raw [0,255], standardize.")
_UNSAFE = typer.Option("--unsafe", help="Allow models that carry code (Lambda layers). Only for trusted files.")
_DATA_HELP = ("fer2013.csv, train.csv/test.csv, a folder, .h5, .npz, or photos: image files (repeat --data, or "
              "a quoted glob 'photos/*.jpg')")
_LABELS = typer.Option("--labels", help="Labels for an unlabelled source (test.csv, photos): .npy or one-column "
                                        ".csv, one per image in order.")
_FACES = typer.Option("--faces", help="Cut each photo to the face found in it (OpenCV Haar cascade: the faces "
                                      "extra of xai-fer, opencv-python-headless).")


def _command_line() -> str | None:
    """The command as typed (quoted for a shell), recorded in a run's manifest or metrics so it can be rerun."""
    return "xai-fer " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None


def _data_source(data: list[str]):
    """One --data as given; several as a list of files (repeated --data, or a shell-expanded glob)."""
    return data[0] if len(data) == 1 else data


def _scaling_note(choice: dict | None) -> None:
    """The close-call warning of --preprocess auto, one line on stderr."""
    if choice and choice.get("warning"):
        err_console.print(f"Warning: {choice['warning']}", highlight=False)


@_command
def info(
    model: Annotated[Path, _MODEL_ARG],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    unsafe: Annotated[bool, _UNSAFE] = False,
    data: Annotated[list[str], typer.Option("--data", help="Also show which scaling --preprocess auto picks on "
                                                            "this data, and why.")] = [],  # noqa: B006
    split: Annotated[str | None, typer.Option(help="Training, PublicTest or PrivateTest (with --data).")] = None,
    labels: Annotated[Path | None, _LABELS] = None,
    data_format: Annotated[str | None, typer.Option("--format", help="Dataset format; default: detected.")] = None,
):
    """Input and output, layers, parameter count and softmax handling of a saved model; with --data, the
    scaling --preprocess auto would choose."""
    from .models.introspect import inspect_model
    from .models.loading import load_model

    model = _model_file(model)
    loaded = load_model(model, unsafe=unsafe)
    details = inspect_model(loaded).as_dict()
    if data:
        from .data import load_dataset
        from .models.scaling_choice import choose_scaling

        dataset = load_dataset(_data_source(data), split=split, format=data_format, labels=labels,
                               allow_mixed_splits=False)
        dataset.put_on_255_scale()
        choice, _ = choose_scaling(loaded, inspect_model(loaded), dataset)
        details["preprocess_auto"] = choice.describe()
    if as_json:
        console.print_json(json.dumps(details))
        return
    from .display import TextTable as Table

    table = Table(title=str(model), show_header=False)
    choice = details.pop("preprocess_auto", None)
    for key, value in details.items():
        table.add_row(key, ", ".join(value) if isinstance(value, list) else f"{value:,}" if isinstance(value, int)
                      and not isinstance(value, bool) else str(value))
    console.print(table)
    if choice is not None:
        console.print(f"--preprocess auto on {', '.join(data)}: {choice['summary']}", highlight=False)
        _scaling_note(choice)


@_command
def evaluate(
    model: Annotated[Path, _MODEL_ARG],
    data: Annotated[list[str], typer.Option("--data", help="Labelled source: " + _DATA_HELP)],
    split: Annotated[str | None, typer.Option(help="Training, PublicTest or PrivateTest (sources with Usage).")] = None,
    preprocess: Annotated[str, _PREPROCESS] = "auto",
    labels: Annotated[Path | None, _LABELS] = None,
    faces: Annotated[bool, _FACES] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    unsafe: Annotated[bool, _UNSAFE] = False,
    data_format: Annotated[str | None, typer.Option("--format", help="Dataset format; default: detected.")] = None,
    tta_flip: Annotated[bool, typer.Option("--tta-flip", help="Average each image's prediction with its mirror "
                                                              "image's (the reference models' view).")] = False,
):
    """Accuracy and per-class accuracy of a saved model on labelled data."""
    from .data import load_dataset
    from .evaluation import evaluate_model
    from .models.loading import load_model

    model = _model_file(model)
    loaded = load_model(model, unsafe=unsafe)
    source = _data_source(data)
    dataset = load_dataset(source, split=split, format=data_format, labels=labels, faces=faces,
                           allow_mixed_splits=False)
    report = evaluate_model(loaded, dataset, preprocess, tta_flip) | {"model": str(model), "data": source,
                                                                      "split": split}
    _scaling_note(report["scaling_choice"])
    if as_json:
        console.print_json(json.dumps(report))
        return
    data = ", ".join(data)
    from .display import TextTable as Table

    view = ", with the mirrored view" if tta_flip else ""
    # Plain lines, not a table title: paths stay whole when the output goes to a file or a pipe.
    console.print(f"{model} on {data} ({split or 'all rows'}{view}): accuracy {report['accuracy']:.2%}, "
                  f"n={report['n']}", highlight=False)
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


# The options of `xai-fer explain`, declared once here so that its signature reads as the list of them.
_EXPLAIN_MODEL = typer.Argument(help="Saved Keras model or a training run's folder; default: the bundled reference "
                                     "CNN.")
_IMAGES = typer.Option("--data", help="Images; default: the bundled PrivateTest sample. " + _DATA_HELP)
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


@_command
def explain(
    model: Annotated[Path | None, _EXPLAIN_MODEL] = None,
    data: Annotated[list[str], _IMAGES] = [],  # noqa: B006
    out: Annotated[Path, _OUT] = Path("xai-fer-out"),
    explainer: Annotated[list[str], _EXPLAINER] = [],  # noqa: B006
    option: Annotated[list[str], _OPTION] = [],  # noqa: B006
    split: Annotated[str | None, _SPLIT] = None,
    preprocess: Annotated[str, _PREPROCESS] = "auto",
    seed: Annotated[int, _SEED] = 0,
    overwrite: Annotated[bool, _OVERWRITE] = False,
    unsafe: Annotated[bool, _UNSAFE] = False,
    data_format: Annotated[str | None, _FORMAT] = None,
    labels: Annotated[Path | None, _LABELS] = None,
    faces: Annotated[bool, _FACES] = False,
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
    from .explain.command import print_explained, resume_note
    from .explain.pipeline import run_request
    from .explain.plan import split_option_pairs
    from .explain.progress import PROGRESS_MODES, progress_for
    from .explain.request import ExplainRequest, ReadSettings, RunSettings, WholeSplitSettings, WriteSettings

    if progress not in PROGRESS_MODES:
        raise UserError(f"--progress {progress!r} is not one of {', '.join(PROGRESS_MODES)}",
                        "auto shows bars on a terminal and stays quiet in a pipe")
    options = split_option_pairs(_parse_pairs(option, "option", "EXPLAINER.KEY=VALUE"))
    request = ExplainRequest(
        read=ReadSettings(model=_model_file(model) if model is not None else None,
                          data=_data_source(data) if data else None, split=split, labels=labels, faces=faces,
                          data_format=data_format, unsafe=unsafe),
        run=RunSettings(explainers=explainer or None, options=options, preset=preset, preprocess=preprocess,
                        seed=seed),
        write=WriteSettings(out_dir=out, overwrite=overwrite, max_figures=max_figures, command=_command_line(),
                            progress=progress_for(progress, sys.stderr)),
        whole_split=WholeSplitSettings(all_images=all_images, chunk_size=chunk_size, maps_dtype=maps_dtype,
                                       engine=engine, workers=workers, worker_cpus=worker_cpus))
    try:
        result = run_request(request)
    except KeyboardInterrupt:
        resume_note(err_console, out, all_images)
        raise
    _scaling_note(result.manifest.get("scaling_choice"))
    print_explained(console, err_console, result, out)
    if open_report:
        _open_in_browser(out / "index.html")


def _open_in_browser(page: Path) -> None:
    """The report in the user's web browser; where none can be started (a server, no display), a note."""
    import webbrowser

    if not webbrowser.open(page.resolve().as_uri()):
        err_console.print(line("Note: no web browser could be started; open ", str(page), " yourself"))


def _as_strings(values: dict) -> dict[str, str]:
    return {k: ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v) for k, v in values.items()}


def main() -> None:
    """Console entry point. Errors of the commands are handled per command (see ``_command``); a command line
    Typer cannot parse (a missing argument, an unknown option, a number that is not one) is one line too,
    instead of Typer's framed box."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        code = app(standalone_mode=False)  # Typer then raises usage errors and returns exit codes
    except typer.Abort:
        err_console.print("Aborted.")
        sys.exit(1)
    except Exception as exc:
        # Typer's usage errors (its ClickException, not public API): a message and an exit code.
        if _state["debug"] or not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        message = exc.format_message().strip().rstrip(".")
        if message:  # empty: no arguments at all, and Typer has already shown the help
            command = getattr(getattr(exc, "ctx", None), "command_path", "xai-fer")
            err_console.print(line(("Error:", "bold red"), f" {message}: see `{command} --help`"),
                              soft_wrap=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
