"""How fast the report's image browser opens on a whole split: every image of FER2013's PrivateTest (3,589) with
three methods' maps (saliency, grad-cam, smoothgrad at 16 samples) of the shipped CNN (``xai_fer.reference``),
in Debian's Chromium driven by Playwright (``scripts/check_pages.py``'s driver).

1. The maps are computed once (batched, compiled: ``Attribution.compute``) and kept in a chunked HDF5 file in
   ``--work`` (reused by later runs), as a whole-split run stores them.
2. ``write_browser`` writes the browser from that file, reading images and maps in slices of one sheet: its
   time, the process's peak resident memory, and the size of what it wrote are printed.
3. The page is opened ``--repeat`` times in a fresh tab: the time until the browser is ready
   (``performance.mark("xai-browser-ready")``, from the start of navigation), and the wall time from
   ``goto`` until every thumbnail in the first screen has its sprite sheet loaded and decoded. Then the time
   from a click on the largest confusion cell off the diagonal until its images are listed.

    .venv/bin/python benchmarks/browser_load.py [--work DIR] [--repeat 5] [--screenshot PNG]

Target (issue 18): opens in under 2 s. Data: ``../shared/data/fer2013.h5``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fer2013.h5"
METHODS = {"saliency": {}, "grad-cam": {}, "smoothgrad": {"samples": 16}}

# Resolves once every thumbnail tile inside the first screen has its sheet loaded and decoded.
_FIRST_SCREEN = """
async () => {
  const tiles = Array.from(document.querySelectorAll(".xai-browser [data-sheet]"))
    .filter(tile => tile.getBoundingClientRect().top < window.innerHeight);
  const waitBackground = tile => new Promise(done => {
    const check = () => tile.style.backgroundImage ? done() : requestAnimationFrame(check);
    check();
  });
  await Promise.all(tiles.map(waitBackground));
  const urls = new Set(tiles.map(tile => new URL(tile.dataset.sheet, document.querySelector(
    "script[src$='browser.js']").src).href));
  await Promise.all(Array.from(urls, src => { const img = new Image(); img.src = src; return img.decode(); }));
  return tiles.length;
}
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_driver():
    """scripts/check_pages.py, the project's Chromium driver."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import check_pages

    return check_pages


def compute_maps(store: Path, context) -> None:
    """Every method's maps of every image (targets: the predicted class) into ``store``, once."""
    import h5py
    import numpy as np

    from xai_fer import registry
    from xai_fer.options import parse_options

    rows = np.arange(len(context.dataset))
    targets = context.predictions.astype(np.int64)
    with h5py.File(store, "a") as maps:
        for name, options in METHODS.items():
            if name in maps:
                continue
            explainer = registry.lookup("explainers", name)
            started = time.perf_counter()
            values = explainer.compute(context, rows, targets, parse_options(explainer.Options, options, name)).values
            maps.create_dataset(name, data=values, chunks=(256, *values.shape[1:]))
            maps[name].attrs["signed"] = bool(explainer.signed)
            print(f"{name}: maps of {len(rows):,} images in {time.perf_counter() - started:.1f} s")


def write(folder: Path, store: Path, context) -> dict:
    import h5py

    from xai_fer.explain.browser import _image_name, write_browser

    dataset = context.dataset
    started = time.perf_counter()
    with h5py.File(store, "r") as maps:
        files = write_browser(
            folder, images=dataset.images, names=[_image_name(dataset, row) for row in range(len(dataset))],
            class_names=list(context.class_names), true=dataset.labels, predicted=context.predictions,
            confidence=context.probabilities.max(axis=1), maps={name: maps[name] for name in METHODS},
            signed={name: bool(maps[name].attrs["signed"]) for name in METHODS})
    seconds = time.perf_counter() - started
    size = sum((folder / name).stat().st_size for name in files)
    return {"write_seconds": round(seconds, 2), "files": len(files), "megabytes": round(size / 1e6, 1),
            "peak_rss_mb_after_write": round(peak_rss_mb())}


def open_page(driver, page: Path, repeat: int, screenshot: Path | None) -> dict:
    ready, first_screen, clicks = [], [], []
    with driver.chromium() as browser:
        for attempt in range(repeat):
            tab = browser.new_page(viewport=driver.VIEWPORT)
            started = time.perf_counter()
            tab.goto(page.as_uri(), wait_until="commit")
            tab.wait_for_selector("#xai-browser[data-ready]")
            tiles = tab.evaluate(_FIRST_SCREEN)
            first_screen.append(time.perf_counter() - started)
            ready.append(tab.evaluate("performance.getEntriesByName('xai-browser-ready')[0].startTime") / 1000)
            cell = tab.evaluate("""() => {
              let best = null, most = -1;
              for (const b of document.querySelectorAll('td button[data-t][data-p]')) {
                const n = +b.textContent;
                if (b.dataset.t !== b.dataset.p && n > most) { most = n; best = b; }
              }
              return [best.dataset.t, best.dataset.p, most];
            }""")
            started = time.perf_counter()
            tab.click(f'td button[data-t="{cell[0]}"][data-p="{cell[1]}"]')
            tab.wait_for_function("n => document.querySelector('.xb-status').textContent.startsWith(n + ' of')",
                                  arg=cell[2])
            clicks.append(time.perf_counter() - started)
            if screenshot is not None and attempt == repeat - 1:
                tab.evaluate(_FIRST_SCREEN)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                tab.screenshot(path=str(screenshot))
            tab.close()
    print(f"first screen: {tiles} thumbnails; largest off-diagonal cell: true {cell[0]} -> predicted {cell[1]} "
          f"({cell[2]} images)")
    return {"ready_seconds": _spread(ready), "first_screen_seconds": _spread(first_screen),
            "cell_click_seconds": _spread(clicks), "repeat": repeat}


def _spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3),
            "first": round(values[0], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/xai-fer-browser-bench"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"needs the real FER2013 at {DATA}")
    driver = load_driver()
    if driver.missing():
        sys.exit(driver.missing())
    from xai_fer import reference
    from xai_fer.data import load_dataset
    from xai_fer.explain.pipeline import build_context
    from xai_fer.models.loading import load_model

    args.work.mkdir(parents=True, exist_ok=True)
    context = build_context(load_model(reference.model_path("cnn")), load_dataset(DATA, split="PrivateTest"))
    print(f"PrivateTest: {len(context.dataset):,} images; scaling {context.scaling_choice.summary()}")
    compute_maps(args.work / "maps.h5", context)
    result = {"images": len(context.dataset), "methods": list(METHODS),
              **write(args.work / "browser", args.work / "maps.h5", context)}
    result.update(open_page(driver, args.work / "browser" / "index.html", args.repeat, args.screenshot))
    result["chromium"] = driver.find_chromium()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
