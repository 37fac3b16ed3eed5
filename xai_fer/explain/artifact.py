"""What an explainer returns: figures, arrays and a JSON-ready summary. The pipeline writes it to disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
        np.savez_compressed(directory / "arrays.npz", **{k: np.asarray(v) for k, v in self.arrays.items()})
        atomic.write_json(directory / "summary.json", self.summary)
        return names

    def close(self) -> None:
        import matplotlib.pyplot as plt

        for figure in self.figures.values():
            if not callable(figure):
                plt.close(figure)
