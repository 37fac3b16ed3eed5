"""The ``xai-fer`` command line, one module per command: :mod:`.plugins`, :mod:`.train`, :mod:`.info`,
:mod:`.evaluate` and :mod:`.explain`; :mod:`.shared` holds the Typer application, its global options, the
one-line errors and the entry point :func:`main`, and :mod:`.arguments` the arguments several commands take.
Heavy imports (TensorFlow, Keras) happen inside commands, never at start-up, so ``xai-fer --help`` and
``xai-fer plugins`` stay instant."""

from __future__ import annotations

# isort: off
# Imported in the order `xai-fer --help` lists the commands: each module registers its command on ``app``.
from . import plugins, train, info, evaluate, explain  # noqa: F401
# isort: on
from .shared import app, main

__all__ = ["app", "main"]
