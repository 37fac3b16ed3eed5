"""Accuracy of the shipped models on FER2013's test splits, next to the study's numbers and the goals.

    python benchmarks/accuracy.py [--cnn PATH] [--dnn PATH] [--h5 ../shared/data/fer2013.h5] [--per-class]

Evaluates each model on PrivateTest (the study's test set) and PublicTest (the validation set of the
``improved`` preset, so not a clean test for models trained with it), plainly and with the test-time flip
(predictions averaged with those of the mirrored images), on the 0-255 pixels the models were trained on.
``--cnn``/``--dnn`` default to the bundled ``xai_fer/reference/{cnn,dnn}.keras``; a model that does not exist
is skipped with a message (e.g. before the reference models are built: pass ``--cnn runs/cnn/model.keras``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
FER2013_H5 = REPO.parent / "shared" / "data" / "fer2013.h5"
REFERENCE = REPO / "xai_fer" / "reference"
SPLITS = ("PrivateTest", "PublicTest")

from xai_fer.reference import GOALS  # noqa: E402  (after the TF log level is set)
from xai_fer.reference import STUDY_ACCURACY as STUDY  # noqa: E402
from xai_fer.reference import percent as _pct  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cnn", type=Path, default=REFERENCE / "cnn.keras", help="CNN model (.keras)")
    parser.add_argument("--dnn", type=Path, default=REFERENCE / "dnn.keras", help="DNN model (.keras)")
    parser.add_argument("--h5", type=Path, default=FER2013_H5, help="FER2013 .h5 with usage (default: ../shared)")
    parser.add_argument("--per-class", action="store_true", help="also print per-class PrivateTest accuracy")
    args = parser.parse_args()

    models = {}
    for name, path in (("cnn", args.cnn), ("dnn", args.dnn)):
        if path.exists():
            models[name] = path
        else:
            print(f"skipping {name}: {path} does not exist (pass --{name} PATH)")
    if not args.h5.exists():
        print(f"FER2013 not found at {args.h5} (pass --h5 PATH)")
        return 1
    if not models:
        print("no model to evaluate")
        return 1

    from xai_fer.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import numpy as np

    from xai_fer.data import load_dataset
    from xai_fer.evaluation import evaluate_arrays
    from xai_fer.models.loading import load_model

    data = {split: load_dataset(args.h5, split=split) for split in SPLITS}
    rows, per_class = [], {}
    for name, path in models.items():
        model = load_model(path)
        started = time.perf_counter()
        result = {}
        for split, dataset in data.items():
            x = dataset.images.astype(np.float32)
            result[split] = {view: evaluate_arrays(model, x, dataset.labels, dataset.class_names, tta_flip=flip)
                             for view, flip in (("plain", False), ("flip", True))}
        per_class[name] = result["PrivateTest"]
        rows.append((name, path, model.count_params(), result, time.perf_counter() - started))

    n = {split: len(dataset) for split, dataset in data.items()}
    print(f"\nFER2013 from {args.h5}: PrivateTest n={n['PrivateTest']}, PublicTest n={n['PublicTest']}\n")
    header = ("model", "parameters", "PrivateTest", "+ flip", "PublicTest", "+ flip", "study (private)",
              "goal (private)", "goal met")
    table = [header]
    for name, _path, params, result, _seconds in rows:
        private, public = result["PrivateTest"], result["PublicTest"]
        best = max(private["plain"]["accuracy"], private["flip"]["accuracy"])
        met = "yes" if private["plain"]["accuracy"] >= GOALS[name] else ("with flip" if best >= GOALS[name] else "no")
        table.append((name, f"{params:,}", _pct(private["plain"]["accuracy"]), _pct(private["flip"]["accuracy"]),
                      _pct(public["plain"]["accuracy"]), _pct(public["flip"]["accuracy"]), _pct(STUDY[name]),
                      f">= {_pct(GOALS[name])}", met))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        cells = [cell.rjust(w) if j else cell.ljust(w) for j, (cell, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("\nPublicTest is the validation split of the `improved` preset (it picks the best epoch): not a clean test.")
    for name, path, _params, _result, seconds in rows:
        print(f"{name}: {path} ({seconds:.1f} s to evaluate)")

    if args.per_class:
        for name, views in per_class.items():
            print(f"\n{name}, PrivateTest per class (plain / flip):")
            for cls, row in views["plain"]["per_class"].items():
                flip = views["flip"]["per_class"][cls]["accuracy"]
                print(f"  {cls:9s} n={row['n']:4d}  {_pct(row['accuracy']):>7s} / {_pct(flip):>7s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
