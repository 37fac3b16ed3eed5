"""What every ``xai-fer`` command shares: the Typer application and its global options (``--version``,
``--debug``, ``--backend``), the consoles, the ``@command`` decorator that turns a user's mistake into one line
on stderr, the help layout, and the console entry point :func:`main`. No TensorFlow here: the global set-up
imports it only for commands that need it."""

from __future__ import annotations

import functools
import os
import sys
from typing import Annotated

import typer

from .. import __version__
from ..display import TextConsole, line
from ..errors import UserError

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
# Commands that never touch Keras: no backend, no TensorFlow start-up before them.
_WITHOUT_KERAS = (None, "plugins")


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


def command(function):
    """Register ``function`` as a command of ``xai-fer`` (named after it, its docstring as its help), its
    UserErrors one line on stderr (see :func:`one_line_errors`)."""

    return app.command()(one_line_errors(function))


def one_line_errors(function):
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
@one_line_errors  # the set-up below (XAI_FER_CPU_DEVICES) can fail on the user's input too
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
    if ctx.invoked_subcommand in _WITHOUT_KERAS:
        return
    from ..explain.backends import use_backend

    use_backend(backend)  # before anything imports Keras: it reads KERAS_BACKEND once
    # Before TensorFlow starts: XAI_FER_CPU_DEVICES splits the CPU into logical devices (mirrored training).
    from ..training.devices import configure_cpu_devices

    configure_cpu_devices()
    if not debug:
        _quiet_keras()
    # --preprocess auto's close calls: each command prints them as one line of its own (scaling_note).
    import warnings

    from ..models.scaling_choice import ScalingWarning

    warnings.filterwarnings("ignore", category=ScalingWarning)


def _quiet_keras() -> None:
    """TensorFlow's start-up logs and two Keras warnings about right calls are hidden (``--debug`` shows them)."""
    import warnings

    from ..quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    # A model saved with a list of one input, called on the tensor of images: Keras warns on every
    # call, and the call is right. Other warnings still show; --debug shows this one too.
    warnings.filterwarnings("ignore", message=r"The structure of .?inputs.? doesn't match",
                            category=UserWarning)
    # Every Keras-2 Sequential .h5 declares its input on the first layer, which Keras 3 advises against
    # as it rebuilds the model: advice for whoever writes the model, not for whoever explains it.
    warnings.filterwarnings("ignore", message=r"Do not pass an .?input_shape.?/.?input_dim.? argument",
                            category=UserWarning)


def main() -> None:
    """Console entry point. Errors of the commands are handled per command (see :func:`command`); a command line
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
            where = getattr(getattr(exc, "ctx", None), "command_path", "xai-fer")
            err_console.print(line(("Error:", "bold red"), f" {message}: see `{where} --help`"),
                              soft_wrap=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
