"""Build the bundled defaults of ``xai-fer explain`` from finished training runs and the real FER2013.

    python scripts/build_reference.py --cnn runs/cnn --dnn runs/dnn --h5 ../shared/data/fer2013.h5 \\
        [--teachers runs/a runs/b]          # the runs whose models taught a distilled one
        [--cnn-candidates runs/c runs/d]    # the runs --cnn was chosen from, listed side by side

Copies each run's model, metrics, history and curves into ``xai_fer/reference/`` (names prefixed with the
model), draws a stratified PrivateTest sample (``--per-class`` images of every class) into ``sample.npz``, and
writes ``xai_fer/reference/README.md`` with the measured numbers and the commands that produced them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from xai_fer.reference import GOALS, selection
from xai_fer.reference import STUDY_ACCURACY as STUDY
from xai_fer.reference import percent as _pct
from xai_fer.training import averaging as weight_averaging
from xai_fer.training.initialisation import ancestors, chain_history, history_beside, join_histories
from xai_fer.training.recalibration import describe
from xai_fer.training.report import write_curves

REFERENCE = Path(__file__).resolve().parents[1] / "xai_fer" / "reference"


def build_sample(h5_path: Path, per_class: int, seed: int) -> dict:
    with h5py.File(h5_path, "r") as handle:
        usage = handle["usage"][()]
        labels = handle["labels"][()]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in handle.attrs["class_names"]]
        rows = np.flatnonzero(usage == 2)  # PrivateTest
        rng = np.random.default_rng(seed)
        chosen = np.sort(np.concatenate([rng.choice(rows[labels[rows] == c], per_class, replace=False)
                                         for c in range(len(names))]))
        images = handle["images"][chosen]
        csv_rows = handle["csv_row"][chosen] if "csv_row" in handle else chosen
    np.savez_compressed(REFERENCE / "sample.npz", images=images, labels=labels[chosen].astype(np.int64),
                        class_names=np.array(names), csv_row=csv_rows,
                        usage=np.full(len(chosen), 2, dtype=np.int64))  # so `--split PrivateTest` accepts it
    return {"n": int(len(chosen)), "per_class": per_class, "seed": seed, "split": "PrivateTest"}


def copy_run(name: str, run: Path, data_name: str) -> dict:
    shutil.copyfile(run / "model.keras", REFERENCE / f"{name}.keras")
    for source, target in (("metrics.json", "metrics.json"), ("history.csv", "history.csv")):
        shutil.copyfile(run / source, REFERENCE / f"{name}_{target}")
    metrics = json.loads((run / "metrics.json").read_text())
    start = metrics.get("initialisation")
    earlier = {} if chain_history(start) else histories_beside(start)
    if earlier:
        # The run started (--init-from) before xai-fer recorded the starting run's history: read it from that
        # run's folder and redraw, so the curves show every epoch the model was trained for.
        history = json.loads((run / "history.json").read_text())
        write_curves(REFERENCE / f"{name}_training_curves.png", history, f"{metrics['model']} on {data_name}",
                     earlier=earlier)
    else:
        shutil.copyfile(run / "training_curves.png", REFERENCE / f"{name}_training_curves.png")
    return metrics


def histories_beside(record: dict | None) -> dict:
    """The joined history of every earlier run of a chain, read beside each starting model (paths as recorded,
    relative to where training ran); empty unless every one is found."""
    histories = [history_beside(Path(earlier["path"])) for earlier in ancestors(record)]
    return join_histories(histories) if histories and all(histories) else {}


def _where(environment: dict) -> str:
    """Where a run's epochs ran, e.g. 'Keras 3.15.1 on jax, NVIDIA H100 80GB HBM3'."""
    if not environment:
        return "environment not recorded"
    device = ", ".join(environment.get("accelerators") or []) or f"{environment.get('cpus')} CPU cores"
    return f"Keras {environment.get('keras')} on {environment.get('backend')}, {device}"


def command_lines(name: str, m: dict, indent: str = "") -> list[str]:
    """The commands that made a run's model, in order: every run of its ``--init-from`` chain, then its own."""
    lines = []
    earlier = ancestors(m.get("initialisation"))  # runs before this one (`--init-from`): the whole chain
    steps = [*(a.get("command") or "command not recorded" for a in earlier), m["command"]]
    for step, command in enumerate(steps, start=1):
        where = f" ({_where(m.get('environment', {}))})" if step == len(steps) else ""
        start = earlier[step - 2] if step > 1 else None
        origin = (f"from the model of step {step - 1} (`{start['path']}`, sha256 {start['sha256'][:12]}…): "
                  if start else "")
        prefix = f"- {name}:" if len(steps) == 1 else (f"- {name}, 1." if step == 1 else f"  {step}.")
        lines.append(f"{indent}{prefix} {origin}`{command}`{where}")
    for resumed in m.get("resume_commands") or []:
        lines.append(f"{indent}  then continued with `{resumed}`")
    if m.get("finish_command"):
        stopped = m["epochs"] < m.get("planned_epochs", m["epochs"])
        lines.append(f"{indent}  then {'stopped early (time ran out) and ' if stopped else ''}written and evaluated "
                     f"from its checkpoints with `{m['finish_command']}` "
                     f"({_where(m.get('finish_environment') or {})})")
    return lines


def teacher_lines(name: str, m: dict, teacher_runs: list[Path]) -> list[str]:
    """Which models taught a distilled run, found among ``teacher_runs`` by the sha256 its metrics recorded, each
    with the commands that made it: the paths it recorded are only where the files were on the training machine."""
    distillation = m.get("distillation")
    if not distillation:
        return []
    by_sha = {hashlib.sha256((run / "model.keras").read_bytes()).hexdigest(): run for run in teacher_runs}
    lines = ["", f"{name} was distilled (`teachers`, teacher weight {distillation['teacher_weight']}) from "
             f"{len(distillation['teachers'])} models, which together label "
             f"{_pct(distillation['train_accuracy_together'])} of the training images right (the paths in its "
             f"command are where the files lay when it ran; each teacher is named here by its sha256):", ""]
    for teacher, accuracy in zip(distillation["teachers"], distillation["train_accuracy_each"], strict=True):
        run = by_sha.get(teacher["sha256"])
        if run is None:
            raise SystemExit(f"{name}'s teacher {teacher['path']} (sha256 {teacher['sha256'][:12]}…) is none of "
                             f"the --teachers runs' model.keras: pass the run that trained it")
        teacher_metrics = json.loads((run / "metrics.json").read_text())
        lines.append(f"- `{run.name}` (`{teacher['path']}` when {name} was trained, sha256 {teacher['sha256'][:12]}…, "
                     f"{_pct(accuracy)} of the training images right), made by:")
        lines += command_lines(run.name, teacher_metrics, indent="  ")
    return lines


def shipped_validation_loss(m: dict) -> float | None:
    """The validation loss of the model a run wrote, from the records of the steps after its last epoch."""
    averaged, recalibrated = m.get("weight_averaging"), m.get("batch_norm_recalibration")
    if averaged:
        return averaged["validation_loss_average" if averaged["kept"] else "validation_loss_best"]
    if recalibrated:
        return recalibrated["validation_loss_after" if recalibrated["kept"] else "validation_loss_before"]
    return None


def choose(chosen: Path, candidates: list[Path]) -> dict | None:
    """The runs the CNN was chosen from, with their numbers (``selection.RULE``): refuses a ``chosen`` run that is
    not the rule's choice. None without candidates."""
    if not candidates:
        return None
    unique = {run.resolve(): run for run in reversed([chosen, *candidates])}  # the first spelling of each
    runs = {run: json.loads((run / "metrics.json").read_text()) for run in reversed(unique.values())}

    def accuracy(m: dict, split: str, view: str):
        return m["splits"].get(split, {}).get(view, {}).get("accuracy")

    for run, m in runs.items():
        if accuracy(m, "PublicTest", "tta_flip") is None:
            raise SystemExit(f"{run} has no PublicTest accuracy with the mirrored view, which the choice compares: "
                             f"finish it with --set tta_flip=true on data with a PublicTest split")
    best = max(runs, key=lambda run: accuracy(runs[run], "PublicTest", "tta_flip"))
    if best.resolve() != chosen.resolve():
        raise SystemExit(f"--cnn {chosen} is not the candidate with the best validation accuracy ({best} is)")
    return {"rule": selection.RULE,
            "runs": [{"name": run.name, "chosen": run == best, "validation_loss": shipped_validation_loss(m),
                      "accuracy": {f"{split} {view}": accuracy(m, split, view) for split, view in selection.COLUMNS}}
                     for run, m in runs.items()]}


def write_readme(metrics: dict, sample: dict, taught: list[str], chosen_among: dict | None) -> None:
    lines = ["# Reference models", "",
             "Generated by `scripts/build_reference.py`; every number below is read from the `*_metrics.json`",
             "files written by `xai-fer train`.", "",
             "| model | parameters | epochs run / planned (weights of)† | PrivateTest | PrivateTest + flip "
             "| PublicTest* | study | goal |",
             "|---|---|---|---|---|---|---|---|"]
    for name, m in metrics.items():
        private = m["splits"].get("PrivateTest", {})
        public = m["splits"].get("PublicTest", {})
        lines.append(
            f"| {name} | {m['parameters']:,} | {m['epochs']} / {m.get('planned_epochs', m['epochs'])} "
            f"({weight_averaging.weights_from(m)}) | "
            f"{_pct(private.get('plain', {}).get('accuracy'))} | {_pct(private.get('tta_flip', {}).get('accuracy'))} | "
            f"{_pct(public.get('plain', {}).get('accuracy'))} | {_pct(STUDY[name])} | {_pct(GOALS[name])} |")
    lines += ["", "*PublicTest served as the validation set (best-loss epoch and any weight average chosen on it), "
              "so it is not a clean test.",
              "", "†Of the last run; a run started with `--init-from` adds to the epochs of the run it started from "
              "(see the commands).",
              "", "Commands:", ""]
    for name, m in metrics.items():
        lines += command_lines(name, m)
    lines += taught
    lines += ["", *selection.markdown(chosen_among)] if chosen_among else []
    recalibrated = {name: m["batch_norm_recalibration"] for name, m in metrics.items()
                    if m.get("batch_norm_recalibration")}
    if recalibrated:
        lines += ["", "Batch-norm recalibration (`recalibrate_batch_norm`, after the last epoch, on the best "
                  "model, from un-augmented training images):", ""]
        lines += [f"- {name}: {describe(r)}" for name, r in recalibrated.items()]
    averaged = {name: m["weight_averaging"] for name, m in metrics.items() if m.get("weight_averaging")}
    if averaged:
        lines += ["", "Stochastic weight averaging (`average_last_epochs`, after the last epoch, against the best "
                  "epoch's model as shipped without it):", ""]
        lines += [f"- {name}: {weight_averaging.describe(r)}" for name, r in averaged.items()]
    lines += ["", f"`sample.npz`: {sample['n']} PrivateTest images, {sample['per_class']} per class "
              f"(seed {sample['seed']}), from `fer2013.h5`.", ""]
    (REFERENCE / "README.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cnn", type=Path, required=True)
    parser.add_argument("--dnn", type=Path, required=True)
    parser.add_argument("--h5", type=Path, required=True)
    parser.add_argument("--teachers", type=Path, nargs="*", default=[],
                        help="the runs whose models taught a distilled --cnn or --dnn (their commands are listed)")
    parser.add_argument("--cnn-candidates", type=Path, nargs="*", default=[],
                        help="the other runs --cnn was chosen from (the best validation accuracy must be --cnn's)")
    parser.add_argument("--per-class", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = {"cnn": args.cnn, "dnn": args.dnn}
    # Everything that can refuse runs before the first file of xai_fer/reference/ is replaced.
    chosen_among = choose(args.cnn, args.cnn_candidates)  # refuses a --cnn that is not the best one
    taught = [line for name, run in runs.items()
              for line in teacher_lines(name, json.loads((run / "metrics.json").read_text()), args.teachers)]
    metrics = {name: copy_run(name, run, args.h5.name) for name, run in runs.items()}
    sample = build_sample(args.h5, args.per_class, args.seed)
    recorded = REFERENCE / selection.SELECTION.name
    recorded.unlink(missing_ok=True)  # an earlier CNN's selection must not describe this one
    if chosen_among:
        recorded.write_text(json.dumps(chosen_among, indent=1) + "\n")
    write_readme(metrics, sample, taught, chosen_among)
    print((REFERENCE / "README.md").read_text())


if __name__ == "__main__":
    main()
