"""``xai-fer train --init-from MODEL``: start a new run from the weights of a saved model, and remember where
they came from so that a chain of runs (e.g. a second cosine cycle after a first one) can be read and replayed.

What is recorded of the starting model (``metrics.json`` → ``initialisation``): the path as given, the file's
sha256, and, when the model was written by ``xai-fer train``, its run's command, per-epoch history and own
``initialisation`` (so a chain nests, newest outside). The run is found beside the model: ``metrics.json`` and
``history.json`` of a finished run, ``state.json`` of a checkpoint, or ``NAME_metrics.json`` of a bundled
reference model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError


@dataclass
class Donor:
    weights: list[np.ndarray]
    parameters: int
    record: dict


def check_init_from(init_from: str | Path | None, resume: bool) -> Path | None:
    """The model file to start from, refused early (before any data is read) when it can't be used."""
    from ..models.loading import check_model_file

    if init_from is None:
        return None
    if resume:
        raise UserError("--init-from starts a new run", "leave it out when resuming or finishing a run")
    return check_model_file(Path(init_from))


def load_donor(source: Path) -> Donor:
    from ..fingerprints import file_sha256
    from ..models.loading import load_model

    record = {"path": str(source), "sha256": file_sha256(source)}  # hashed first: the bytes that get loaded
    model = load_model(source)
    record.update(_run_beside(source))
    return Donor([np.asarray(w) for w in model.weights], int(model.count_params()), record)


def copy_into(donor: Donor, base) -> None:
    """Give ``base`` the donor's weights; they must match it weight for weight in shape."""
    donor_shapes = [w.shape for w in donor.weights]
    base_shapes = [tuple(w.shape) for w in base.weights]
    if donor_shapes != base_shapes:
        raise UserError(f"{donor.record['path']} does not have the architecture being trained "
                        f"({len(donor_shapes)} weight arrays, {donor.parameters:,} parameters, against "
                        f"{len(base_shapes)} and {base.count_params():,})",
                        "pass a model of the same architecture, trained with the same --option widths")
    for target, value in zip(base.weights, donor.weights, strict=True):
        target.assign(value)


def ancestors(record: dict | None) -> list[dict]:
    """The records of a chain of runs, oldest first: ``record`` (a run's ``initialisation``) comes last."""
    chain = []
    while record:
        chain.insert(0, record)
        record = record.get("initialisation")
    return chain


def chain_history(record: dict | None) -> dict:
    """The per-epoch history of every run before this one, oldest first, joined key by key."""
    return join_histories([earlier.get("history") or {} for earlier in ancestors(record)])


def join_histories(histories: list[dict]) -> dict:
    """Per-epoch histories of consecutive runs, oldest first, joined key by key."""
    joined = {}
    for history in histories:
        for key, values in history.items():
            joined[key] = [*joined.get(key, []), *values]
    return joined


def _run_beside(source: Path) -> dict:
    """Command, history and starting point of the ``xai-fer train`` run that wrote ``source``, where found."""
    found = _record_beside(source)
    return {"command": found.get("command"), "history": history_beside(source, found),
            "initialisation": found.get("initialisation")}


def _record_beside(source: Path) -> dict:
    """The state and metrics of the run that wrote ``source`` (a run folder, or a bundled reference model's
    ``NAME_metrics.json``), merged; empty where none is found."""
    folder, found = Path(source).parent, {}
    for candidate in (folder / "state.json", folder / f"{Path(source).stem}_metrics.json", folder / "metrics.json"):
        found.update(_read_json(candidate))  # metrics.json last: a finished run's own record wins
    return found


def history_beside(source: Path, record: dict | None = None) -> dict | None:
    """The per-epoch history of the run that wrote ``source``, or None. A run folder has history.json; a bundled
    reference model has NAME_history.csv beside NAME_metrics.json; an interrupted run's is in state.json."""
    folder = Path(source).parent
    record = _record_beside(source) if record is None else record
    return (_read_json(folder / "history.json") or _read_history_csv(folder / f"{Path(source).stem}_history.csv")
            or record.get("history") or None)


def _read_history_csv(path: Path) -> dict:
    """``history.csv`` as written by ``report.write_history``: {column: [float per epoch]}, without ``epoch``."""
    import csv

    if not _is_small_file(path):
        return {}
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {}) if key != "epoch"}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def holdout_leak(source: Path, config) -> tuple[str, str] | None:
    """Why a run started from ``source`` with ``config`` would validate on images the earlier run trained on
    (its validation would flatter it), as (what the earlier run did, what that means for this run), or None. Only
    a holdout validation can leak: the earlier run trained on all of Training (validated on PublicTest), or held
    out other images (another seed or fraction). A teacher draws another consequence from the same cause."""
    if config.validation != "holdout":
        return None
    earlier = _record_beside(source).get("config")
    if not isinstance(earlier, dict):
        return None
    if earlier.get("validation") == "publictest":
        return ("the earlier run trained on all of Training", "this run's holdout images were among its training")
    for key in ("seed", "validation_fraction"):
        if key in earlier and earlier[key] != getattr(config, key):
            return (f"the earlier run held out other images ({key} {earlier[key]}, this run {getattr(config, key)})",
                    "this run validates partly on images it trained on")
    return None


def _is_small_file(path: Path) -> bool:
    """Whether ``path`` is a regular file of a size a run's record can have: another run's folder is untrusted,
    and a FIFO or a huge file named metrics.json would hang or fill the memory for a best-effort read."""
    from ..limits import CONFIG_BYTES

    return path.is_file() and (not CONFIG_BYTES.value() or path.stat().st_size <= CONFIG_BYTES.value())


def _read_json(path: Path) -> dict:
    if not _is_small_file(path):
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
