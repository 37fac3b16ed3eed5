"""Strings that come from data or paths (class names, file and folder names, layer names, and the messages that
quote them) shown as text, never as instructions to whatever shows them.

A class name read from an ``.npz`` can hold Rich markup (``[link=https://evil.example]Happy``), terminal escape
sequences (``ESC]0;title BEL``, ``ESC[2J``), bidi overrides that reverse what follows, or ``$...$`` that
matplotlib would parse as mathtext; a file name need not be UTF-8 (Python then carries its bytes as lone
surrogates, which no UTF-8 stream can write). Every place xai-fer shows such a string goes through here:

* the terminal: :func:`visible` (every control character written as an escape, ``\\x1b``, ``\\u202e``, ``\\xff``
  for a byte that is not UTF-8) inside a ``rich.text.Text`` (:func:`text`), which Rich never parses as markup;
* figures: :func:`literal_figure_text` (no mathtext, controls made visible, names and lines shortened, see
  :func:`short`) before a figure is saved, and no library warning reaches the terminal while it is drawn;
* error lines quote names through :func:`short` (a 60,000-character class name is no line);
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
# How much of a name a figure or an error line shows (the full names stay in JSON and HTML): a tick label, a
# title's name. Any line of a figure is cut at FIGURE_LINE_CHARS, whatever made it, so no figure grows with
# the names it shows (a 1,500-character class name made a 146-megapixel confusion matrix).
NAME_CHARS = 40
FIGURE_LINE_CHARS = 160
FIGURE_LINES = 6  # a name full of line breaks must not stack hundreds of lines either


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


def short(value, limit: int = NAME_CHARS) -> str:
    """``value`` made :func:`visible` and, when longer than ``limit`` characters, cut to them with an ellipsis:
    how figures and error lines show a name (one helper, so every figure bounds names the same way)."""
    shown = visible(value)
    return shown if len(shown) <= limit else shown[:limit - 1] + "\u2026"


def names_listed(names, count: int = 10) -> str:
    """The first ``count`` names, each :func:`short`, for an error line ('nothing' when there are none)."""
    names = list(names)
    more = f" and {len(names) - count:,} more" if len(names) > count else ""
    return ", ".join(short(name) for name in names[:count]) + more if names else "nothing"


def figure_name(value) -> str:
    """A name as every figure shows it (tick labels, titles, legends): at most FIGURE_LINES lines, each a
    :func:`short` name; the full names stay in the JSON and HTML."""
    lines = str(value).split("\n")
    return "\n".join(short(part) for part in lines[:FIGURE_LINES]) + ("\u2026" if len(lines) > FIGURE_LINES else "")


def _figure_text(value) -> str:
    """A figure's text: visible, at most FIGURE_LINES lines (a heading's own line breaks are kept) each cut at
    FIGURE_LINE_CHARS."""
    lines = str(value).split("\n")
    kept = [short(part, FIGURE_LINE_CHARS) for part in lines[:FIGURE_LINES]]
    return "\n".join(kept) + ("\u2026" if len(lines) > FIGURE_LINES else "")


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
    own line breaks are kept), tick labels cut at NAME_CHARS and other lines at FIGURE_LINE_CHARS (see
    :func:`short`). Tick labels are created first, so those drawn from fixed labels are covered."""
    from matplotlib.text import Text as FigureText
    from matplotlib.ticker import FixedFormatter, FuncFormatter

    for axes in figure.get_axes():
        for axis in (axes.xaxis, axes.yaxis):
            # Drawing sets tick labels from the formatters again: those that hold given labels (set_xticks(labels=)
            # makes a FuncFormatter in matplotlib 3.11, a FixedFormatter before) must give visible ones.
            for ticker in (axis.major, axis.minor):
                formatter = ticker.formatter
                if isinstance(formatter, FixedFormatter):
                    formatter.seq = [figure_name(label) for label in formatter.seq]
                elif isinstance(formatter, FuncFormatter) and not getattr(formatter.func, "_visible", False):
                    formatter.func = _visible_labels(formatter.func)
            axis.get_majorticklabels()
            axis.get_minorticklabels()
    for artist in figure.findobj(FigureText):
        artist.set_parse_math(False)
        content = artist.get_text()
        shown = _figure_text(content)
        if shown != content:
            artist.set_text(shown)


def _visible_labels(function):
    def label(*args):
        return figure_name(function(*args))

    label._visible = True  # wrapped once, however often the figure is saved
    return label


def save_figure(figure, path, **kwargs) -> None:
    """``figure.savefig`` with every text literal (see :func:`literal_figure_text`), ticks made while drawing
    included."""
    import warnings

    import matplotlib

    if hasattr(figure, "findobj"):  # a matplotlib Figure (anything else with savefig is saved as it is)
        literal_figure_text(figure)
    # A layout that cannot fit (many classes) is drawn as it is: matplotlib's warnings about it mean nothing to
    # the user of a finished report, and must not break the one-line terminal output.
    with matplotlib.rc_context(_SAVING_RC), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = _lay_out_once(figure, kwargs)
        try:
            figure.savefig(path, **kwargs)
        finally:
            if engine is not None:
                figure.set_layout_engine(engine)  # a notebook showing it later lays it out for its own size


# No mathtext; and a figure whose layout engine is set to None stays without one (these two would give it a
# layout engine back).
_SAVING_RC = {"text.parse_math": False, "figure.autolayout": False, "figure.constrained_layout.use": False}


def _lay_out_once(figure, kwargs: dict):
    """Place the axes of a figure that has a layout engine (constrained, tight) once, at the dpi it is saved at,
    and take the engine off for the save; returns the engine (None: nothing done). ``savefig`` lays out such a
    figure by drawing it whole with rendering switched off (every image resampled, every tick label placed),
    then draws it again for real: a third of each figure's saving time. The layout alone needs only the text
    sizes, so the figure is drawn once, to the same pixels."""
    import matplotlib

    engine = figure.get_layout_engine() if hasattr(figure, "get_layout_engine") else None
    if engine is None or not figure.axes or type(engine).__name__ == "PlaceHolderLayoutEngine":
        return None
    if kwargs.get("bbox_inches", matplotlib.rcParams["savefig.bbox"]) is not None:
        return None  # a tight bounding box needs the full draw anyway
    dpi = kwargs.get("dpi") or matplotlib.rcParams["savefig.dpi"]
    kept_dpi = figure.dpi
    if dpi != "figure":
        figure.dpi = dpi
    try:
        engine.execute(figure)
    except ValueError:  # as Figure.draw does: a layout that cannot be made leaves the axes where they are
        pass
    finally:
        figure.dpi = kept_dpi
    figure.set_layout_engine(None)
    return engine
