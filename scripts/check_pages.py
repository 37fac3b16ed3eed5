"""Open HTML pages in headless Chromium and report every image that did not load.

    python scripts/check_pages.py site/gallery/index.html xai-fer-out/index.html --screenshots shots/

Two checks per page:

* static: every ``<img src>`` that points at a local file resolves to an existing file;
* browser: Debian's Chromium, driven through Playwright for Python (``executable_path``: no downloaded browser
  build), loads the page, makes lazy images eager, scrolls through it, waits for every image to settle and
  reports each one whose ``complete`` is false or whose ``naturalWidth`` is 0 - exactly what a person would see
  as a broken picture. Background pictures set by the page (the report's image browser draws its thumbnails
  from sprite sheets) are loaded and checked the same way. A full-page screenshot of each page is saved.

Exit status 1 when any image is broken, 2 when Chromium or Playwright is missing or fails.

The same driver (:func:`chromium`) serves the real-browser tests and the browser benchmark.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars")
VIEWPORT = {"width": 1280, "height": 1000}

# Runs in the page: load every image now (lazy ones included), scroll through the page so that pictures loaded
# on sight are asked for, wait until each settles, list the broken ones.
_IMAGE_CHECK = """
async (timeoutMs) => {
  const frame = () => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  const images = Array.from(document.images);
  for (const img of images) { img.loading = "eager"; }
  for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight) { window.scrollTo(0, y); await frame(); }
  window.scrollTo(0, document.body.scrollHeight);
  await frame();
  const settle = img => img.complete ? Promise.resolve() : new Promise(done => {
    img.addEventListener("load", done, {once: true});
    img.addEventListener("error", done, {once: true});
  });
  const timeout = new Promise(done => setTimeout(done, timeoutMs));
  await Promise.race([Promise.all(images.map(img => img.decode ? img.decode().catch(() => {}) : settle(img))),
                      timeout]);
  await Promise.race([Promise.all(images.map(settle)), timeout]);
  const urls = new Set();
  for (const node of document.querySelectorAll("[style*='background-image']")) {
    const found = /url\\(["']?([^"')]+)["']?\\)/.exec(node.style.backgroundImage);
    if (found) urls.add(new URL(found[1], document.baseURI).href);
  }
  const backgrounds = Array.from(urls, src => { const img = new Image(); img.src = src; return img; });
  await Promise.race([Promise.all(backgrounds.map(settle)), timeout]);
  window.scrollTo(0, 0);
  const describe = kind => img => ({kind, src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0,
                                    width: img.naturalWidth, height: img.naturalHeight});
  return images.map(describe("img")).concat(backgrounds.map(describe("background")));
}
"""


class ChromiumError(RuntimeError):
    pass


@dataclass
class PageReport:
    page: str
    images: list[dict] = field(default_factory=list)  # each {kind: "img" | "background", src, ok, width, height}
    static_missing: list[str] = field(default_factory=list)
    screenshot: str | None = None

    @property
    def broken(self) -> list[str]:
        return [image["src"] for image in self.images if not image["ok"]]

    @property
    def ok(self) -> bool:
        return not self.broken and not self.static_missing


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian's ``chromium`` package), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing() -> str | None:
    """Why no page can be checked here (no Chromium, no Playwright), or None."""
    if find_chromium() is None:
        return (f"Chromium not found on PATH (looked for {', '.join(CHROMIUM_NAMES)}); on Debian: "
                "apt-get install -y chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: pip install playwright (it is in the test extra)"
    return None


@contextmanager
def chromium(executable: str | None = None, timeout: float = 60.0):
    """A headless Chromium browser (Playwright's ``Browser``) on the system's Chromium; closed on exit."""
    reason = missing() if executable is None else None
    if reason:
        raise ChromiumError(reason)
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as driver:
        try:
            browser = driver.chromium.launch(executable_path=executable or find_chromium(), args=list(CHROMIUM_ARGS),
                                             timeout=timeout * 1000)
        except Error as exc:
            raise ChromiumError(f"Chromium did not start: {str(exc).splitlines()[0]}") from None
        try:
            yield browser
        finally:
            browser.close()


class _ImgSources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.extend(value for key, value in attrs if key == "src" and value)


def static_missing_images(page: Path) -> list[str]:
    """``<img src>`` values of a local page that point at files which do not exist."""
    parser = _ImgSources()
    parser.feed(page.read_text(encoding="utf-8"))
    missing_files = []
    for src in parser.sources:
        parts = urlsplit(src)
        if parts.scheme in ("http", "https", "data") or parts.netloc:
            continue
        if not (page.parent / unquote(parts.path)).resolve().is_file():
            missing_files.append(src)
    return missing_files


def check_pages(pages: list[Path], screenshot_dir: Path | None = None, chromium_path: str | None = None,
                timeout: float = 60.0) -> list[PageReport]:
    """Load each page in one headless Chromium; returns a report per page (see ``PageReport.ok``)."""
    from playwright.sync_api import Error

    reports = []
    with chromium(chromium_path, timeout) as browser:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(timeout * 1000)
        for page in pages:
            page = Path(page).resolve()
            report = PageReport(page=str(page), static_missing=static_missing_images(page))
            tab = context.new_page()
            try:
                tab.goto(page.as_uri(), wait_until="load")
                report.images = tab.evaluate(_IMAGE_CHECK, 20000)
                if screenshot_dir is not None:
                    screenshot_dir.mkdir(parents=True, exist_ok=True)
                    shot = screenshot_dir / ("_".join(page.parts[-3:]).replace(".html", "") + ".png")
                    tab.screenshot(path=str(shot), full_page=True)
                    report.screenshot = str(shot)
            except Error as exc:
                raise ChromiumError(f"checking {page} failed: {str(exc).splitlines()[0]}") from None
            finally:
                tab.close()
            reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path, help="local HTML files")
    parser.add_argument("--screenshots", type=Path, help="directory for one full-page PNG per page")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for Chromium per step")
    args = parser.parse_args(argv)
    try:
        reports = check_pages(args.pages, args.screenshots, timeout=args.timeout)
    except ChromiumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for report in reports:
        status = "ok" if report.ok else "BROKEN"
        print(f"{status}: {report.page}: {len(report.images)} images, {len(report.broken)} not loaded"
              + (f", screenshot {report.screenshot}" if report.screenshot else ""))
        for src in report.broken:
            print(f"  not loaded in Chromium: {src}")
        for src in report.static_missing:
            print(f"  no such file: {src}")
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
