"""What an explainer returns: figures, arrays and a JSON-ready summary. The pipeline writes it to disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Artifact:
    """``figures``: name -> matplotlib Figure (saved as ``name.png``); ``arrays``: name -> ndarray (saved
    together in ``arrays.npz``); ``summary``: plain JSON data (saved as ``summary.json``)."""

    figures: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    def write(self, directory: Path) -> list[str]:
        """Write everything into ``directory``; returns the figure file names in order."""
        from .. import atomic

        directory.mkdir(parents=True, exist_ok=True)
        names = []
        for name, figure in self.figures.items():
            figure.savefig(directory / f"{name}.png", dpi=110, bbox_inches="tight")
            names.append(f"{name}.png")
        np.savez_compressed(directory / "arrays.npz", **{k: np.asarray(v) for k, v in self.arrays.items()})
        atomic.write_json(directory / "summary.json", self.summary)
        return names

    def close(self) -> None:
        import matplotlib.pyplot as plt

        for figure in self.figures.values():
            plt.close(figure)
