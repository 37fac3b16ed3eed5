"""What an explainer returns: figures, arrays and a JSON-ready summary. The pipeline writes it to disk."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from xai_fer.atomic import json_default
from xai_fer.lazy import np


@dataclass
class Artifact:
    """``figures``: name -> matplotlib Figure (saved as ``name.png``), or a zero-argument callable returning one
    for figures made in bulk: it is called when the artifact is written and the figure dropped once saved, so
    thousands of them never coexist in memory; ``arrays``: name -> ndarray (saved together in ``arrays.npz``);
    ``summary``: plain JSON data (saved as ``summary.json``)."""

    figures: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    def __post_init__(self):
        self.check_contents()

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
        for name, figure in self.figures.items():
            if not (callable(figure) or hasattr(figure, "savefig")):
                raise ValueError(f"Artifact figure {name!r} is a {type(figure).__name__}: give a matplotlib Figure "
                                 "or a function returning one")
        try:  # summary.json must be real JSON: NaN and Infinity are not
            json.dumps(self.summary, allow_nan=False, default=json_default)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Artifact summary is not plain JSON data ({exc}): use dicts, lists, strings, finite "
                             "numbers, booleans and None") from None

    def write(self, directory: Path) -> list[str]:
        """Write everything into ``directory``; returns the figure file names in order."""
        from .. import atomic

        directory.mkdir(parents=True, exist_ok=True)
        names = []
        for name, figure in self.figures.items():
            made = figure() if callable(figure) else figure  # a lazy figure lives only while it is saved
            made.savefig(directory / f"{name}.png", dpi=110, bbox_inches="tight")
            del made
            names.append(f"{name}.png")
        _write_npz(directory / "arrays.npz", self.arrays)
        atomic.write_json(directory / "summary.json", self.summary)
        return names

    def close(self) -> None:
        import matplotlib.pyplot as plt

        for figure in self.figures.values():
            if not callable(figure):
                plt.close(figure)


def _write_npz(path: Path, arrays: dict) -> None:
    """What ``np.savez_compressed`` writes, without its keyword arguments: an array named ``file`` or
    ``allow_pickle`` would collide with them."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
