"""What ``xai-fer train`` tells the user around a run: notes on settings it ignores or on earlier models that
saw this run's validation images, and the lines that sum up a finished run. Each function prints to the console
it is given (the CLI's)."""

from __future__ import annotations

from pathlib import Path

from .averaging import describe as averaging_line
from .averaging import weights_from
from .config import AFTER_TRAINING, TrainConfig
from .initialisation import holdout_leak
from .recalibration import describe as recalibration_line


def note_holdout_leaks(err_console, init_from: Path | None, teachers: list[Path], config: TrainConfig) -> None:
    """A note for each earlier model (``--init-from``, a teacher) that trained on this run's validation images."""
    for flag, earlier in [*([("--init-from", init_from)] if init_from is not None else []),
                          *(("teacher", teacher) for teacher in teachers)]:
        leak = holdout_leak(earlier, config)
        if leak is None:
            continue
        cause, consequence = leak
        if flag == "teacher":  # the teacher, not this run, trained on the images this run validates on
            err_console.print(f"Note: teacher {earlier}: {cause}, so its targets carry what it "
                              "learnt from this run's validation images and flatter that validation; use the "
                              "teacher's --seed and validation settings, or --set validation=publictest.",
                              highlight=False)
        else:
            err_console.print(f"Note: {flag} {earlier}: {cause}, so {consequence}; give this run the earlier "
                              "run's --seed and validation settings, or --set validation=publictest.",
                              highlight=False)


def after_training_settings(err_console, config: TrainConfig, overrides: dict[str, str], explicit: dict,
                            option: list[str], preset: str, continuing: bool) -> dict | None:
    """The settings a resumed or finished run changes (None for a new run): it keeps those it started with,
    except those that act after training; a note names the other settings given, which are ignored."""
    if not continuing:
        return None
    after_training = {key: getattr(config, key) for key in overrides if key in AFTER_TRAINING}
    ignored = set(overrides) - set(after_training)
    if ignored or option or explicit or preset != "study":
        given = [*(f"--{key.replace('_', '-')}" for key in explicit), *(f"--set {key}" for key in sorted(ignored)),
                 *(["--option"] if option else []), *([f"--preset {preset}"] if preset != "study" else [])]
        err_console.print(f"Note: a resumed run keeps the settings it started with; ignored now: {', '.join(given)} "
                          f"(only --set {', --set '.join(AFTER_TRAINING)} may change, as they act after the last "
                          "epoch).", highlight=False)
    return after_training


def print_trained(console, result) -> None:
    """What a finished run saved and scored, as ``xai-fer train`` prints it."""
    metrics = result.metrics
    console.print(f"saved {result.model_path} ({metrics['parameters']:,} parameters, weights of the "
                  f"{weights_from(metrics)}, {result.epochs_run} of {metrics['planned_epochs']} epochs planned)")
    if metrics.get("changed_after_training"):
        console.print("changed after training: " + ", ".join(
            f"{key}={value}" for key, value in metrics["changed_after_training"].items()))
    recalibration = metrics.get("batch_norm_recalibration")
    if recalibration and recalibration["layers"]:
        console.print(recalibration_line(recalibration))
    distillation = metrics.get("distillation")
    if distillation:
        console.print(f"distilled from {len(distillation['teachers'])} teacher(s) at weight "
                      f"{distillation['teacher_weight']}: together they label "
                      f"{distillation['train_accuracy_together']:.2%} of the training images right", highlight=False)
    averaging = metrics.get("weight_averaging")
    if averaging:
        console.print(averaging_line(averaging))
    for split, block in metrics["splits"].items():
        shown = ", ".join(f"{name} {b['accuracy']:.2%}" for name, b in block.items())
        console.print(f"{split}: {shown}")
    if not metrics["splits"] and metrics.get("splits_note"):
        console.print(f"no test metrics: {metrics['splits_note']}", highlight=False)
