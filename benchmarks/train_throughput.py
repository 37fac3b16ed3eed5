"""Training throughput of ``xai-fer train``'s machinery against a plain ``model.fit``, side by side in one process.

Both sides train the same architecture behind the same augmentation layers (built by
``xai_fer.training.building.build_training_model``), with the same optimizer, loss, batch size, seed and the
same arrays (the training images and the validation images that the preset's protocol picks), for the same
number of epochs:

- **xai-fer**: ``xai_fer.training.trainer.train``, i.e. the training model with its callbacks: per-epoch
  atomic checkpoints (training model with optimizer state, best model, ``state.json``), the rich progress
  display and the history bookkeeping;
- **plain**: ``model.fit(x, y, validation_data=..., shuffle=True, verbose=0)`` with no callbacks.

What is timed: from the start of the first epoch to the end of the last one (Keras' ``on_train_begin`` to
``on_train_end``, recorded by a callback that does nothing else), so per-epoch validation is included on both
sides, and the one-off graph tracing of the first epoch too. The first-epoch and later-epoch rates are
printed separately, as is the rate per second of the process's CPU time (steadier than wall time on a shared
machine), and so is what ``train`` does once after its last epoch (reloading the best model, saving
``model.keras``, evaluating the validation and test splits, writing the curves), which is not in the ratio.

    python benchmarks/train_throughput.py [--images 3000] [--epochs 2] [--model cnn] [--preset improved]
                                          [--rounds 1] [--h5 ../shared/data/fer2013.h5]

Uses the first ``--images`` Training images of the real FER2013 (and 500 PublicTest and PrivateTest images)
when the .h5 exists, otherwise random images. Rounds alternate the order (plain first, then xai-fer first).
Target: xai-fer's images/s at least 0.9 of plain's.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("XAI_FER_DISABLE_PLUGINS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

FER2013_H5 = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013.h5"


def load_data(h5: Path, n_train: int, n_test: int):
    from xai_fer.data import FER2013_CLASSES, SPLITS, Dataset

    counts = (n_train, n_test, n_test)
    if h5.exists():
        import h5py

        with h5py.File(h5, "r") as handle:
            usage = handle["usage"][()]
            rows = np.sort(np.concatenate([np.flatnonzero(usage == code)[:n] for code, n in enumerate(counts)]))
            images, labels, usage = handle["images"][rows], handle["labels"][rows], usage[rows]
        source = f"{h5.name} (first {n_train} Training, {n_test} PublicTest, {n_test} PrivateTest images)"
    else:
        rng = np.random.default_rng(0)
        usage = np.repeat(np.arange(len(SPLITS)), counts)
        images = rng.integers(0, 256, size=(len(usage), 48, 48), dtype=np.uint8)
        labels, source = rng.integers(0, len(FER2013_CLASSES), size=len(usage)), "random images (no FER2013 .h5)"
    dataset = Dataset(images=images, labels=labels.astype(np.int64), class_names=FER2013_CLASSES, source=source,
                      usage=usage.astype(np.int64))
    return dataset


def make_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Records when training starts, every epoch ends and training ends; nothing per batch."""

        def on_train_begin(self, logs=None):
            self.begin, self.epoch_ends, self.cpu_begin = time.perf_counter(), [], time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_ends.append(time.perf_counter())

        def on_train_end(self, logs=None):
            self.end, self.cpu_end = time.perf_counter(), time.process_time()

    return EpochTimer()


def rates(timer, n_train: int) -> dict:
    first = timer.epoch_ends[0] - timer.begin
    later = timer.end - timer.epoch_ends[0]
    epochs = len(timer.epoch_ends)
    return {"seconds": timer.end - timer.begin, "images_per_s": n_train * epochs / (timer.end - timer.begin),
            "images_per_cpu_s": n_train * epochs / (timer.cpu_end - timer.cpu_begin),
            "first_epoch_images_per_s": n_train / first,
            "later_images_per_s": n_train * (epochs - 1) / later if epochs > 1 else float("nan")}


def run_plain(model_name, dataset, config, options) -> dict:
    import keras

    from xai_fer import registry
    from xai_fer.training.building import build_training_model
    from xai_fer.training.data import split_for_training

    keras.utils.set_random_seed(config.seed)
    x_train, y_train, x_val, y_val = split_for_training(dataset, config)
    steps = int(np.ceil(len(x_train) / config.batch_size))
    model, _ = build_training_model(registry.lookup("models", model_name), x_train.shape[1:], dataset.num_classes,
                                    options, config, steps)
    timer = make_timer()
    model.fit(x_train, keras.utils.to_categorical(y_train, dataset.num_classes),
              validation_data=(x_val, keras.utils.to_categorical(y_val, dataset.num_classes)),
              batch_size=config.batch_size, epochs=config.epochs, shuffle=True, callbacks=[timer], verbose=0)
    return rates(timer, len(x_train))


def run_xai_fer(model_name, dataset, config, options, out: Path) -> dict:
    from xai_fer.training.data import split_for_training
    from xai_fer.training.trainer import train

    n_train = len(split_for_training(dataset, config)[0])
    timer = make_timer()
    train(model_name, dataset, out, config, dataclasses.asdict(options), progress=True, callbacks=[timer])
    result = rates(timer, n_train)
    result["after_training_s"] = time.perf_counter() - timer.end
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000, help="Training images (default 3000)")
    parser.add_argument("--test-images", type=int, default=500, help="PublicTest and PrivateTest images each")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--preset", default="improved", help="study or improved (default: the reference recipe)")
    parser.add_argument("--rounds", type=int, default=1, help="plain/xai-fer pairs; the order alternates")
    parser.add_argument("--h5", type=Path, default=FER2013_H5)
    args = parser.parse_args()

    from xai_fer.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from xai_fer import registry
    from xai_fer.training.config import PRESETS

    config = dataclasses.replace(PRESETS[args.preset], epochs=args.epochs)
    plugin = registry.lookup("models", args.model)
    options = plugin.Options()
    dataset = load_data(args.h5, args.images, args.test_images)
    print(f"{args.model}, preset {args.preset} (batch {config.batch_size}, {config.epochs} epochs, validation "
          f"{config.validation}) on {dataset.source}; keras {keras.__version__} ({keras.backend.backend()}), "
          f"{os.cpu_count()} CPUs")

    results = {"plain": [], "xai-fer": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = ["plain", "xai-fer"] if round_ % 2 == 0 else ["xai-fer", "plain"]
            for side in order:
                if side == "plain":
                    results[side].append(run_plain(args.model, dataset, config, options))
                else:
                    out = Path(tmp) / f"run{round_}"
                    results[side].append(run_xai_fer(args.model, dataset, config, options, out))
                r = results[side][-1]
                print(f"  round {round_ + 1} {side:8s} {r['images_per_s']:8.1f} images/s over {r['seconds']:.1f} s "
                      f"(first epoch {r['first_epoch_images_per_s']:.1f}, later {r['later_images_per_s']:.1f}; "
                      f"{r['images_per_cpu_s']:.1f} images per CPU-second)", flush=True)

    def mean(side, key):
        return float(np.mean([r[key] for r in results[side]]))

    print()
    columns = {"images/s": "images_per_s", "first epoch": "first_epoch_images_per_s",
               "later epochs": "later_images_per_s", "per CPU-s": "images_per_cpu_s"}
    print(f"{'':10s}" + "".join(f"{title:>14s}" for title in columns))
    for side in results:
        print(f"{side:10s}" + "".join(f"{mean(side, key):14.1f}" for key in columns.values()))
    ratios = {title: mean("xai-fer", key) / mean("plain", key) for title, key in columns.items()}
    print(f"{'ratio':10s}" + "".join(f"{ratio:14.3f}" for ratio in ratios.values()))
    print(f"xai-fer/plain images/s: {ratios['images/s']:.3f} (target >= 0.9: "
          f"{'OK' if ratios['images/s'] >= 0.9 else 'BELOW TARGET'}); per CPU-second, which a busy machine "
          f"disturbs less: {ratios['per CPU-s']:.3f}")
    print(f"not in the ratio: xai-fer's one-off end of training (best model, model.keras, metrics with "
          f"{'flip ' if config.tta_flip else ''}evaluation of validation and test splits, curves): "
          f"{mean('xai-fer', 'after_training_s'):.1f} s")


if __name__ == "__main__":
    main()
