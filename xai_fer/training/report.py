"""Training history as CSV and JSON, and the loss/accuracy curves as a PNG."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .. import atomic
from ..display import save_figure


def write_history(out_dir: Path, history: dict) -> None:
    keys = list(history)
    rows = zip(*(history[k] for k in keys), strict=False)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["epoch", *keys])
    for epoch, row in enumerate(rows, start=1):
        writer.writerow([epoch, *(f"{v:.6g}" for v in row)])
    atomic.write_text(out_dir / "history.csv", buffer.getvalue())
    atomic.write_json(out_dir / "history.json", history)


def write_curves(path: Path, history: dict, title: str, earlier: dict | None = None) -> None:
    """Loss and accuracy, train against validation, per epoch. ``earlier`` is the history of the run this one
    started from (``--init-from``): drawn first, with a dotted line where this run took over."""
    from matplotlib.figure import Figure  # not pyplot: train() is also called from notebooks

    earlier = earlier or {}
    offset = len(earlier.get("loss", []))
    fig = Figure(figsize=(10, 4), layout="tight")  # laid out when saved: literal text, no warnings (display.py)
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = [*earlier.get(key, []), *history.get(key, [])]
            ax.plot(range(1, len(values) + 1), values, label=label)
        if offset:
            ax.axvline(offset + 0.5, color="grey", linestyle=":", label="this run starts (--init-from)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    # The title names the data file: written as text, never as mathtext (see xai_fer.display).
    atomic.write_with(Path(path), lambda tmp: save_figure(fig, tmp, dpi=100, format="png"))
