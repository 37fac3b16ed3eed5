"""The report's image browser: a confusion matrix whose cells show their images, each with every method's map.

:func:`write_browser` writes one self-contained folder (no CDN, no server; it opens from ``file://``):

* ``originals-NNN.png`` and ``mapK-NNN.png``: sprite sheets (atlases) of up to 256 thumbnails each, the images
  and, per attribution method K, its maps (256 levels, a PNG palette of jet colours: small files, which the page
  lays half transparent over the image); a page of thousands of images then asks for a few dozen files, and
  only for the sheets of the images scrolled into view;
* ``data.js``: class names, file names, labels, predictions, confidences and where each thumbnail lies, loaded
  with ``<script src>`` (``fetch()`` of a JSON file is refused on ``file://``);
* ``browser.js``, ``browser.css`` (package data in ``browser_assets/``) and a standalone ``index.html``.

Images and maps are read in slices of one sheet (``images[i:j]``, ``maps[m][i:j]``: an h5py Dataset works), so
memory stays bounded whatever the number of images. Every string from data reaches the page as JSON and is
inserted with ``textContent``, never as HTML.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from ..display import visible
from ..lazy import np

BROWSER_FOLDER = "_browser"  # in a report; explainer names start with a letter or digit, so none can clash
SHEET_COLUMNS = 16
PER_SHEET = SHEET_COLUMNS * SHEET_COLUMNS
THUMB_MAX = 64  # a thumbnail's longer side in pixels (48x48 FER2013 images stay as they are)
_ASSETS = ("browser.js", "browser.css")
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>xai-fer image browser</title>
</head><body style="font-family:system-ui,sans-serif;margin:1rem">
<h1>xai-fer image browser</h1>
{section}
</body></html>
"""


def write_browser(folder: Path, *, images, names: list[str], class_names: list[str], true, predicted,
                  confidence, maps: Mapping, signed: Mapping[str, bool],
                  map_rows: Mapping | None = None) -> list[str]:
    """Write the browser of ``images`` (N, H, W[, C], 0-255) into ``folder``; returns the files written,
    relative to ``folder``.

    ``true``: class indices or None (unlabelled); ``predicted`` class indices and ``confidence`` (the
    predicted class's probability), N each; ``maps``: method name -> (M, H, W) maps, ``signed``: whether a
    method's maps carry a sign (shown by magnitude). ``map_rows``: method name -> the M dataset rows its maps
    belong to (an ordinary run explains a few selected images); a method without an entry has a map for
    every image (M = N)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    count = len(names)
    _check_lengths(count, images=images, predicted=predicted, confidence=confidence,
                   **({} if true is None else {"true": true}))
    rows_of = {name: _rows(map_rows, name, len(maps[name]), count) for name in maps}
    tile = _tile_size(images.shape[1:3]) if count else (THUMB_MAX, THUMB_MAX)
    written = []
    originals = _write_sheets(folder, "originals", count, tile,
                              lambda start, stop: _pixels(np.asarray(images[start:stop])))
    methods = []
    for index, name in enumerate(rows_of):
        def levels(start, stop, name=name):
            return _map_levels(np.asarray(maps[name][start:stop]), bool(signed.get(name, False)))

        sheets = _write_sheets(folder, f"map{index}", len(maps[name]), tile, levels, palette=_jet_palette())
        methods.append({"name": visible(name), "signed": bool(signed.get(name, False)), "sheets": sheets,
                        "rows": None if rows_of[name] is None else [int(row) for row in rows_of[name]]})
        written.extend(sheets)
    data = {
        "count": count, "tile": list(tile), "columns": SHEET_COLUMNS, "perSheet": PER_SHEET,
        "classes": [visible(name) for name in class_names], "originals": originals, "methods": methods,
        "names": [visible(name) for name in names],
        "true": None if true is None else [int(value) for value in np.asarray(true)],
        "predicted": [int(value) for value in np.asarray(predicted)],
        "confidence": [round(float(value), 4) if np.isfinite(value) else None for value in np.asarray(confidence)],
    }
    (folder / "data.js").write_text(data_script(data), encoding="utf-8")
    for asset in _ASSETS:
        with resources.as_file(resources.files(__package__) / "browser_assets" / asset) as source:
            shutil.copyfile(source, folder / asset)
    (folder / "index.html").write_text(_PAGE.format(section=section_html("")), encoding="utf-8")
    return [*originals, *written, "data.js", *_ASSETS, "index.html"]


def compact_copy(source: Path, target: Path, quality: int = 80, map_scale: int = 2, map_levels: int = 64) -> list[str]:
    """A copy of the browser written into ``source``, for publishing where size matters (the docs gallery), a
    fifth of its size on faces: the images' sheets as JPEG of ``quality``; the maps' sheets at 1/``map_scale`` of
    their resolution (the page scales every sheet to the thumbnail's size, so it shows them as before, smoother)
    in ``map_levels`` levels of the same colours (the thumbnail is small and half transparent); ``data.js`` names
    the new sheets. Returns the files written, relative to ``target``."""
    from PIL import Image

    source, target = Path(source), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    data = read_data_script((source / "data.js").read_text(encoding="utf-8"))
    originals = []
    for name in data["originals"]:
        with Image.open(source / name) as sheet:
            jpeg = f"{Path(name).stem}.jpg"
            sheet.convert("L" if sheet.mode in ("L", "P", "LA") else "RGB").save(target / jpeg, quality=quality,
                                                                                 optimize=True)
        originals.append(jpeg)
    sheets = [sheet for method in data["methods"] for sheet in method["sheets"]]
    for name in sheets:
        with Image.open(source / name) as sheet:
            _smaller_map_sheet(sheet, map_scale, map_levels).save(target / name, optimize=True)
    for name in [*_ASSETS, "index.html"]:
        shutil.copyfile(source / name, target / name)
    data["originals"] = originals
    (target / "data.js").write_text(data_script(data), encoding="utf-8")
    return [*originals, *sheets, *_ASSETS, "index.html", "data.js"]


def _smaller_map_sheet(sheet, scale: int, levels: int):
    """A map sheet (palette indices = map levels 0-255) at 1/``scale`` size (the mean of each ``scale`` x ``scale``
    block), its levels rounded to ``levels`` evenly spaced ones (0 and 255 kept), with the same palette."""
    from PIL import Image

    indices = Image.frombytes("L", sheet.size, sheet.tobytes())  # the levels themselves, not their colours
    size = (max(1, sheet.size[0] // scale), max(1, sheet.size[1] // scale))
    small = np.asarray(indices.resize(size, Image.Resampling.BOX), dtype=np.float32)
    step = 255 / (levels - 1)
    rounded = (np.round(small / step) * step).round().astype(np.uint8)
    out = Image.frombytes("P", size, rounded.tobytes())
    out.putpalette(sheet.getpalette())
    return out


def read_data_script(text: str) -> dict:
    """The data of a ``data.js`` that :func:`data_script` wrote."""
    prefix = "window.xaiFerBrowser = "
    if not text.startswith(prefix):
        raise ValueError("not a data.js of the image browser")
    return json.loads(text[len(prefix):].rstrip().removesuffix(";"))


def context_inputs(context) -> dict:
    """:func:`write_browser`'s keywords for an ordinary run: every image of the run's data with its labels and
    predictions, and each attribution method's maps for the images it explained (``context.attributions``)."""
    dataset = context.dataset
    probabilities = context.probabilities
    attributions = context.attributions
    return {
        "images": dataset.images, "names": [_image_name(dataset, row) for row in range(len(dataset))],
        "class_names": list(context.class_names), "true": context.labels, "predicted": context.predictions,
        "confidence": probabilities.max(axis=1) if len(probabilities) else np.zeros(0, np.float32),
        "maps": {name: result.maps for name, result in attributions.items()},
        "signed": {name: bool(result.signed) for name, result in attributions.items()},
        "map_rows": {name: result.rows for name, result in attributions.items()},
    }


def _image_name(dataset, row: int) -> str:
    """How the user knows an image: its file name, its line in a CSV file, its id, or its row in the source."""
    label = dataset.row_label(row)
    if "name" in label:
        return label["name"]
    if "id" in label:
        return f"id {label['id']}"
    return f"row {label.get('source_row', row)}"


def data_script(data: dict) -> str:
    """The data as a script that sets ``window.xaiFerBrowser``: ASCII-only JSON (every other character as a
    ``\\u`` escape), with ``<`` escaped too, so no string can end the script or start markup."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    return f"window.xaiFerBrowser = {text};\n"


def section_html(prefix: str) -> str:
    """The markup that shows the browser written into ``prefix`` (a relative folder: ``"_browser/"`` from a
    report's ``index.html``, ``""`` from the folder itself). Without JavaScript it says what it needs."""
    return (f'<link rel="stylesheet" href="{prefix}browser.css">'
            '<div id="xai-browser" class="xai-browser"><noscript>The image browser needs JavaScript; the figures '
            'below show the same maps.</noscript></div>'
            f'<script src="{prefix}data.js"></script><script src="{prefix}browser.js"></script>')


def _check_lengths(count: int, **columns) -> None:
    for name, column in columns.items():
        if len(column) != count:
            raise ValueError(f"write_browser: {name} has {len(column)} entries for {count} images")


def _rows(map_rows: Mapping | None, name: str, length: int, count: int):
    """The dataset rows of a method's maps (None: one map per image, in order), checked."""
    if map_rows is None or map_rows.get(name) is None:
        if length != count:
            raise ValueError(f"write_browser: {name} has {length} maps for {count} images; give its map_rows")
        return None
    rows = np.asarray(map_rows[name], dtype=np.int64)
    if len(rows) != length or (len(rows) and (rows.min() < 0 or rows.max() >= count)):
        raise ValueError(f"write_browser: map_rows of {name} must give one row in 0..{count - 1} per map")
    if length == count and np.array_equal(rows, np.arange(count)):  # every image in order (a whole split):
        return None  # said without a list of every row in data.js
    return rows


def _tile_size(shape) -> tuple[int, int]:
    """(width, height) of a thumbnail: the image's own size, scaled down to THUMB_MAX on its longer side."""
    height, width = int(shape[0]), int(shape[1])
    scale = min(1.0, THUMB_MAX / max(height, width))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _write_sheets(folder: Path, prefix: str, count: int, tile, make_tiles, palette=None) -> list[str]:
    """Sheets of PER_SHEET thumbnails, ``make_tiles(start, stop)`` giving (n, H, W) gray levels or (n, H, W, 3)
    colours (uint8) for each. With ``palette`` (768 values) the gray levels are indices into it."""
    from PIL import Image

    width, height = tile
    names = []
    for start in range(0, count, PER_SHEET):
        stop = min(start + PER_SHEET, count)
        tiles = make_tiles(start, stop)
        rows = -(-(stop - start) // SHEET_COLUMNS)
        sheet = Image.new("L" if tiles.ndim == 3 else "RGB", (SHEET_COLUMNS * width, rows * height))
        for k, pixels in enumerate(tiles):
            thumb = Image.fromarray(pixels)
            if thumb.size != (width, height):
                thumb = thumb.resize((width, height), Image.Resampling.BILINEAR)
            sheet.paste(thumb, ((k % SHEET_COLUMNS) * width, (k // SHEET_COLUMNS) * height))
        if palette is not None:  # the levels as they are, as indices (a conversion would dither them)
            sheet = Image.frombytes("P", sheet.size, sheet.tobytes())
            sheet.putpalette(palette)
        name = f"{prefix}-{start // PER_SHEET:03d}.png"
        sheet.save(folder / name, compress_level=6)
        names.append(name)
    return names


def _pixels(images):
    """(n, H, W) gray or (n, H, W, 3) colour uint8 thumbnails of 0-255 images."""
    pixels = np.clip(np.nan_to_num(np.asarray(images, dtype=np.float32)), 0, 255).round().astype(np.uint8)
    if pixels.ndim == 4 and pixels.shape[-1] >= 3:
        return pixels[..., :3]
    return pixels[..., 0] if pixels.ndim == 4 else pixels


def _map_levels(maps, signed: bool):
    """(n, H, W) uint8: each map as the report shows it (the positive part, or a signed map's magnitude, scaled
    to its image's peak) in 256 levels; the page draws them in jet colours, half transparent, over the image."""
    from .attribution import display_maps

    return (display_maps(maps, signed) * 255).round().astype(np.uint8)


def _jet_palette() -> list[int]:
    """The jet colour map as a PNG palette: 256 RGB triples."""
    import matplotlib

    colours = (matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    return colours.ravel().tolist()
