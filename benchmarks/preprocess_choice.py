"""What ``--preprocess auto`` costs and whether it finds the right scaling, on the shipped CNN.

    python benchmarks/preprocess_choice.py [--model PATH] [--h5 ../shared/data/fer2013.h5] [--sample 400]

The search feeds a class-stratified sample (``--sample`` images, 400 by default) to the model once per
candidate scaling (unit, symmetric, raw, standardize): 4 x sample forward passes. That is set against one
``xai-fer evaluate`` of the same data (one forward pass per image). Data: FER2013 PrivateTest from ``--h5``
(3,589 images) where it exists, else the bundled 196-image sample.

The shipped CNN scales its own input (a Rescaling layer), so ``auto`` takes it raw without searching; here the
search is forced on it, and run on three twins of it that expect [0, 1], [-1, 1] and 0-255 pixels (a
Rescaling in front that undoes the scaling), so the right answer is known for each. Each is searched twice:
with labels (accuracy) and without (the guess from the model's confidence).
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
MODEL = REPO / "xai_fer" / "reference" / "cnn.keras"
# Layers put in front of the shipped CNN (which takes 0-255 pixels) so that the twin expects another scaling.
TWINS = {"raw": None, "unit": (255.0, 0.0), "symmetric": (127.5, 127.5)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL, help="a model that takes 0-255 pixels")
    parser.add_argument("--h5", type=Path, default=FER2013_H5, help="FER2013 .h5 (default: ../shared)")
    parser.add_argument("--sample", type=int, default=400, help="images the search looks at")
    args = parser.parse_args()

    from xai_fer.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from xai_fer.data import load_dataset
    from xai_fer.evaluation import evaluate_model
    from xai_fer.models.introspect import inspect_model
    from xai_fer.models.loading import load_model
    from xai_fer.models.scaling_choice import CANDIDATES, choose_scaling
    from xai_fer.reference import sample_path

    source = args.h5 if args.h5.exists() else sample_path()
    data = load_dataset(source, split="PrivateTest" if source == args.h5 else None)
    base = load_model(args.model)
    print(f"data: {source} ({len(data)} images{', PrivateTest' if source == args.h5 else ''}); "
          f"model {args.model}; sample {min(args.sample, len(data))}")

    def twin(scale_offset):
        if scale_offset is None:
            return base
        inputs = keras.Input(base.inputs[0].shape[1:])
        return keras.Model(inputs, base(keras.layers.Rescaling(*scale_offset)(inputs)))

    rows = []
    for expects, scale_offset in TWINS.items():
        model = twin(scale_offset)
        info = inspect_model(model)
        choose_scaling(model, info, data.subset(slice(0, 8)), always_search=True)  # warm-up: graphs traced once
        results = {}
        for labelled in (True, False):
            shown = data if labelled else data.subset(slice(None))
            if not labelled:
                shown.labels = None
            started = time.perf_counter()
            choice, _ = choose_scaling(model, info, shown, sample_size=args.sample, always_search=True)
            results[labelled] = (choice, time.perf_counter() - started)
        started = time.perf_counter()
        report = evaluate_model(model, data, preprocess=expects)
        evaluate_seconds = time.perf_counter() - started
        rows.append((expects, results, report["accuracy"], evaluate_seconds))

    sample = min(args.sample, len(data))
    print(f"\nforward passes: search {len(CANDIDATES)} x {sample} = {len(CANDIDATES) * sample} images; "
          f"one evaluate {len(data)} images ({len(CANDIDATES) * sample / len(data):.2f}x)\n")
    header = ("model expects", "labelled: chosen", "accuracy per candidate", "s", "unlabelled: chosen",
              "mutual information per candidate", "s", "evaluate s", "accuracy")
    table = [header]
    for expects, results, accuracy, evaluate_seconds in rows:
        (labelled, labelled_s), (guess, guess_s) = results[True], results[False]
        table.append((expects, _verdict(labelled, expects), labelled.scores_text(), f"{labelled_s:.1f}",
                      _verdict(guess, expects), guess.scores_text(), f"{guess_s:.1f}", f"{evaluate_seconds:.1f}",
                      f"{accuracy:.2%}"))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * width for width in widths))
    wrong = [row[0] for row in rows if row[1][True][0].scaling != row[0]]
    print(f"\nlabelled search right for {len(rows) - len(wrong)} of {len(rows)} models" +
          (f" (wrong: {', '.join(wrong)})" if wrong else ""))
    return 1 if wrong else 0


def _verdict(choice, expected: str) -> str:
    mark = "right" if choice.scaling == expected else "WRONG"
    return f"{choice.scaling} ({mark}{', close call' if choice.close_call else ''})"


if __name__ == "__main__":
    sys.exit(main())
