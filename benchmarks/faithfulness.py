"""Faithfulness of every attribution method, side by side with a random map and a Sobel edge map, on two models.

128 PrivateTest images of the real FER2013 (``../shared/data/fer2013.h5``; the first 128 rows of the split), the
shipped CNN and a second model of another architecture: a mini-Xception (residual adds around separable convs,
1x1 conv shortcuts, softmax as its own layer, input in [-1, 1]). No such model ships, so the script trains one
on FER2013's Training split, on the CPU, for at most ``--train-minutes`` (default 9), and caches it under
``runs/faithfulness-bench/`` (git-ignored): later runs reuse it.

Every attribution method installed (except faithfulness itself) explains the 128 images of each model in one
``run_explainers`` call, followed by ``faithfulness``; the script prints each map's deletion and insertion AUC,
the ratios to the random map and the comparison with the Sobel map, against issue 16's target: the best method
reaches deletion AUC <= 0.75x the random map's and insertion AUC >= 1.3x, and beats the Sobel map on both.

    .venv/bin/python benchmarks/faithfulness.py [--images 128] [--methods saliency,grad-cam] [--prepare]

Cost: RISE (1000 masks per image) dominates. Measured on the 2-core machine: the shipped CNN took 40 min under a
load of about 8 (RISE 19 min, faithfulness 12 min), the mini-Xception 3.3 min with the machine to itself.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
FER2013_H5 = ROOT.parent / "shared" / "data" / "fer2013.h5"
CACHE = ROOT / "runs" / "faithfulness-bench"
MINI_XCEPTION = CACHE / "mini_xception.keras"
DELETION_TARGET, INSERTION_TARGET = 0.75, 1.3  # issue 16: best deletion <= 0.75x random, insertion >= 1.3x


def mini_xception(input_shape=(48, 48, 1), classes=7):
    """Arriaga et al.'s mini-Xception (2017), ~58k parameters: two plain convs, then four modules of two
    separable convs and a max-pool added to a downsampling 1x1 conv shortcut; a conv to the classes, global
    average, softmax as its own layer. Takes pixels in [-1, 1]."""
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for k in (1, 2):
        x = layers.Conv2D(8, 3, use_bias=False, name=f"conv{k}")(x)
        x = layers.Activation("relu")(layers.BatchNormalization(name=f"bn{k}")(x))
    for block, filters in enumerate((16, 32, 64, 128), start=1):
        # The original's shortcut is a strided 1x1 conv; training one (even compiled, in model.fit) corrupted
        # memory in TensorFlow 2.21's oneDNN CPU kernels here twice. Average-pool then a 1x1 conv (ResNet-D's
        # shortcut) does the same job.
        shortcut = layers.AveragePooling2D(2, padding="same", name=f"shortcut{block}_pool")(x)
        shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"shortcut{block}")(shortcut)
        shortcut = layers.BatchNormalization(name=f"shortcut{block}_bn")(shortcut)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_sep1")(x)
        x = layers.Activation("relu")(layers.BatchNormalization(name=f"block{block}_bn1")(x))
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_sep2")(x)
        x = layers.BatchNormalization(name=f"block{block}_bn2")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.Add(name=f"block{block}_add")([x, shortcut])
    x = layers.Conv2D(classes, 3, padding="same", name="class_conv")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Activation("softmax", name="softmax")(x), name="mini_xception")


def train_mini_xception(minutes: float, max_epochs: int = 30):
    """Train on FER2013 Training (pixels to [-1, 1], a random half of the images flipped left-right each epoch),
    Adam, until another epoch would end past ``minutes`` of wall time, or ``max_epochs``; keep the epoch with the
    best PublicTest accuracy. Saved to :data:`MINI_XCEPTION`. Plain arrays, no tf.data pipeline: one attempt
    with a tf.data map of Keras' RandomFlip died of a general protection fault in TensorFlow on this CPU."""
    import keras
    import numpy as np

    from xai_fer.data import load_dataset

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    train = load_dataset(FER2013_H5, split="Training")
    public = load_dataset(FER2013_H5, split="PublicTest")
    x = train.images.astype(np.float32) / 127.5 - 1.0
    validation = (public.images.astype(np.float32) / 127.5 - 1.0, public.labels)
    model = mini_xception()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    CACHE.mkdir(parents=True, exist_ok=True)
    started, best, epochs = time.monotonic(), -1.0, 0
    while epochs < max_epochs:
        epoch_start = time.monotonic()
        flip = rng.random(len(x)) < 0.5
        shown = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
        history = model.fit(shown, train.labels, batch_size=64, epochs=1, shuffle=True, validation_data=validation,
                            verbose=2)
        epochs += 1
        accuracy = history.history["val_accuracy"][-1]
        if accuracy > best:
            best = accuracy
            partial = MINI_XCEPTION.with_suffix(".partial.keras")  # a run killed while saving leaves no half file
            model.save(partial)
            os.replace(partial, MINI_XCEPTION)
        now = time.monotonic()
        if now + (now - epoch_start) > started + 60 * minutes:
            break
    print(f"mini-Xception: {epochs} epochs in {(time.monotonic() - started) / 60:.1f} min, best PublicTest accuracy "
          f"{best:.4f} -> {MINI_XCEPTION}")


def second_model(minutes: float):
    import keras

    if not MINI_XCEPTION.exists():
        train_mini_xception(minutes)
    return keras.models.load_model(MINI_XCEPTION)


def private_test(count: int):
    from xai_fer.data import Dataset, load_dataset

    data = load_dataset(FER2013_H5, split="PrivateTest")
    return Dataset(images=data.images[:count], labels=data.labels[:count], class_names=data.class_names,
                   source=f"{FER2013_H5} PrivateTest[:{count}]", split="PrivateTest")


def attribution_methods(chosen: list[str] | None) -> list[str]:
    from xai_fer import registry
    from xai_fer.explain.attribution import Attribution

    found = [name for name, obj in registry.explainers().items() if isinstance(obj, Attribution)]
    return [name for name in found if name in chosen] if chosen else found


def evaluate(label: str, model, dataset, methods: list[str], preprocess: str, randomization_images: int) -> dict:
    from xai_fer.explain.pipeline import run_explainers

    rows = ",".join(str(i) for i in range(len(dataset)))
    options = {name: {"indices": rows, "image_figures": "false", "grid_rows": "4"} for name in methods}
    options["faithfulness"] = {"randomization_images": str(randomization_images), "figure_images": "2"}
    started = time.perf_counter()
    artifacts, planned, context, timings = run_explainers(model, dataset, [*methods, "faithfulness"], options,
                                                          preprocess=preprocess)
    seconds = time.perf_counter() - started
    summary = artifacts["faithfulness"].summary
    for artifact in artifacts.values():
        artifact.close()
    print(f"\n== {label}: {len(dataset)} images, {', '.join(methods)}; {seconds:.0f} s "
          f"({', '.join(f'{k} {v:.0f}s' for k, v in timings.items())})")
    report(summary)
    return summary


def report(summary: dict) -> None:
    rows = {row["map"]: row for row in summary["ranking"]}
    details = summary["details"]
    random, sobel = rows["random map"], rows["Sobel edge map"]
    print(f"{'map':<22} {'deletion AUC (se)':>17} {'x random':>8} {'insertion AUC (se)':>18} {'x random':>8} "
          f"{'rho all':>7}  paired verdicts: vs random (del/ins); vs Sobel (del/ins)")
    for row in summary["ranking"]:
        rho = row.get("randomization_rho")
        d = details[row["map"]]
        verdicts = (f"{d['deletion_vs_random_verdict']}/{d['insertion_vs_random_verdict']}; "
                    f"{d['deletion_vs_sobel_verdict']}/{d['insertion_vs_sobel_verdict']}")
        print(f"{row['map']:<22} {row['deletion_auc']:>9.3f} ({row['deletion_se']:.3f}) "
              f"{row['deletion_ratio']:>8.2f} {row['insertion_auc']:>10.3f} ({row['insertion_se']:.3f}) "
              f"{row['insertion_ratio']:>8.2f} {'-' if rho is None else f'{rho:.2f}':>7}  {verdicts}")
    methods = [row for row in summary["ranking"] if row["kind"] == "method"]
    meets = [row["map"] for row in methods if row["deletion_ratio"] <= DELETION_TARGET
             and row["insertion_ratio"] >= INSERTION_TARGET and row["deletion_auc"] < sobel["deletion_auc"]
             and row["insertion_auc"] > sobel["insertion_auc"]]
    best = methods[0]  # ranked by insertion - deletion
    best_deletion = min(methods, key=lambda row: row["deletion_auc"])
    best_insertion = max(methods, key=lambda row: row["insertion_auc"])
    print(f"random map: deletion {random['deletion_auc']:.3f}, insertion {random['insertion_auc']:.3f}; "
          f"Sobel: deletion {sobel['deletion_auc']:.3f}, insertion {sobel['insertion_auc']:.3f}")
    for label, row in (("best overall (insertion - deletion)", best), ("best deletion", best_deletion),
                       ("best insertion", best_insertion)):
        print(f"{label}: {row['map']}: deletion {row['deletion_auc']:.3f} = {row['deletion_ratio']:.2f}x random "
              f"(target <= {DELETION_TARGET}), {row['deletion_auc'] / sobel['deletion_auc']:.2f}x Sobel (target < 1); "
              f"insertion {row['insertion_auc']:.3f} = {row['insertion_ratio']:.2f}x random (target >= "
              f"{INSERTION_TARGET}), {row['insertion_auc'] / sobel['insertion_auc']:.2f}x Sobel (target > 1)")
    print("issue 16's target met (one method, all four criteria, on the means) by: "
          + (", ".join(meets) if meets else "NONE"))
    for entry in summary["sentences"]:
        print(f"- {entry['sentence']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--methods", default="", help="comma-separated attribution methods (default: all installed)")
    parser.add_argument("--randomization-images", type=int, default=8)
    parser.add_argument("--train-minutes", type=float, default=9.0)
    parser.add_argument("--prepare", action="store_true", help="only make sure the second model exists")
    args = parser.parse_args()
    if not FER2013_H5.exists():
        raise SystemExit(f"needs the real FER2013 at {FER2013_H5}")
    second = second_model(args.train_minutes)
    if args.prepare:
        return

    import keras

    from xai_fer import reference

    methods = attribution_methods([m.strip() for m in args.methods.split(",") if m.strip()] or None)
    dataset = private_test(args.images)
    cnn = keras.models.load_model(reference.model_path("cnn"))
    evaluate("shipped CNN", cnn, dataset, methods, "auto", args.randomization_images)
    evaluate("mini-Xception (trained here)", second, dataset, methods, "symmetric", args.randomization_images)


if __name__ == "__main__":
    main()
