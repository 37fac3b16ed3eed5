"""Ctrl-C (and SIGTERM / SIGHUP where a command turns them into it) held back for the length of a call into
TensorFlow's compiled functions, then raised as soon as the call returns.

Why: a ``KeyboardInterrupt`` raised while TensorFlow traces a ``tf.function`` (autograph converting Python, graph
building) is caught inside TensorFlow and comes out as a ``RuntimeError`` naming a line of the traced code (the run
then reports a failed explainer instead of an interruption), or leaves TensorFlow's C++ state half-built and the
process dies of SIGSEGV. Measured here: interrupting ``explain -e activation-max`` about 0.7 s into the explainer
(while its compiled loop is traced) did one or the other in 2 of 20 tries. Holding the signal costs no
responsiveness: a compiled call cannot stop midway anyway, and Python sees the signal right after it.
"""

from __future__ import annotations

import functools
import signal
import threading
from contextlib import contextmanager

_HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_depth = 0  # nested holds: only the outermost installs and restores handlers


@contextmanager
def interrupts_held():
    """Within the block, the signals whose handler is a Python function (Ctrl-C's ``KeyboardInterrupt``, or a
    command's own) are noted instead of handled; on leaving it the handlers come back and each noted signal is
    handed to its handler, which raises there. Off the main thread (where Python delivers no signals) or nested in
    another hold it does nothing."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    noted: list[int] = []
    previous = {number: signal.getsignal(number) for number in _HELD_SIGNALS}
    previous = {number: handler for number, handler in previous.items() if callable(handler)}
    _depth = 1
    try:
        for number in previous:
            signal.signal(number, lambda signum, frame: noted.append(signum))
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _depth = 0
        for number in dict.fromkeys(noted):
            previous[number](number, None)


def holding_interrupts(function):
    """``function`` whose every call runs inside :func:`interrupts_held`."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        with interrupts_held():
            return function(*args, **kwargs)

    return call
