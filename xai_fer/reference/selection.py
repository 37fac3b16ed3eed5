"""How the reference CNN was chosen among several training runs, as ``scripts/build_reference.py`` recorded it in
``cnn_selection.json``: every candidate's validation and test numbers side by side, shown by the reference README
and by the docs."""

from __future__ import annotations

import json
from pathlib import Path

from . import HERE, percent

SELECTION = HERE / "cnn_selection.json"
RULE = "the best validation (PublicTest) accuracy with the mirrored view; the rule uses no PrivateTest number"
COLUMNS = (("PublicTest", "plain"), ("PublicTest", "tta_flip"), ("PrivateTest", "plain"), ("PrivateTest", "tta_flip"))


def read(path: Path = SELECTION) -> dict | None:
    """The recorded selection, or None where the reference CNN was not chosen among candidates."""
    return json.loads(path.read_text()) if path.exists() else None


def markdown(selection: dict) -> list[str]:
    """The selection as Markdown lines: the rule, then one row per candidate, the chosen one marked."""
    lines = [f"The CNN was chosen among {len(selection['runs'])} runs by {selection['rule']}:", "",
             "| run | validation loss | PublicTest | PublicTest + flip | PrivateTest | PrivateTest + flip |",
             "|---|---|---|---|---|---|"]
    for run in selection["runs"]:
        loss = run["validation_loss"]
        cells = " | ".join(percent(run["accuracy"].get(f"{split} {view}")) for split, view in COLUMNS)
        lines.append(f"| `{run['name']}`{' (chosen)' if run['chosen'] else ''} | "
                     f"{'-' if loss is None else f'{loss:.4f}'} | {cells} |")
    return lines
