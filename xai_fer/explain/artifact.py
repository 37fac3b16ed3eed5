"""What an explainer returns: figures, arrays and a JSON-ready summary. The pipeline writes it to disk."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from xai_fer.atomic import json_default
from xai_fer.lazy import np


class Figures(MutableMapping):
    """An artifact's figures: every entry read through the mapping is a matplotlib Figure. Figures made in bulk
    are kept as zero-argument callables (see :class:`Artifact`) and built on first access, then kept, so a
    notebook shows ``artifact.figures["image_3"]`` like any other. Writing reads them through :meth:`lazy`,
    which builds nothing and keeps nothing: thousands of per-image figures never coexist in memory."""

    def __init__(self, entries=None):
        self._entries = dict(entries or {})
        self._built: dict = {}

    def __getitem__(self, name):
        entry = self._entries[name]
        if not callable(entry):
            return entry
        if name not in self._built:
            from ..display import literal_figure_text

            figure = entry()
            if hasattr(figure, "findobj"):
                literal_figure_text(figure)  # as figures made eagerly are (Artifact.__post_init__)
            self._built[name] = figure
        return self._built[name]

    def lazy(self, name):
        """The entry as the explainer gave it: a Figure, or the callable that makes one (nothing is built)."""
        return self._entries[name]

    def is_made(self, name) -> bool:
        """Whether the entry was given as a Figure (not as a callable that makes one)."""
        return not callable(self._entries[name])

    def entries(self) -> dict:
        """Name -> entry as given (Figures and callables), for writing and checking."""
        return dict(self._entries)

    def built(self) -> list:
        """Every Figure this mapping holds: those given, and those built on access."""
        return [entry for entry in self._entries.values() if not callable(entry)] + list(self._built.values())

    def __setitem__(self, name, figure):
        self._entries[name] = figure
        self._built.pop(name, None)

    def __delitem__(self, name):
        del self._entries[name]
        self._built.pop(name, None)

    def __iter__(self):
        return iter(self._entries)

    def __len__(self):
        return len(self._entries)

    def __repr__(self):
        return f"Figures({', '.join(self._entries)})"


@dataclass
class Artifact:
    """``figures``: name -> matplotlib Figure (saved as ``name.png``), or a zero-argument callable returning one
    for figures made in bulk: it is called when the artifact is written and the figure dropped once saved, so
    thousands of them never coexist in memory (kept as a :class:`Figures` mapping, which gives a Figure for
    every entry read through it); ``arrays``: name -> ndarray (saved together in ``arrays.npz``);
    ``summary``: plain JSON data (saved as ``summary.json``)."""

    figures: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.figures, Figures):
            self.figures = Figures(self.figures)
        self.check_contents()
        from ..display import literal_figure_text

        for figure in self.figures.entries().values():  # shown as written in a notebook too (user strings)
            if not callable(figure) and hasattr(figure, "findobj"):
                literal_figure_text(figure)

    def check_contents(self) -> None:
        """Names become file names (NAME.png) and archive members, arrays are stored without pickle: a bad one
        must fail where the explainer builds its result (and again as it hands it over), not after every
        explainer of a long run finished."""
        for kind, names in (("figure", self.figures), ("array", self.arrays)):
            for name in names:
                if not isinstance(name, str) or not name or name.startswith(".") or set(name) & set("/\\\0"):
                    raise ValueError(f"Artifact {kind} name {name!r}: use a non-empty name without '/', '\\' "
                                     "or a leading '.'")
        for name, value in self.arrays.items():
            try:
                is_object = np.asarray(value).dtype.kind == "O"
            except ValueError:  # ragged nested lists
                is_object = True
            if is_object:  # arrays.npz is read back with allow_pickle=False
                raise ValueError(f"Artifact array {name!r} holds Python objects or rows of different lengths: "
                                 "store numbers, booleans or strings (put other values in the summary)")
        for name, figure in self.figures.entries().items():
            if not (callable(figure) or hasattr(figure, "savefig")):
                raise ValueError(f"Artifact figure {name!r} is a {type(figure).__name__}: give a matplotlib Figure "
                                 "or a function returning one")
        try:  # summary.json must be real JSON: NaN and Infinity are not
            json.dumps(self.summary, allow_nan=False, default=json_default)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Artifact summary is not plain JSON data ({exc}): use dicts, lists, strings, finite "
                             "numbers, booleans and None") from None

    def write(self, directory: Path, max_figures: int | None = None) -> list[str]:
        """Write everything into ``directory``; returns the figure file names in order. With ``max_figures``,
        at most that many figures are saved: those already made first, then lazy ones in order (the arrays keep
        every result). Figure text is written as it is, never as mathtext (see ``xai_fer.display``)."""
        from .. import atomic
        from ..display import save_figure

        directory.mkdir(parents=True, exist_ok=True)
        names = []
        for name in self.figures_to_write(max_figures):
            figure = self.figures.lazy(name)
            made = figure() if callable(figure) else figure  # a lazy figure lives only while it is saved
            # A figure with a layout engine (constrained) already fits its contents: a tight bounding box would
            # draw it twice (about half of a report's drawing time) and let long labels stretch the image.
            tight = None if getattr(made, "get_layout_engine", lambda: None)() is not None else "tight"
            save_figure(made, directory / f"{name}.png", dpi=110, bbox_inches=tight)
            del made
            names.append(f"{name}.png")
        _write_npz(directory / "arrays.npz", self.arrays)
        atomic.write_json(directory / "summary.json", self.summary)
        return names

    def figures_to_write(self, max_figures: int | None = None) -> list[str]:
        """The names of the figures :meth:`write` saves, in order."""
        names = list(self.figures)
        if max_figures is None or len(names) <= max_figures:
            return names
        made = [name for name in names if self.figures.is_made(name)]
        kept = set(made[:max_figures])
        kept.update([name for name in names if not self.figures.is_made(name)][:max_figures - len(kept)])
        return [name for name in names if name in kept]

    def close(self) -> None:
        import matplotlib.pyplot as plt

        for figure in self.figures.built():
            plt.close(figure)


def _write_npz(path: Path, arrays: dict) -> None:
    """What ``np.savez_compressed`` writes, without its keyword arguments: an array named ``file`` or
    ``allow_pickle`` would collide with them."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
