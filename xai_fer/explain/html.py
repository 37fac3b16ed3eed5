"""``index.html``: one page with every figure and number of a run, in the order a reader needs them: the run
(model, data, preprocessing and how it was chosen), accuracy and confusion, the image browser, attributions,
faithfulness, dataset views, filters (the caller orders the sections: :func:`xai_fer.explain.plan.report_order`).
It needs nothing outside the run directory (no CDN, no web fonts; the browser's script and sheets lie in the
run's ``_browser/`` folder), so it opens the same from a disk, a zip or a web server."""

from __future__ import annotations

import html
import json
import os
import urllib.parse

from ..atomic import json_default
from ..data.photos import describe_preparation
from ..display import visible
from .browser import section_html
from .face_crops import FIGURE as FACE_CROPS

# A JSON block longer than this (a summary with the details of thousands of images) is cut in the page: the
# file beside it holds all of it, and the page stays quick to open.
_PRE_LIMIT = 200_000


def _text(value) -> str:
    """A string from data or paths (class names, file names) as HTML text: escaped, its control characters,
    bidi overrides and bytes that are not UTF-8 written visibly (see ``xai_fer.display``)."""
    return html.escape(visible(value))


def _json_block(data, where: str) -> str:
    text = json.dumps(data, indent=2, default=json_default)
    if len(text) > _PRE_LIMIT:
        text = f"{text[:_PRE_LIMIT]}\n... (cut at {_PRE_LIMIT:,} characters: {where} holds all of it)"
    return f"<pre>{_text_lines(text)}</pre>"


def _text_lines(value: str) -> str:
    return html.escape(visible(value, keep_newlines=True))

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.3rem;margin-top:2.5rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
figure{margin:1rem 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#666;font-size:.9rem}
.records{overflow-x:auto} caption{text-align:left;font-weight:600;padding:.2rem 0}
pre{background:#f6f8fa;padding:.8rem;overflow:auto;max-height:30rem;font-size:.8rem}
"""


def _table(rows: dict) -> str:
    cells = "".join(f"<tr><th>{_text(str(k))}</th><td>{_text(_fmt(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{cells}</table>"


# A summary's list of records (dicts of plain values: a ranking, per-class metrics) up to this many rows is shown
# as a table; longer lists (per-image details of a large run) stay in the JSON block below the figures.
_RECORD_TABLE_ROWS = 25


def _is_plain(value) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


def _records_table(key: str, rows) -> str | None:
    """A summary entry that is a short list of records as a table with one column per key, else None."""
    if not isinstance(rows, list) or not 0 < len(rows) <= _RECORD_TABLE_ROWS:
        return None
    if not all(isinstance(row, dict) and row and all(_is_plain(v) for v in row.values()) for row in rows):
        return None
    columns = list(dict.fromkeys(column for row in rows for column in row))
    head = "".join(f"<th>{_text(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_text('-' if row.get(c) is None else _fmt(row[c]))}</td>"
                                    for c in columns) + "</tr>" for row in rows)
    return (f'<div class="records"><table><caption>{_text(key)}</caption><tr>{head}</tr>{body}</table>'
            "</div>")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=json_default)
    return str(value)


def render_index(manifest: dict, sections: list[tuple[str, list[str], dict]], browser: str | None = None,
                 browser_after: int = 0) -> str:
    """``sections``: (explainer name, figure file names relative to the run dir, summary), in the order shown.
    ``browser``: the folder (relative, ending in '/') of an image browser (:mod:`xai_fer.explain.browser`),
    shown after the first ``browser_after`` sections."""
    model, data = manifest["model"], manifest["data"]
    overview = {
        "model": f"{model['path']} ({model['name']}, {model['parameters']:,} parameters)",
        "model sha256": model["sha256"],
        "data": f"{data['source']} ({data['format']}, split {data['split'] or 'all'}, {data['n']} images)",
        "preprocessing": ", ".join(f"{k}: {v}" for k, v in {"pixel_scaling": data.get("pixel_scaling"),
                                                               **manifest["preprocessing"]}.items() if v),
        "scaling chosen": (manifest.get("scaling_choice") or {}).get("summary"),
        "images prepared": describe_preparation(data.get("preparation")),
        "seed": manifest["seed"],
        "created": manifest["created"],
    }
    parts = [f"<h1>xai-fer run</h1>{_table({k: v for k, v in overview.items() if v is not None})}"]
    if FACE_CROPS in manifest.get("run_files", []):  # --faces: what was cut out of the photos
        parts.append(f'<figure><img src="{FACE_CROPS}" alt="faces cut out of the photos" loading="lazy">'
                     "<figcaption>the face found in each photo (green), which is what was explained</figcaption>"
                     "</figure>")
    if manifest.get("skipped"):  # explainers of the default "all" that do not apply: said, not only in the JSON
        parts.append("<h2>not run</h2>" + _table(manifest["skipped"]))
    if manifest.get("figures_left_out"):  # --max-figures: said where the figures would have been
        parts.append(f"<p><strong>Figures left out:</strong> {_text(manifest['figures_left_out']['note'])}</p>")
    parts.append(_contents([name for name, _, _ in sections], browser_after if browser else None))
    for position, (name, figures, summary) in enumerate(sections):
        if browser and position == browser_after:
            parts.append(_browser_section(browser))
        parts.append(f'<h2 id="{_text(name)}">{_text(name)}</h2>')
        scalars = {k: v for k, v in summary.items() if _is_plain(v)}
        if scalars:
            parts.append(_table(scalars))
        parts.extend(table for key, value in summary.items() if (table := _records_table(key, value)))
        for figure in figures:
            # '#', '?' or '%' in a name stay in the path; a name that is not UTF-8 is quoted as its bytes
            src = html.escape(urllib.parse.quote(os.fsencode(f"{name}/{figure}")))
            parts.append(f'<figure><img src="{src}" alt="{_text(name)} {_text(figure)}" loading="lazy">'
                         f"<figcaption>{_text(figure)}</figcaption></figure>")
        parts.append(f"<details><summary>all numbers ({_text(name)}/summary.json)</summary>"
                     f"{_json_block(summary, f'{name}/summary.json')}</details>")
    if browser and browser_after >= len(sections):
        parts.append(_browser_section(browser))
    # The anchor apart from the heading: "manifest" could be an explainer's name (its section's id).
    parts.append(f'<span id="_manifest"></span><h2>manifest</h2>{_json_block(manifest, "manifest.json")}')
    body = "\n".join(parts)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>xai-fer run</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")



_BROWSER_ID = "_browse"  # explainer names (the other sections' ids) start with a letter or a digit


def _browser_section(folder: str) -> str:
    return f'<h2 id="{_BROWSER_ID}">browse the images</h2>{section_html(html.escape(folder))}'


def _contents(names: list[str], browser_at: int | None) -> str:
    """Links to the sections in the order they come; ``browser_at``: the browser's place among them (None: no
    browser)."""
    links = [f'<a href="#{_text(name)}">{_text(name)}</a>' for name in names]
    if browser_at is not None:
        links.insert(min(browser_at, len(links)), f'<a href="#{_BROWSER_ID}">browse the images</a>')
    links.append('<a href="#_manifest">manifest</a>')
    return '<nav class="contents">' + " · ".join(links) + "</nav>"
