"""Progress of a run, as explainers report it: ``context.progress.task(description, total)`` gives a handle whose
``advance(n)`` says that ``n`` more units of work are done.

The core offers the object and stays silent by default (:class:`NoProgress`): the Python API prints nothing
unless asked, and neither does ``xai-fer explain`` in a pipe. On a terminal the CLI installs
:class:`RichProgress` (one bar per task, on stderr); ``--progress lines`` prints one line as each explainer
starts (:class:`LineProgress`), for logs. A plugin reports its long loops the same way whichever is installed::

    with context.progress.task("my-method: images", total=len(rows)) as task:
        for start in range(0, len(rows), chunk):
            ...
            task.advance(len(rows[start:start + chunk]))

``total=None`` means "unknown" (a spinner and the time elapsed). Closing the handle (leaving the ``with``)
ends the task, whether or not it was advanced to its total.
"""

from __future__ import annotations

from typing import Protocol


class ProgressTask(Protocol):
    """One task's handle: ``advance(n=1)`` as work is done; ``close()`` (or leaving ``with``) when finished."""

    def advance(self, n: float = 1) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> ProgressTask: ...

    def __exit__(self, *exc) -> None: ...


class Progress(Protocol):
    """What ``context.progress`` offers: tasks, possibly open inside one another (an explainer's own task holds
    the tasks of its long loops)."""

    def task(self, description: str, total: float | None = None) -> ProgressTask: ...


class _Handle:
    """A task handle that tells its owner what happened (``on_advance``, ``on_close``); closing twice is fine."""

    def __init__(self, on_advance=None, on_close=None):
        self._on_advance, self._on_close, self.closed = on_advance, on_close, False

    def advance(self, n: float = 1) -> None:
        if self._on_advance is not None and not self.closed:
            self._on_advance(n)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._on_close is not None:
                self._on_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Display:
    """Used as a context manager around a run: a display that needs starting and stopping (bars) does it here."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class NoProgress(_Display):
    """The default: tasks that report nowhere."""

    def task(self, description: str, total: float | None = None) -> _Handle:
        return _Handle()


class LineProgress(_Display):
    """One line per top-level task (an explainer starting), written to ``stream``; inner tasks are silent. For
    logs and pipes where a redrawn bar would be noise."""

    def __init__(self, stream):
        self.stream, self.depth = stream, 0

    def task(self, description: str, total: float | None = None) -> _Handle:
        if self.depth == 0:
            self.stream.write(f"running {description}...\n")
            self.stream.flush()
        self.depth += 1

        def close():
            self.depth -= 1

        return _Handle(on_close=close)


class RichProgress:
    """Rich progress bars on a console (the CLI's stderr on a terminal). Use it as a context manager around the
    run: the display starts on entry and stops on exit. A top-level task stays on screen when done (the run's
    history); a task opened inside another disappears when closed, so thousands of chunks leave no trail."""

    def __init__(self, console=None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bars

        self.bars = Bars(SpinnerColumn(finished_text="✓"), TextColumn("{task.description}"), BarColumn(),
                         MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False)
        self.depth = 0

    def __enter__(self):
        self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.stop()

    def task(self, description: str, total: float | None = None) -> _Handle:
        from rich.markup import escape

        task_id = self.bars.add_task(escape(description), total=total)
        inner = self.depth > 0
        self.depth += 1

        def close():
            self.depth -= 1
            if inner:
                self.bars.remove_task(task_id)
            else:  # shown as finished (an unknown total as one unit done), not spinning on
                total = next(t.total for t in self.bars.tasks if t.id == task_id) or 1
                self.bars.update(task_id, total=total, completed=total)

        return _Handle(on_advance=lambda n: self.bars.advance(task_id, n), on_close=close)


class RecordingProgress(_Display):
    """Keeps every task and its advances (for tests, and for callers that want the numbers):
    ``events`` is a list of ``("open", description, total)``, ``("advance", description, n)`` and
    ``("close", description, done)``."""

    def __init__(self):
        self.events: list[tuple] = []

    def task(self, description: str, total: float | None = None) -> _Handle:
        self.events.append(("open", description, total))
        done = [0.0]

        def advance(n):
            done[0] += n
            self.events.append(("advance", description, n))

        return _Handle(on_advance=advance, on_close=lambda: self.events.append(("close", description, done[0])))

    def done(self, description: str) -> list[float]:
        """Units advanced in each closed task of that description, in the order they closed."""
        return [e[2] for e in self.events if e[0] == "close" and e[1] == description]


class _Announcer(_Display):
    """A plain callable (the older ``progress=`` argument) called with each explainer's name as it starts."""

    def __init__(self, callback):
        self.callback, self.depth = callback, 0

    def task(self, description: str, total: float | None = None) -> _Handle:
        if self.depth == 0:
            self.callback(description)
        self.depth += 1

        def close():
            self.depth -= 1

        return _Handle(on_close=close)


def as_progress(value):
    """What a ``progress=`` argument of the Python API means: None or False nothing, True bars on stderr, a
    progress object itself, or a callable called with each explainer's name as it starts."""
    import sys

    if value is None or value is False:
        return NoProgress()
    if value is True:
        return progress_for("bar", sys.stderr)
    if hasattr(value, "task"):
        return value
    if callable(value):
        return _Announcer(value)
    raise TypeError(f"progress must be True, False, None, a progress object or a callable, not {type(value).__name__}")


PROGRESS_MODES = ("auto", "bar", "lines", "off")


def progress_for(mode: str, stream):
    """The progress object the CLI installs for ``--progress MODE`` on ``stream`` (stderr): ``auto`` shows bars
    on a terminal and nothing in a pipe, ``bar`` always, ``lines`` one line per explainer, ``off`` nothing."""
    if mode == "auto":
        mode = "bar" if _is_terminal(stream) else "off"
    if mode == "bar":
        from rich.console import Console

        return RichProgress(Console(file=stream, force_terminal=_is_terminal(stream) or None))
    if mode == "lines":
        return LineProgress(stream)
    return NoProgress()


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False
