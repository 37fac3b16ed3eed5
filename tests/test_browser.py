"""The report's image browser (issue 18, section 3) without a browser: what ``write_browser`` writes (sprite
sheets, the data file, its assets), that it reads images and maps in bounded slices, that hostile names reach
the page only as data, and the report around it: sections in reading order (issue 17), ``--open``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from PIL import Image

from xai_fer import display
from xai_fer.explain import browser
from xai_fer.explain.attribution import display_maps
from xai_fer.explain.browser import PER_SHEET, SHEET_COLUMNS, data_script, write_browser
from xai_fer.explain.html import render_index
from xai_fer.explain.plan import PlannedExplainer, report_order

ASSETS = Path(browser.__file__).parent / "browser_assets"
HOSTILE = ["</script><script>window.pwned=1</script>", "<img src=x onerror=window.pwned=1>", "a\u2028b\u202eevil",
           "\x1b]0;title\x07", "caf\udce9", '"quoted" & \'single\'', "$\\frac{x}$"]


def read_data(folder: Path) -> dict:
    text = (folder / "data.js").read_text(encoding="ascii")
    prefix, suffix = "window.xaiFerBrowser = ", ";\n"
    assert text.startswith(prefix) and text.endswith(suffix)
    return json.loads(text[len(prefix):-len(suffix)])


class CountingReads:
    """An array-like that records every slice read from it (as an h5py Dataset is read)."""

    def __init__(self, array):
        self.array, self.reads = array, []

    @property
    def shape(self):
        return self.array.shape

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        part = self.array[index]
        self.reads.append(len(part) if np.ndim(part) == self.array.ndim else 1)
        return part


def _columns(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {"true": rng.integers(0, 3, count), "predicted": rng.integers(0, 3, count),
            "confidence": rng.random(count).astype(np.float32)}


def test_sheets_hold_every_thumbnail_and_are_read_in_bounded_slices(tmp_path):
    count = PER_SHEET + 44
    rng = np.random.default_rng(1)
    with h5py.File(tmp_path / "maps.h5", "w") as store:
        store["images"] = rng.integers(0, 256, (count, 48, 48, 1), dtype=np.uint8)
        store.create_dataset("saliency", data=rng.random((count, 48, 48), dtype=np.float32), chunks=(64, 48, 48))
        images, maps = CountingReads(store["images"]), CountingReads(store["saliency"])
        files = write_browser(tmp_path / "b", images=images, names=[f"{i}.png" for i in range(count)],
                              class_names=["a", "b", "c"], maps={"saliency": maps}, signed={"saliency": False},
                              **_columns(count))
        expected_images = store["images"][:]
        expected_maps = store["saliency"][:]
    assert max(images.reads) <= PER_SHEET and max(maps.reads) <= PER_SHEET  # never the whole array at once
    folder = tmp_path / "b"
    assert sorted(files) == sorted(p.name for p in folder.iterdir())
    assert {"originals-000.png", "originals-001.png", "map0-000.png", "map0-001.png", "data.js", "browser.js",
            "browser.css", "index.html"} == set(files)
    with Image.open(folder / "originals-000.png") as first, Image.open(folder / "originals-001.png") as last:
        assert first.size == (SHEET_COLUMNS * 48, SHEET_COLUMNS * 48) and first.mode == "L"  # gray stays gray
        assert last.size == (SHEET_COLUMNS * 48, 3 * 48)  # 44 thumbnails: three rows of 16
        tile = np.asarray(last)[48:96, 5 * 48:6 * 48]  # thumbnail 256 + 21
        assert np.array_equal(tile, expected_images[PER_SHEET + 21, ..., 0])
    with Image.open(folder / "map0-000.png") as sheet:
        levels = np.asarray(sheet)[48:96, 48:96]  # thumbnail 17: its map in 256 levels, indices into jet colours
        palette = np.asarray(sheet.getpalette()[:768]).reshape(256, 3)
    expected = np.round(display_maps(expected_maps[17:18], False)[0] * 255)
    assert sheet.mode == "P" and np.abs(levels - expected).max() <= 1 and levels.max() == 255
    assert palette[0].tolist() == [0, 0, 128] and palette[-1].tolist() == [128, 0, 0]  # jet: dark blue to dark red
    data = read_data(folder)
    assert data["count"] == count and data["tile"] == [48, 48] and data["perSheet"] == PER_SHEET
    assert data["originals"] == ["originals-000.png", "originals-001.png"]
    assert data["methods"] == [{"name": "saliency", "signed": False, "sheets": ["map0-000.png", "map0-001.png"],
                                "rows": None}]
    assert len(data["names"]) == len(data["predicted"]) == len(data["confidence"]) == len(data["true"]) == count


def test_maps_of_selected_rows_large_and_colour_images_and_unlabelled_data(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (20, 100, 80, 3), dtype=np.uint8)
    maps = {"grad-cam": rng.random((3, 100, 80), dtype=np.float32), "x": -rng.random((2, 100, 80), dtype=np.float32)}
    columns = _columns(20)
    write_browser(tmp_path, images=images, names=[f"n{i}" for i in range(20)], class_names=["a", "b", "c"],
                  true=None, predicted=columns["predicted"], confidence=columns["confidence"], maps=maps,
                  signed={"x": True}, map_rows={"grad-cam": np.array([7, 2, 19]), "x": [0, 5]})
    data = read_data(tmp_path)
    assert data["true"] is None and data["tile"] == [51, 64]  # the longer side scaled to 64 pixels
    assert [m["rows"] for m in data["methods"]] == [[7, 2, 19], [0, 5]]
    assert [m["signed"] for m in data["methods"]] == [False, True]
    with Image.open(tmp_path / "map1-000.png") as sheet:
        assert sheet.size == (SHEET_COLUMNS * 51, 64)
        assert np.asarray(sheet)[:, :102].max() > 150  # a negative map, signed: drawn by its magnitude (not 0)
    with Image.open(tmp_path / "originals-000.png") as sheet:
        assert sheet.mode == "RGB"
    with pytest.raises(ValueError, match="grad-cam has 3 maps for 20 images; give its map_rows"):
        write_browser(tmp_path / "bad", images=images, names=[""] * 20, class_names=["a"], true=None,
                      predicted=columns["predicted"], confidence=columns["confidence"], maps=maps, signed={})
    with pytest.raises(ValueError, match="predicted has 19 entries for 20 images"):
        write_browser(tmp_path / "bad", images=images, names=[""] * 20, class_names=["a"], true=None,
                      predicted=columns["predicted"][:19], confidence=columns["confidence"], maps={}, signed={})


def test_hostile_names_reach_the_page_only_as_data(tmp_path):
    count = len(HOSTILE)
    images = np.zeros((count, 48, 48), np.uint8)
    write_browser(tmp_path, images=images, names=HOSTILE, class_names=HOSTILE, maps={}, signed={},
                  **_columns(count))
    text = (tmp_path / "data.js").read_text(encoding="ascii")  # ASCII only: every other character escaped
    assert "<" not in text and "\u2028" not in text  # no string can close the script or start markup
    data = read_data(tmp_path)
    assert data["classes"] == data["names"] == [display.visible(name) for name in HOSTILE]
    assert "\\x1b]0;title\\x07" in data["names"] and "caf\\xe9" in data["names"]  # controls and bytes visible
    script = (ASSETS / "browser.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "textContent" in script
    assert data_script({"s": "</script>"}) == 'window.xaiFerBrowser = {"s":"\\u003c/script>"};\n'


class _Method:
    pass


def _planned(name, explainer_class, module="xai_fer_plugins.x", **attributes):
    explainer = type(explainer_class.__name__, (explainer_class,), {"__module__": module, **attributes})()
    return PlannedExplainer(name, explainer, None)


def test_report_reads_in_order_whatever_the_plan():
    from xai_fer.explain.attribution import Attribution

    planned = [
        _planned("activation-max", _Method, report_group="filters"),
        _planned("zeta", _Method, module="someone.else"),
        _planned("faithfulness", _Method, reads_attributions=True),
        _planned("their-map", Attribution, module="someone.else"),
        _planned("saliency", Attribution),
        _planned("class-means", _Method, module="someone.else", report_group="dataset"),
        _planned("alpha", _Method, module="someone.else", report_group="not a group"),
        _planned("grad-cam", Attribution),
        _planned("confusion", _Method, report_group="accuracy"),
    ]
    assert [item.name for item in report_order(planned)] == [
        "confusion", "saliency", "grad-cam", "their-map", "faithfulness", "class-means", "activation-max",
        "alpha", "zeta"]


def _manifest() -> dict:
    return {"model": {"path": "m.keras", "name": "m", "parameters": 10, "sha256": "0" * 64},
            "data": {"source": "d.npz", "format": "npz", "split": None, "n": 3}, "preprocessing": {},
            "seed": 0, "created": "now"}


def test_index_shows_the_browser_after_accuracy_and_links_sections_in_order():
    sections = [(name, [], {"n": 1}) for name in ("confusion", "saliency", "faithfulness")]
    page = render_index(_manifest(), sections, browser="_browser/", browser_after=1)
    headings = [page.index(f'id="{name}"') for name in ("confusion", "_browse", "saliency", "faithfulness",
                                                         "_manifest")]
    assert headings == sorted(headings)
    nav = page[page.index("<nav"):page.index("</nav>")]
    assert [nav.index(f'href="#{name}"') for name in ("confusion", "_browse", "saliency", "faithfulness")] == sorted(
        nav.index(f'href="#{name}"') for name in ("confusion", "_browse", "saliency", "faithfulness"))
    assert '<script src="_browser/data.js"></script><script src="_browser/browser.js"></script>' in page
    assert 'href="_browser/browser.css"' in page
    assert "<script" not in render_index(_manifest(), sections)  # no browser: a page without scripts


def test_a_report_with_a_browser_can_be_overwritten(tmp_path):
    from xai_fer.explain.output import report_files

    manifest = {**_manifest(), "explainers": {"confusion": {}},
                "files": ["manifest.json", "index.html", "confusion/summary.json", "_browser/data.js"]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert report_files(tmp_path) == set(manifest["files"])
    manifest["files"].append("elsewhere/data.js")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert report_files(tmp_path) is None


def test_context_inputs_name_images_as_the_user_knows_them():
    dataset = SimpleNamespace(images=np.zeros((3, 4, 4, 1), np.uint8), row_label=lambda row: [
        {"name": "me.png"}, {"source_row": 40, "id": 7}, {"source_row": 12}][row])
    assert [browser._image_name(dataset, row) for row in range(3)] == ["me.png", "id 7", "row 12"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """An ``xai-fer explain --open`` report of a tiny model on 14 images with hostile class names; the browser
    the user would get is replaced by a recorder."""
    import tiny_models
    from fixtures import sample_images, write_npz
    from typer.testing import CliRunner

    from xai_fer.cli import app

    root = tmp_path_factory.mktemp("browser")
    tiny_models.sequential_fused_softmax().save(root / "model.keras")
    write_npz(root / "data.npz", sample_images(14)[..., None], np.arange(14) % 7, class_names=HOSTILE)
    opened = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
        result = CliRunner().invoke(app, ["explain", str(root / "model.keras"), "--data", str(root / "data.npz"),
                                          "--out", str(root / "run"), "-e", "saliency", "-e", "confusion",
                                          "-o", "saliency.per_class=1", "--preprocess", "unit", "--open"])
    assert result.exit_code == 0, result.output
    return SimpleNamespace(folder=root / "run", opened=opened, root=root)


def test_open_shows_the_report_in_the_web_browser(report):
    assert report.opened == [(report.folder / "index.html").resolve().as_uri()]


def test_explain_report_holds_the_browser_of_the_run(report):
    folder = report.folder
    data = read_data(folder / "_browser")
    with np.load(folder / "saliency" / "arrays.npz") as arrays:
        rows = arrays["indices"].tolist()
    assert data["count"] == 14 and data["true"] == (np.arange(14) % 7).tolist()
    assert data["classes"] == [display.visible(name) for name in HOSTILE]
    assert data["methods"] == [{"name": "saliency", "signed": False, "sheets": ["map0-000.png"], "rows": rows}]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"_browser/data.js", "_browser/originals-000.png", "_browser/map0-000.png"} <= set(manifest["files"])
    page = (folder / "index.html").read_text()
    assert page.index('<h2 id="confusion">') < page.index('<h2 id="_browse">') < page.index('<h2 id="saliency">')


# ---------------------------------------------------------------------------------------------------------
# The report in a real browser: Playwright on Debian's Chromium (scripts/check_pages.py's driver).


@pytest.fixture(scope="module")
def driver():
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "scripts" / "check_pages.py"
    spec = importlib.util.spec_from_file_location("xai_fer_check_pages", path)
    module = sys.modules.setdefault("xai_fer_check_pages", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    if module.missing():
        pytest.skip(f"{module.missing()}; the real-browser test needs both")
    return module


def _expected(report):
    """Labels, predictions and confidences computed here from the model (--preprocess unit: pixels / 255)."""
    import keras

    from xai_fer.data import load_dataset

    dataset = load_dataset(report.root / "data.npz")
    model = keras.models.load_model(report.root / "model.keras")
    probabilities = np.asarray(model(dataset.images.astype(np.float32) / 255.0, training=False))
    return dataset.labels, probabilities.argmax(axis=1), probabilities.max(axis=1)


def _shown_rows(tab) -> list[int]:
    return [int(row) for row in tab.eval_on_selector_all(".xb-item", "items => items.map(i => i.dataset.row)")]


def test_the_report_in_chromium_cells_filters_and_keys(report, driver):
    labels, predicted, confidence = _expected(report)
    with driver.chromium() as browser:
        tab = browser.new_page(viewport=driver.VIEWPORT)
        errors = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto((report.folder / "index.html").as_uri())
        tab.wait_for_selector("#xai-browser[data-ready]")
        assert tab.inner_text(".xb-status") == "14 of 14 images"
        # A cell: the images of true class t predicted as p, most confident first.
        pairs = [(int(t), int(p)) for t, p in zip(labels, predicted, strict=True)]
        t, p = max(set(pairs), key=lambda pair: (pairs.count(pair), pair[0] != pair[1]))
        tab.click(f'td button[data-t="{t}"][data-p="{p}"]')
        rows = _shown_rows(tab)
        expected = [row for row in range(14) if pairs[row] == (t, p)]
        assert sorted(rows) == expected and len(rows) == pairs.count((t, p))
        assert [confidence[row] for row in rows] == sorted(confidence[expected], reverse=True)
        item = tab.locator(".xb-item").first
        assert item.locator(".xb-thumb").count() == 2  # the image and the saliency map (or "no map")
        background = item.locator(".xb-tile").first.evaluate("tile => tile.style.backgroundImage")
        assert "originals-000.png" in background
        # A filter: every wrong prediction, whatever the cell.
        tab.click(".xb-reset")
        tab.select_option(".xb-control:has-text('outcome') select", "wrong")
        assert sorted(_shown_rows(tab)) == [row for row in range(14) if labels[row] != predicted[row]]
        # Keys: from the first cell (true 0, predicted 0) right and down, Enter selects true 1 predicted 1.
        tab.keyboard.press("Escape")
        assert tab.inner_text(".xb-status") == "14 of 14 images"
        tab.focus('td button[data-t="0"][data-p="0"]')
        for key in ("ArrowRight", "ArrowDown", "Enter"):
            tab.keyboard.press(key)
        assert tab.evaluate("document.activeElement.dataset.t + ',' + document.activeElement.dataset.p") == "1,1"
        assert sorted(_shown_rows(tab)) == [row for row in range(14) if pairs[row] == (1, 1)]
        # In the list: arrows move between images, Enter opens one with its maps, Escape closes it.
        tab.click(".xb-reset")
        tab.focus(".xb-item")
        tab.keyboard.press("ArrowDown")
        assert tab.evaluate("document.activeElement.dataset.at") == "1"
        tab.keyboard.press("Enter")
        assert tab.locator(".xb-detail").is_visible()
        second = _shown_rows(tab)[1]
        assert tab.inner_text(".xb-detail .xb-name") == display.visible(f"row {second}")
        tab.keyboard.press("Escape")
        assert not tab.locator(".xb-detail").is_visible()
        # Hostile class names: shown as text, nothing they hold ran or became markup.
        assert tab.evaluate("window.pwned") is None and tab.locator("img[src='x']").count() == 0
        header = tab.locator(".xb-matrix th button").all_inner_texts()
        assert header[:7] == [display.visible(name) for name in HOSTILE]
        assert errors == []


def test_unlabelled_data_and_many_classes_in_chromium(driver, tmp_path):
    """No labels: the matrix is one row of predicted classes, no true-class or outcome filter; past 40 classes
    no matrix at all (a million buttons for 1,000 classes), the filters still work."""
    predicted = np.array([0, 2, 2, 1, 2, 0])
    columns = {"names": [f"p{i}.png" for i in range(6)], "true": None, "predicted": predicted,
               "confidence": np.linspace(0.2, 0.9, 6), "maps": {}, "signed": {}}
    write_browser(tmp_path / "few", images=np.zeros((6, 48, 48), np.uint8), class_names=["a", "b", "c"], **columns)
    write_browser(tmp_path / "many", images=np.zeros((6, 48, 48), np.uint8),
                  class_names=[f"class {k}" for k in range(50)], **columns)
    with driver.chromium() as browser:
        tab = browser.new_page(viewport=driver.VIEWPORT)
        tab.goto((tmp_path / "few" / "index.html").as_uri())
        tab.wait_for_selector("#xai-browser[data-ready]")
        assert tab.locator(".xb-control:has-text('true class')").is_hidden()
        assert tab.locator(".xb-control:has-text('outcome')").is_hidden()
        tab.click('td button[data-p="2"]')
        assert _shown_rows(tab) == [4, 2, 1]  # predicted c, most confident first
        tab.goto((tmp_path / "many" / "index.html").as_uri())
        tab.wait_for_selector("#xai-browser[data-ready]")
        assert tab.locator(".xb-matrix button").count() == 0
        assert "50 classes" in tab.inner_text(".xb-matrix caption")
        tab.select_option(".xb-control:has-text('predicted class') select", "0")
        assert _shown_rows(tab) == [5, 0]


def test_compact_copy_holds_the_same_browser_with_jpeg_faces(tmp_path):
    """The gallery's form of a browser: the faces' sheets as JPEG (close to the PNG's pixels), the maps' sheets at
    half resolution in 64 levels of the same palette, everything else the same, data.js naming the new sheets."""
    count = PER_SHEET + 10
    rng = np.random.default_rng(3)
    faces = np.clip(rng.normal(128, 12, (count, 48, 48)).cumsum(axis=2) / 8, 0, 255)  # smooth, as faces are
    write_browser(tmp_path / "full", images=faces, names=[f"row {i}" for i in range(count)],
                  class_names=["a", "b", "c"], maps={"saliency": rng.random((count, 48, 48))},
                  signed={"saliency": False}, **_columns(count))
    files = browser.compact_copy(tmp_path / "full", tmp_path / "compact")
    full, compact = read_data(tmp_path / "full"), read_data(tmp_path / "compact")
    assert compact["originals"] == ["originals-000.jpg", "originals-001.jpg"]
    assert {key: value for key, value in compact.items() if key != "originals"} == \
        {key: value for key, value in full.items() if key != "originals"}
    assert sorted(files) == sorted(p.name for p in (tmp_path / "compact").iterdir())
    for name in ("browser.js", "browser.css", "index.html"):
        assert (tmp_path / "compact" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()
    for index in (0, 1):
        with Image.open(tmp_path / "full" / f"originals-00{index}.png") as png, \
                Image.open(tmp_path / "compact" / f"originals-00{index}.jpg") as jpeg:
            assert jpeg.format == "JPEG" and jpeg.mode == "L" and jpeg.size == png.size
            difference = np.abs(np.asarray(jpeg, np.float32) - np.asarray(png, np.float32))
        assert difference.mean() < 3
    full_sheet, compact_sheet = tmp_path / "full" / "map0-001.png", tmp_path / "compact" / "map0-001.png"
    with Image.open(full_sheet) as big, Image.open(compact_sheet) as small:
        assert small.mode == "P" and small.size == (big.size[0] // 2, big.size[1] // 2)
        assert small.getpalette() == big.getpalette()
        levels, blocks = np.asarray(small, np.float32), np.asarray(big, np.float32)
    means = blocks.reshape(levels.shape[0], 2, levels.shape[1], 2).mean(axis=(1, 3))  # each 2x2 block's mean
    assert np.abs(levels - means).max() <= 255 / 63 / 2 + 1 and len(np.unique(levels)) <= 64
    with pytest.raises(ValueError, match="not a data.js"):
        browser.read_data_script("var x = 1;")


def test_compact_copy_opens_in_chromium_with_every_sheet(driver, tmp_path):
    count = 40
    rng = np.random.default_rng(4)
    write_browser(tmp_path / "full", images=rng.integers(0, 256, (count, 48, 48)), names=[str(i) for i in range(count)],
                  class_names=["a", "b", "c"], maps={"saliency": rng.random((count, 48, 48))},
                  signed={"saliency": False}, **_columns(count))
    browser.compact_copy(tmp_path / "full", tmp_path / "compact")
    try:
        [report] = driver.check_pages([tmp_path / "compact" / "index.html"])
    except driver.ChromiumError as exc:
        pytest.skip(str(exc))
    backgrounds = {Path(image["src"]).name for image in report.images if image["kind"] == "background"}
    assert report.ok and {"originals-000.jpg", "map0-000.png"} <= backgrounds


GALLERY_REPORT = Path(__file__).resolve().parents[1] / "docs" / "gallery" / "cnn-privatetest-all"


@pytest.mark.skipif(not (GALLERY_REPORT / "index.html").exists(), reason="the gallery's whole-split report is built "
                    "by scripts/build_gallery.py")
def test_gallery_whole_split_report_shows_every_picture_in_chromium(driver):
    """The report the docs publish (every PrivateTest image, maps.h5 left out): every figure and every sheet of
    its image browser loads, and the browser lists every image."""
    data = read_data(GALLERY_REPORT / "_browser")
    try:
        [report] = driver.check_pages([GALLERY_REPORT / "index.html"])
    except driver.ChromiumError as exc:
        pytest.skip(str(exc))
    assert report.ok, f"not loaded {report.broken}, no such file {report.static_missing}"
    figures = [image for image in report.images if image["kind"] == "img"]
    assert len(figures) == len(list(GALLERY_REPORT.glob("*/*.png"))) - len(list(GALLERY_REPORT.glob("_browser/*.png")))
    assert data["count"] == len(data["names"]) == 3589 and not (GALLERY_REPORT / "maps.h5").exists()
