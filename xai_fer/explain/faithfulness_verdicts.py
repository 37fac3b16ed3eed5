"""Faithfulness in numbers and words: means with standard errors, the paired comparison of a map with a baseline
(within two standard errors it is "not distinguishable"), the ranking table's entries and the sentences of the
report."""

from __future__ import annotations

import math

from xai_fer.lazy import np

from .faithfulness_scoring import Scores


def mean_se(values) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean (None with no values; SE None with one)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return float(values.mean()), se


def comparison(difference: float | None, se: float | None, lower_is_better: bool) -> str:
    """``better``, ``worse`` or ``not distinguishable`` for a paired mean difference (this map minus the other):
    within two standard errors it cannot be told apart; ``too few images`` without a standard error."""
    if difference is None or se is None:
        return "too few images"
    if difference == 0 or abs(difference) < 2 * se:
        return "not distinguishable"
    return "better" if (difference < 0) == lower_is_better else "worse"


def verdict(difference: float | None, se: float | None, lower_is_better: bool, other: str = "random") -> str:
    """The comparison as a phrase: ``better than random``, ``not distinguishable from random``..."""
    word = comparison(difference, se, lower_is_better)
    if word == "too few images":
        return f"too few images to compare with {other}"
    return f"{word} {'from' if word == 'not distinguishable' else 'than'} {other}"


def _round(value):
    return None if value is None else round(float(value), 6)


def ranking_entry(name: str, kind: str, scores: Scores, random: Scores, sobel: Scores, rho) -> dict:
    """One row of the ranking table: the map's AUCs (mean, SE), the ratio of its mean to the random map's on the
    same images, the paired differences to the random and Sobel maps with their SEs, and the verdicts."""
    entry = {"map": name, "kind": kind, "images": int(len(scores.rows))}
    for curve, lower in (("deletion", True), ("insertion", False)):
        auc = getattr(scores, f"{curve}_auc")
        mean, se = mean_se(auc)
        random_mean, _ = mean_se(getattr(random, f"{curve}_auc"))
        entry[f"{curve}_auc"], entry[f"{curve}_se"] = _round(mean), _round(se)
        entry[f"{curve}_ratio"] = _round(mean / random_mean) if mean is not None and random_mean else None
        for other, label in ((random, "random"), (sobel, "sobel")):
            difference, difference_se = mean_se(auc - getattr(other, f"{curve}_auc"))
            entry[f"{curve}_vs_{label}"] = _round(difference)
            entry[f"{curve}_vs_{label}_se"] = _round(difference_se)
            entry[f"{curve}_vs_{label}_verdict"] = comparison(difference, difference_se, lower)
    entry["score"] = _round(entry["insertion_auc"] - entry["deletion_auc"]) if entry["deletion_auc"] is not None \
        else None
    entry["randomization_rho"] = _round(rho)
    return entry


def _with_se(value: float, se: float | None, sign: str = "") -> str:
    return f"{value:{sign}.3f}" + (f" ± {se:.3f}" if se is not None else "")


def curve_phrase(entry: dict, curve: str) -> str:
    """``deletion AUC 0.249 ± 0.010 (lower is better): not distinguishable from random (random 0.254,
    difference -0.005 ± 0.006)``."""
    lower = curve == "deletion"
    difference, se = entry[f"{curve}_vs_random"], entry[f"{curve}_vs_random_se"]
    auc = entry[f"{curve}_auc"]
    return (f"{curve} AUC {_with_se(auc, entry[f'{curve}_se'])} ({'lower' if lower else 'higher'} is better): "
            f"{verdict(difference, se, lower)} (random {auc - difference:.3f}, difference "
            f"{_with_se(difference, se, '+')})")


def method_sentence(entry: dict, randomization: dict | None) -> str:
    """One plain sentence: how the map does against the random map and the Sobel map, and under randomisation."""
    sobel = [comparison(entry[f"{curve}_vs_sobel"], entry[f"{curve}_vs_sobel_se"], curve == "deletion")
             for curve in ("deletion", "insertion")]
    sobel_text = f"{sobel[0]} on both" if sobel[0] == sobel[1] else f"{sobel[0]} on deletion, {sobel[1]} on insertion"
    sentence = (f"{entry['map']} ({entry['images']} images): {curve_phrase(entry, 'deletion')}; "
                f"{curve_phrase(entry, 'insertion')}; against the Sobel edge map: {sobel_text}")
    if randomization:
        sentence += f"; {randomization_phrase(randomization)}"
    return sentence + "."


def randomization_phrase(check: dict) -> str:
    if check.get("error"):
        return f"the randomisation check could not re-run it ({check['error']})"
    rho, layers = check["rho_all_layers"], check["layers"]
    if rho is None:
        return f"its maps with all {layers} layers randomised cannot be compared (constant maps)"
    if check["survives"]:
        return (f"FLAGGED: its maps survive the randomisation of all {layers} layers (Spearman rho {rho:.2f} >= "
                f"{check['threshold']:g}): they follow the image more than the model")
    return f"its maps change when the model's {layers} layers are randomised (Spearman rho {rho:.2f})"

