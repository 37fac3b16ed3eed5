"""Confusion matrix and per-class metrics, and the pattern of errors (best and worst recall, where errors go).

For FER2013's class names, the ``study_pattern`` block of the summary also says claim by claim whether the data
agrees with the FER2013 study's reading (Happy best, Fear worst, drift towards Neutral), with the numbers: those
FER2013-specific claims live in :mod:`xai_fer.reference.fer2013_study`.
"""

from __future__ import annotations

from dataclasses import dataclass

from xai_fer.display import figure_name
from xai_fer.errors import UserError
from xai_fer.explain.artifact import Artifact
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option


@dataclass
class ConfusionOptions:
    top_k: int = option(10, "how many most-confused (true -> predicted) pairs to list")

    def __post_init__(self):
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")


def _nan_to_none(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def per_class_metrics(counts: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                      class_names) -> list[dict]:
    """Precision, recall (= per-class accuracy), F1 and support per class, from scikit-learn.

    Undefined values are None: precision of a class never predicted, recall of a class with no images.
    """
    from sklearn.metrics import precision_recall_fscore_support

    k = len(class_names)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=list(range(k)), zero_division=np.nan)
    rows = []
    for c, name in enumerate(class_names):
        rows.append({
            "class": name,
            "index": c,
            "support": int(support[c]),
            "predicted_count": int(counts[:, c].sum()),
            "correct": int(counts[c, c]),
            "precision": _nan_to_none(precision[c]),
            "recall": _nan_to_none(recall[c]),
            "f1": _nan_to_none(f1[c]),
            "accuracy": _nan_to_none(recall[c]),  # per-class accuracy is the recall of that class
        })
    return rows


def confused_pairs(counts: np.ndarray, class_names, top_k: int) -> dict:
    """Off-diagonal (true -> predicted) cells with at least one image, ranked by count and by share of the
    true class (ties broken by the other key, then by class order)."""
    support = counts.sum(axis=1)
    off_diagonal = counts.copy()
    np.fill_diagonal(off_diagonal, 0)
    pairs = [{"true": class_names[t], "predicted": class_names[p], "count": int(counts[t, p]),
              "share_of_true": float(counts[t, p] / support[t])}
             for t, p in zip(*np.nonzero(off_diagonal), strict=True)]  # row-major: the order of the classes
    by_count = sorted(pairs, key=lambda r: (-r["count"], -r["share_of_true"]))
    by_share = sorted(pairs, key=lambda r: (-r["share_of_true"], -r["count"]))
    return {"by_count": by_count[:top_k], "by_share": by_share[:top_k]}


def study_pattern(counts: np.ndarray, class_names) -> dict:
    """Best/worst recall and each class's most common wrong prediction, computed from ``counts``; for
    FER2013's class names also the FER2013 study's three claims (:mod:`xai_fer.reference.fer2013_study`), each
    true/false with the numbers."""
    from xai_fer.reference import fer2013_study

    pattern = error_pattern(counts, class_names)
    if fer2013_study.applies(class_names, counts):
        pattern.update(fer2013_study.check_claims(counts, class_names, pattern))
    else:
        pattern.update(study_claims=None, statement=fer2013_study.NOT_CHECKED)
    return pattern


def error_pattern(counts: np.ndarray, class_names) -> dict:
    """Best and worst recall (with ties), each class's most common wrong prediction, and the errors each class
    receives, from a confusion matrix ``counts`` (true x predicted)."""
    names = list(class_names)
    support = counts.sum(axis=1)
    present = np.flatnonzero(support > 0)
    recall = np.full(len(names), np.nan)
    recall[present] = np.diag(counts)[present] / support[present]

    def ranked(pick):
        value = pick(recall[present])
        tied = [names[c] for c in present if recall[c] == value]
        return {"class": tied[0], "recall": float(value), "tied": tied}

    best, worst = ranked(np.max), ranked(np.min)
    errors = counts.astype(np.int64).copy()
    np.fill_diagonal(errors, 0)
    most_common_wrong = {}
    for c, name in enumerate(names):
        if errors[c].sum() == 0:
            most_common_wrong[name] = None
            continue
        p = int(errors[c].argmax())
        most_common_wrong[name] = {"predicted": names[p], "count": int(errors[c, p]),
                                   "share_of_errors": float(errors[c, p] / errors[c].sum()),
                                   "share_of_true": float(errors[c, p] / support[c])}
    received = errors.sum(axis=0)
    return {
        "best_recall": best,
        "worst_recall": worst,
        "most_common_wrong_prediction": most_common_wrong,
        "errors_received": {name: int(received[c]) for c, name in enumerate(names)},
        "total_errors": int(errors.sum()),
    }


# Classes drawn in a figure at most: a model with 1,000 classes would otherwise get a 750-inch confusion figure
# (gigabytes of pixels). The arrays and summary keep every class; the figures say which ones they show.
MAX_DRAWN_CLASSES = 40


def drawn_classes(counts: np.ndarray) -> np.ndarray | None:
    """The classes a figure shows when there are too many for one: those with the most images, true or
    predicted (ties: the lower index), in class order; None when every class fits."""
    k = len(counts)
    if k <= MAX_DRAWN_CLASSES:
        return None
    involved = counts.sum(axis=0) + counts.sum(axis=1)
    return np.sort(np.argsort(-involved, kind="stable")[:MAX_DRAWN_CLASSES])


def _drawn_note(shown: np.ndarray | None, k: int) -> str:
    return "" if shown is None else (f"\n{len(shown)} of {k} classes: those with the most images; every class "
                                     "is in arrays.npz")


def _heatmap(matrix: np.ndarray, class_names, title: str, fmt: str, vmax: float):
    from matplotlib.figure import Figure

    k = len(class_names)
    size = max(4.5, 0.75 * k + 2)
    figure = Figure(figsize=(size + 1, size), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=vmax if vmax > 0 else 1)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    names = [figure_name(name) for name in class_names]  # full names are in the JSON and HTML
    ax.set_xticks(range(k), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 30:
        for t in range(k):
            for p in range(k):
                dark = vmax > 0 and matrix[t, p] > 0.6 * vmax
                ax.text(p, t, format(matrix[t, p], fmt), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    return figure


def _metrics_figure(rows: list[dict], note: str = ""):
    from matplotlib.figure import Figure

    k = len(rows)
    figure = Figure(figsize=(max(6, 1.1 * k), 3.6), layout="constrained")
    ax = figure.subplots()
    width = 0.27
    x = np.arange(k)
    for offset, key in zip((-width, 0, width), ("precision", "recall", "f1"), strict=True):
        values = [r[key] if r[key] is not None else 0.0 for r in rows]
        ax.bar(x + offset, values, width, label=key)
    ax.set_xticks(x, labels=[figure_name(r["class"]) for r in rows], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title(f"per-class precision, recall (= per-class accuracy) and F1{note}")
    ax.legend(fontsize=8, ncols=3)
    return figure


class Confusion:
    name = "confusion"
    report_group = "accuracy"
    description = "confusion matrix (counts, row-normalized), per-class precision/recall/F1, confused pairs"
    Options = ConfusionOptions

    def check(self, context, options: ConfusionOptions) -> None:
        """Labels present and within the model's classes, before any explainer runs."""
        self._labels(context)

    @staticmethod
    def _labels(context) -> np.ndarray:
        labels = context.labels
        if labels is None:
            raise UserError(f"confusion needs labels, and {context.dataset.source} has none",
                            "use a labelled source or split (e.g. --split PrivateTest)")
        labels = np.asarray(labels).astype(np.int64)
        context.check_labels_fit("confusion")
        if len(labels) == 0:
            raise UserError("confusion: the data has no images")
        return labels

    def explain(self, context, options: ConfusionOptions) -> Artifact:
        from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

        labels = self._labels(context)
        k = context.info.num_classes
        predictions = np.asarray(context.predictions).astype(np.int64)  # shared, computed once per run
        names = list(context.class_names)

        counts = confusion_matrix(labels, predictions, labels=list(range(k))).astype(np.int64)
        support = counts.sum(axis=1, keepdims=True)
        normalized = np.divide(counts, support, out=np.zeros(counts.shape, np.float64), where=support > 0)

        rows = per_class_metrics(counts, labels, predictions, names)
        summary = {
            "num_images": int(len(labels)),
            "class_names": names,
            "accuracy": float(accuracy_score(labels, predictions)),
            # Over the classes the data holds: a class with no image has no F1 (its row says None), not 0.
            "macro_f1": float(f1_score(labels, predictions, labels=sorted(set(labels.tolist())), average="macro",
                                       zero_division=0)),
            "weighted_f1": float(f1_score(labels, predictions, labels=list(range(k)), average="weighted",
                                          zero_division=0)),
            "per_class": rows,
            "most_confused": confused_pairs(counts, names, options.top_k),
            "confusion_counts": counts.tolist(),
            "normalization": "rows: share of each true class (rows without images are all zero)",
            "study_pattern": study_pattern(counts, names),
        }
        shown = drawn_classes(counts)
        drawn = np.arange(k) if shown is None else shown
        drawn_names, note = [names[c] for c in drawn], _drawn_note(shown, k)
        if shown is not None:
            summary["figures_show_classes"] = drawn_names
            # 1,000 classes are a million counts: arrays.npz holds them, the JSON (and the page) says where.
            summary["confusion_counts"] = None
            summary["confusion_counts_note"] = f"{k} classes: the counts are in arrays.npz (counts)"
        cells = np.ix_(drawn, drawn)
        figures = {
            "confusion_counts": _heatmap(counts[cells], drawn_names, f"confusion matrix (counts){note}", "d",
                                         float(counts.max())),
            "confusion_normalized": _heatmap(normalized[cells], drawn_names,
                                             f"confusion matrix (share of true class){note}", ".2f", 1.0),
            "per_class_metrics": _metrics_figure([rows[c] for c in drawn], note),
        }
        return Artifact(figures=figures, arrays={"counts": counts, "normalized": normalized.astype(np.float32)},
                        summary=summary)


@hookimpl
def register_explainers(register):
    register(Confusion())
