"""Loading the full Kaggle fer2013.csv: pandas vs xai-fer's ``fer-csv`` loader.

Two pandas baselines, both ``pandas.read_csv`` and then one (48, 48) array per pixel string: the usual
``np.array(pixels.split(), dtype=np.uint8)``, and ``np.fromstring(pixels, sep=" ")``, the fastest pandas-based
way we found. pandas is not a dependency of xai-fer; install it to run this.

    python benchmarks/csv_load.py [CSV] [--repeat 3]

CSV is written from ../shared/data/fer2013.h5 (35,887 rows, ``emotion,pixels,Usage``) when it does not exist;
without CSV it goes to a temporary folder.
"""

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from xai_fer.data import SPLITS, load_dataset

FER2013_H5 = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013.h5"


def write_fer2013_csv(path: Path, source: Path = FER2013_H5) -> None:
    with h5py.File(source, "r") as handle:
        images, labels, usage = (handle[key][()] for key in ("images", "labels", "usage"))
    text = [str(value) for value in range(256)]
    with open(path, "w", newline="") as out:  # newline="": "\n" line ends, as in Kaggle's file
        out.write("emotion,pixels,Usage\n")
        for image, label, split in zip(images.reshape(len(images), -1), labels, usage, strict=True):
            out.write(f"{label},{' '.join([text[v] for v in image.tolist()])},{SPLITS[split]}\n")


def pandas_split(path: Path) -> np.ndarray:
    import pandas as pd

    frame = pd.read_csv(path)
    return np.stack([np.array(pixels.split(), dtype=np.uint8) for pixels in frame["pixels"]]).reshape(-1, 48, 48)


def pandas_fromstring(path: Path) -> np.ndarray:
    import pandas as pd

    frame = pd.read_csv(path)
    return np.stack([np.fromstring(pixels, dtype=np.uint8, sep=" ") for pixels in frame["pixels"]]).reshape(-1, 48, 48)


LOADERS = {
    "pandas.read_csv + str.split per row": pandas_split,
    "pandas.read_csv + np.fromstring per row": pandas_fromstring,
}


def xai_fer(path: Path) -> np.ndarray:
    return load_dataset(path).images[..., 0]


def timings(path: Path, repeat: int) -> dict[str, tuple[float, float, np.ndarray]]:
    """Best wall-clock and best CPU seconds of each loader, and its images. The loaders take turns, so a busy
    spell on the machine hits them alike; CPU time is the less disturbed of the two by other processes."""
    loaders = {"xai-fer fer-csv loader": xai_fer, **LOADERS}
    best = {name: (float("inf"), float("inf"), None) for name in loaders}
    for _ in range(repeat):
        for name, load in loaders.items():
            wall, cpu = time.perf_counter(), time.process_time()
            images = load(path)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(wall, best[name][0]), min(cpu, best[name][1]), images)
            print(f"  {name}: {wall:.2f} s", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", nargs="?", type=Path, help="fer2013.csv to read (written first if missing)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per loader; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.csv or Path(scratch) / "fer2013.csv"
        if not path.exists():
            print(f"writing {path} from {FER2013_H5} ...", flush=True)
            write_fer2013_csv(path)
        print(f"{path}: {path.stat().st_size / 1e6:.0f} MB; best of {args.repeat} runs each", flush=True)
        (name, (wall, cpu, images)), *baselines = timings(path, args.repeat).items()
        print(f"{'':42s} {'wall':>7s} {'CPU':>7s}")
        print(f"{name:42s} {wall:6.2f}s {cpu:6.2f}s  ({len(images)} images)")
        for name, (their_wall, their_cpu, expected) in baselines:
            if not np.array_equal(images, expected):
                raise SystemExit(f"{name} and xai-fer disagree on the pixels")
            print(f"{name:42s} {their_wall:6.2f}s {their_cpu:6.2f}s  xai-fer is {their_wall / wall:.1f}x faster "
                  f"(CPU time: {their_cpu / cpu:.1f}x)")


if __name__ == "__main__":
    main()
