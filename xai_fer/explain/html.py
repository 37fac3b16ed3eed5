"""``index.html``: one page with every figure and number of a run. It needs nothing outside the run
directory (no scripts, no web fonts, inline CSS), so it opens the same from a disk, a zip or a web server."""

from __future__ import annotations

import html
import json
import urllib.parse

from ..atomic import json_default

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.3rem;margin-top:2.5rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
figure{margin:1rem 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#666;font-size:.9rem}
pre{background:#f6f8fa;padding:.8rem;overflow:auto;max-height:30rem;font-size:.8rem}
"""


def _table(rows: dict) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{cells}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=json_default)
    return str(value)


def render_index(manifest: dict, sections: list[tuple[str, list[str], dict]]) -> str:
    """``sections``: (explainer name, figure file names relative to the run dir, summary)."""
    model, data = manifest["model"], manifest["data"]
    overview = {
        "model": f"{model['path']} ({model['name']}, {model['parameters']:,} parameters)",
        "model sha256": model["sha256"],
        "data": f"{data['source']} ({data['format']}, split {data['split'] or 'all'}, {data['n']} images)",
        "preprocessing": ", ".join(f"{k}: {v}" for k, v in {"pixel_scaling": data.get("pixel_scaling"),
                                                               **manifest["preprocessing"]}.items() if v),
        "seed": manifest["seed"],
        "created": manifest["created"],
    }
    parts = [f"<h1>xai-fer run</h1>{_table(overview)}"]
    if manifest.get("skipped"):  # explainers of the default "all" that do not apply: said, not only in the JSON
        parts.append("<h2>not run</h2>" + _table(manifest["skipped"]))
    for name, figures, summary in sections:
        parts.append(f'<h2 id="{html.escape(name)}">{html.escape(name)}</h2>')
        scalars = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool)) or v is None}
        if scalars:
            parts.append(_table(scalars))
        for figure in figures:
            src = html.escape(urllib.parse.quote(f"{name}/{figure}"))  # '#', '?' or '%' in a name stay in the path
            parts.append(f'<figure><img src="{src}" alt="{html.escape(name)} {html.escape(figure)}" loading="lazy">'
                         f"<figcaption>{html.escape(figure)}</figcaption></figure>")
        parts.append(f"<details><summary>all numbers ({html.escape(name)}/summary.json)</summary>"
                     f"<pre>{html.escape(json.dumps(summary, indent=2, default=json_default))}</pre></details>")
    parts.append(f"<h2>manifest</h2><pre>{html.escape(json.dumps(manifest, indent=2, default=json_default))}</pre>")
    body = "\n".join(parts)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>xai-fer run</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")
