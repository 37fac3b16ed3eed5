"""The FER2013 study's reading of its confusion matrix, checked against a run's predictions.

The study this project reproduces reports that Happy is recognised best, Fear worst, and that errors drift
towards Neutral. These claims name FER2013's classes, so they live here, apart from the generic confusion
explainer (``xai_fer_plugins.confusion``), which calls :func:`check_claims` only for data with FER2013's seven
class names. Nothing is hard-coded: each claim is recomputed from the counts, true or false, with the numbers.
"""

from __future__ import annotations

from ..data import FER2013_CLASSES
from ..lazy import np

# The ``statement`` of a run whose classes are not FER2013's.
NOT_CHECKED = ("the study's claims (Happy best, Fear worst, drift towards Neutral) are only checked for FER2013's "
               "seven class names")


def applies(class_names, counts) -> bool:
    """Whether the claims can be checked: FER2013's seven class names (any order) and at least one image."""
    return sorted(class_names) == sorted(FER2013_CLASSES) and counts.sum() > 0


def check_claims(counts, class_names, pattern: dict) -> dict:
    """``{"study_claims": {claim: {"holds": ..., numbers}}, "statement": one sentence}`` for a confusion matrix
    ``counts`` (true x predicted) and the generic ``pattern`` computed from it (best and worst recall, each
    class's most common wrong prediction, errors received)."""
    names = list(class_names)
    support = counts.sum(axis=1)
    recall = _recalls(counts)
    received = np.array([pattern["errors_received"][name] for name in names])
    total_errors = pattern["total_errors"]
    best, worst = pattern["best_recall"], pattern["worst_recall"]
    happy, fear, neutral = names.index("Happy"), names.index("Fear"), names.index("Neutral")
    top_receiver = int(received.argmax())
    wrong = pattern["most_common_wrong_prediction"]
    drifting = [name for c, name in enumerate(names)
                if c != neutral and wrong[name] and wrong[name]["predicted"] == "Neutral"]
    claims = {
        "happy_best": {
            "holds": bool(support[happy] > 0 and recall[happy] == best["recall"]),
            "sole": bool(best["tied"] == ["Happy"]),
            "happy_recall": _or_none(recall[happy]),
            "best_class": best["class"], "best_recall": best["recall"],
        },
        "fear_worst": {
            "holds": bool(support[fear] > 0 and recall[fear] == worst["recall"]),
            "sole": bool(worst["tied"] == ["Fear"]),
            "fear_recall": _or_none(recall[fear]),
            "worst_class": worst["class"], "worst_recall": worst["recall"],
        },
        "drift_towards_neutral": {
            # Neutral receives more wrong predictions than any other class.
            "holds": bool(total_errors > 0 and received[neutral] == received.max()),
            "neutral_received": int(received[neutral]),
            "neutral_share_of_errors": float(received[neutral] / total_errors) if total_errors else None,
            "most_received_class": names[top_receiver], "most_received": int(received[top_receiver]),
            "classes_whose_top_error_is_neutral": drifting,
        },
    }
    return {"study_claims": claims, "statement": _statement(claims, names, recall, received, pattern)}


def _statement(claims: dict, names: list[str], recall, received, pattern: dict) -> str:
    """"matches the study: ..." or "differs from the study: ...", with the numbers and any ties."""
    best, worst, total_errors = pattern["best_recall"], pattern["worst_recall"], pattern["total_errors"]
    happy, fear, neutral = names.index("Happy"), names.index("Fear"), names.index("Neutral")
    top_receiver = int(received.argmax())
    differences = []
    if not claims["happy_best"]["holds"]:
        differences.append(f"the best-recognised class is {best['class']} (recall {best['recall']:.3f}), not "
                           f"Happy ({_recall_text(recall[happy])})")
    if not claims["fear_worst"]["holds"]:
        differences.append(f"the worst-recognised class is {worst['class']} (recall {worst['recall']:.3f}), not "
                           f"Fear ({_recall_text(recall[fear])})")
    if not claims["drift_towards_neutral"]["holds"]:
        differences.append(f"errors go most often to {names[top_receiver]} ({int(received[top_receiver])} of "
                           f"{total_errors}), not Neutral ({int(received[neutral])})")
    ties = [f"{claim} only as a tie with {', '.join(c for c in group if c != who)}"
            for claim, who, group in (("Happy best", "Happy", best["tied"]), ("Fear worst", "Fear", worst["tied"]))
            if who in group and len(group) > 1]
    tie_note = f" ({'; '.join(ties)})" if ties else ""
    if differences:
        return "differs from the study: " + "; ".join(differences) + tie_note + "."
    return (f"matches the study: Happy best (recall {recall[happy]:.3f}), Fear worst (recall {recall[fear]:.3f}), "
            f"Neutral receives the most errors ({int(received[neutral])} of {total_errors}){tie_note}.")


def _recalls(counts):
    """Each class's recall, NaN for a class without images."""
    support = counts.sum(axis=1)
    return np.divide(np.diag(counts), support, out=np.full(len(support), np.nan), where=support > 0)


def _or_none(value) -> float | None:
    return None if np.isnan(value) else float(value)


def _recall_text(value) -> str:
    return "no images" if np.isnan(value) else f"recall {value:.3f}"
