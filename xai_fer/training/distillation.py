"""Knowledge distillation (``--set teachers=A.keras,B.keras``): train on targets that mix each image's one-hot
label with the averaged predictions of saved models, so that one model of the usual size can learn what an
ensemble of earlier runs knows (FER2013's labels are noisy: a teacher's soft targets say which images are
ambiguous).

The teachers predict before the first epoch (and again when a run resumes), on the clean training images and
their mirror images (the reference models' test-time view), averaged. The augmented copies the model then sees
keep their image's target: shift, rotation and zoom are small, and averaging over the mirror image makes a
flipped copy's target the same.
Any saved model with one output per class can teach: its input is adapted as for explaining (size, channels,
scaling). Validation keeps the true labels, so validation losses stay comparable with runs trained without
teachers. With ``teacher_weight`` above 0.5 the training "accuracy" is agreement with the mixed targets' top
class, which may differ from the label."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError


def check_teachers(paths) -> list[Path]:
    """The teachers' model files, refused early (before any data is read) when one can't be used."""
    from ..models.loading import check_model_file

    checked = []
    for path in paths:
        try:
            checked.append(check_model_file(Path(path)))
        except UserError as exc:
            raise UserError(f"teacher {exc.message}", "check the teachers' paths (--set teachers=..., or those "
                                                      "the run started with)") from None
    return checked


def resolved(paths) -> tuple[str, ...]:
    """Teacher paths made absolute when a run starts, so that ``--resume`` from another directory finds them."""
    return tuple(str(Path(path).expanduser().resolve()) for path in paths)


def teacher_record(paths) -> list[dict]:
    """Path and sha256 of each teacher: kept with the run, so a resumed run can refuse teachers that changed."""
    from ..fingerprints import file_sha256

    return [{"path": str(path), "sha256": file_sha256(path)} for path in check_teachers(paths)]


def check_same_teachers(recorded: list[dict] | None, current: list[dict], out_dir: Path) -> None:
    """A resumed run must learn from the teachers it started with: other targets would mix two runs in one."""
    if recorded is None:
        return
    if [t["sha256"] for t in recorded] != [t["sha256"] for t in current]:
        raise UserError(f"{out_dir} was started with other teachers ({', '.join(t['path'] for t in recorded)}): "
                        "a teacher's file changed since", "resume it with the teachers' files as they were")


def distillation_targets(paths, x_train: np.ndarray, y_train: np.ndarray, class_names, weight: float,
                         source: str = "the training images") -> tuple[np.ndarray, dict]:
    """(targets, summary): ``(1 - weight) * one_hot(y_train) + weight * teachers' mean probabilities``, and what
    the teachers scored on the training images (their accuracy alone and together)."""
    from ..data import Dataset
    from ..evaluation import mirror_averaged_probabilities, seen_from_data
    from ..models.loading import load_model

    num_classes = len(class_names)
    dataset = Dataset(images=x_train, labels=y_train, class_names=tuple(class_names), source=source)
    total, accuracies = np.zeros((len(x_train), num_classes), np.float64), []
    for path in check_teachers(paths):
        context = seen_from_data(load_model(path), dataset)
        if context.info.num_classes != num_classes:
            raise UserError(f"teacher {path} has {context.info.num_classes} classes but the data has "
                            f"{num_classes}", "teach with models trained on the same classes")
        probabilities = mirror_averaged_probabilities(context)
        accuracies.append(float((probabilities.argmax(axis=1) == y_train).mean()))
        total += probabilities
    mean = total / len(accuracies)
    one_hot = np.eye(num_classes, dtype=np.float64)[y_train]
    targets = ((1 - weight) * one_hot + weight * mean).astype(np.float32)
    summary = {"teacher_weight": weight, "train_accuracy_each": accuracies,
               "train_accuracy_together": float((mean.argmax(axis=1) == y_train).mean())}
    return targets, summary
