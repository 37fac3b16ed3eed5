"""Accuracy of a model on labelled images: overall, per class, with an optional mirrored test-time view."""

from __future__ import annotations

import numpy as np

# The model seen from the data's images (input adapted in size, channels and scaling, chosen as for explaining):
# how ``evaluate`` scores a model and distillation asks its teachers.
from .models.seen import seen_from_data


def predict_probabilities(model, x: np.ndarray, batch_size: int = 256, tta_flip: bool = False) -> np.ndarray:
    """Class probabilities for model-ready inputs ``x``; with ``tta_flip`` averaged with the mirrored images."""
    probs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if tta_flip:
        probs = (probs + np.asarray(model.predict(x[:, :, ::-1], batch_size=batch_size, verbose=0))) / 2
    return probs


def accuracy_report(probs: np.ndarray, labels: np.ndarray, class_names) -> dict:
    predicted = probs.argmax(axis=1)
    per_class = {}
    for index, name in enumerate(class_names):
        rows = labels == index
        per_class[name] = {"n": int(rows.sum()),
                           "accuracy": float((predicted[rows] == index).mean()) if rows.any() else None}
    return {"n": int(len(labels)), "accuracy": float((predicted == labels).mean()), "per_class": per_class}


def evaluate_arrays(model, x, labels, class_names, tta_flip: bool = False) -> dict:
    return accuracy_report(predict_probabilities(model, x, tta_flip=tta_flip), np.asarray(labels), class_names)


def mirror_averaged_probabilities(seen) -> np.ndarray:
    """Each image's class probabilities averaged with its mirror image's (the reference models' test-time view),
    for a :class:`~xai_fer.models.seen.SeenModel`. The mirrored view is taken in data space, in front of the input
    adapter: resizing, scaling and channel changes are all left-right symmetric, so it equals mirroring the
    model's own inputs."""
    return predict_probabilities(seen.data_model(), seen.images(), batch_size=seen.batch_size, tta_flip=True)


def evaluate_model(model, dataset, preprocess: str = "auto", tta_flip: bool = False) -> dict:
    """Accuracy of any loaded model on a labelled Dataset, with input adaptation as for explaining; with
    ``tta_flip`` each image's probabilities are averaged with its mirror image's (the reference models' test-time
    view, so their ``metrics.json`` numbers can be checked from the command line)."""
    from .errors import UserError
    from .models.seen import check_finite_outputs

    if dataset.labels is None:
        raise UserError(f"{dataset.source} has no labels",
                        "evaluate needs labels: pass --labels FILE (.npy or one-column .csv, one per image)")
    seen = seen_from_data(model, dataset, preprocess)
    seen.check_labels_fit(dataset.source)
    probabilities = mirror_averaged_probabilities(seen) if tta_flip else seen.probabilities
    check_finite_outputs(probabilities, dataset)  # the mirrored view's too
    report = accuracy_report(probabilities, dataset.labels, seen.class_names)
    report["preprocessing"] = {"pixel_scaling": dataset.pixel_scaling, **seen.adapter.describe()}
    report["scaling_choice"] = seen.scaling_choice.describe()
    report["tta_flip"] = tta_flip
    return report
