"""Strings that come from data or paths (class names, file and folder names, layer names, and the messages that
quote them) shown as text, never as instructions to whatever shows them.

A class name read from an ``.npz`` can hold Rich markup (``[link=https://evil.example]Happy``), terminal escape
sequences (``ESC]0;title BEL``, ``ESC[2J``), bidi overrides that reverse what follows, or ``$...$`` that
matplotlib would parse as mathtext; a file name need not be UTF-8 (Python then carries its bytes as lone
surrogates, which no UTF-8 stream can write). Every place xai-fer shows such a string goes through here:

* the terminal: :func:`visible` (every control character written as an escape, ``\\x1b``, ``\\u202e``, ``\\xff``
  for a byte that is not UTF-8) inside a ``rich.text.Text`` (:func:`text`), which Rich never parses as markup;
* figures: :func:`literal_figure_text` (no mathtext, controls made visible) before a figure is saved;
* HTML: :func:`visible` before ``html.escape``; JSON files keep the exact string (``\\u`` escapes, ASCII only).
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.table import Table
from rich.text import Text

# C0 controls (ESC included), DEL and C1 controls (CSI is 0x9b), bidi embeddings, overrides and isolates, the
# marks that steer them, line and paragraph separators, and lone surrogates (bytes of a name that is not UTF-8).
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte of a name that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value, keep_newlines: bool = False) -> str:
    """``str(value)`` with every character a terminal or a text renderer would act on written as an escape,
    so the result is one printable line (or several with ``keep_newlines``) that shows what the string holds."""
    string = str(value)
    if keep_newlines:
        return "\n".join(_HIDDEN.sub(_escape, part) for part in string.split("\n"))
    return _HIDDEN.sub(_escape, string)


def text(value, style: str | None = None) -> Text:
    """A user string for Rich: visible characters only, and a ``Text``, which Rich never reads as markup."""
    return Text(visible(value), style=style or "")


def line(*parts) -> Text:
    """One terminal line from parts: strings (the whole line is made visible, so a part may quote user strings)
    and ``(string, style)`` pairs for styled words such as ``Error:``."""
    result = Text()
    for part in parts:
        string, style = part if isinstance(part, tuple) else (part, None)
        result.append(visible(string), style=style)
    return result


class TextConsole(Console):
    """A Rich console that prints strings as text: never as markup, control characters made visible. Styled
    words are ``Text`` (see :func:`line`). JSON goes out as ASCII, so no class name can carry a control
    character or a byte that is not UTF-8 into the terminal that way either."""

    def print(self, *objects, **kwargs):
        super().print(*(line(o) if isinstance(o, str) else o for o in objects), **kwargs)

    def print_json(self, json=None, **kwargs):
        super().print_json(json, **{**kwargs, "ensure_ascii": True})


class TextTable(Table):
    """A Rich table whose title and cells, given as strings, are text (see :func:`text`), never markup."""

    def __init__(self, *headers, title=None, **kwargs):
        super().__init__(*headers, title=text(title) if isinstance(title, str) else title, **kwargs)

    def add_row(self, *cells, **kwargs):
        super().add_row(*(text(cell) if isinstance(cell, str) else cell for cell in cells), **kwargs)


def literal_figure_text(figure) -> None:
    """Every text of a matplotlib figure shown as written: mathtext off (a class name ``$\\frac{`` would make
    the figure fail to render, ``$x$`` would render as math) and control characters made visible (a heading's
    own line breaks are kept). Tick labels are created first, so those drawn from fixed labels are covered."""
    from matplotlib.text import Text as FigureText
    from matplotlib.ticker import FixedFormatter, FuncFormatter

    for axes in figure.get_axes():
        for axis in (axes.xaxis, axes.yaxis):
            # Drawing sets tick labels from the formatters again: those that hold given labels (set_xticks(labels=)
            # makes a FuncFormatter in matplotlib 3.11, a FixedFormatter before) must give visible ones.
            for ticker in (axis.major, axis.minor):
                formatter = ticker.formatter
                if isinstance(formatter, FixedFormatter):
                    formatter.seq = [visible(label, keep_newlines=True) for label in formatter.seq]
                elif isinstance(formatter, FuncFormatter) and not getattr(formatter.func, "_visible", False):
                    formatter.func = _visible_labels(formatter.func)
            axis.get_majorticklabels()
            axis.get_minorticklabels()
    for artist in figure.findobj(FigureText):
        artist.set_parse_math(False)
        content = artist.get_text()
        shown = visible(content, keep_newlines=True)
        if shown != content:
            artist.set_text(shown)


def _visible_labels(function):
    def label(*args):
        return visible(function(*args), keep_newlines=True)

    label._visible = True  # wrapped once, however often the figure is saved
    return label


def save_figure(figure, path, **kwargs) -> None:
    """``figure.savefig`` with every text literal (see :func:`literal_figure_text`), ticks made while drawing
    included."""
    import matplotlib

    if hasattr(figure, "findobj"):  # a matplotlib Figure (anything else with savefig is saved as it is)
        literal_figure_text(figure)
    with matplotlib.rc_context({"text.parse_math": False}):
        figure.savefig(path, **kwargs)
