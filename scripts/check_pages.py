"""Open HTML pages in headless Chromium and report every image that did not load.

    python scripts/check_pages.py site/gallery/index.html xai-fer-out/index.html --screenshots shots/

Two checks per page:

* static: every ``<img src>`` that points at a local file resolves to an existing file;
* browser: Chromium (driven over the DevTools protocol through ``--remote-debugging-pipe``, standard library
  only) loads the page, makes lazy images eager, scrolls to the end, waits for every image to settle and
  reports each one whose ``complete`` is false or whose ``naturalWidth`` is 0 - exactly what a person would see
  as a broken picture. A full-page screenshot of each page is saved.

Exit status 1 when any image is broken, 2 when Chromium is missing or fails.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1280,1000")

# Runs in the page: load every image now (lazy ones included), wait until each settles, list the broken ones.
_IMAGE_CHECK = """
(async () => {
  const images = Array.from(document.images);
  for (const img of images) { img.loading = "eager"; }
  window.scrollTo(0, document.body.scrollHeight);
  const settle = img => img.complete ? Promise.resolve() : new Promise(done => {
    img.addEventListener("load", done, {once: true});
    img.addEventListener("error", done, {once: true});
  });
  const timeout = new Promise(done => setTimeout(done, %(timeout_ms)d));
  await Promise.race([Promise.all(images.map(img => img.decode ? img.decode().catch(() => {}) : settle(img))),
                      timeout]);
  await Promise.race([Promise.all(images.map(settle)), timeout]);
  window.scrollTo(0, 0);
  return JSON.stringify(images.map(img => ({
    src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0,
    width: img.naturalWidth, height: img.naturalHeight})));
})()
"""


class ChromiumError(RuntimeError):
    pass


@dataclass
class PageReport:
    page: str
    images: list[dict] = field(default_factory=list)
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
    missing = []
    for src in parser.sources:
        parts = urlsplit(src)
        if parts.scheme in ("http", "https", "data") or parts.netloc:
            continue
        if not (page.parent / unquote(parts.path)).resolve().is_file():
            missing.append(src)
    return missing


class _Pipe:
    """The DevTools protocol over ``--remote-debugging-pipe``: JSON messages ending in NUL, on fds 3 and 4."""

    def __init__(self, chromium: str, user_data_dir: Path, timeout: float):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Park both child ends above fd 4 so that dup2 into 3 and 4 cannot clobber one another.
        high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def child_fds():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe",
                   "about:blank"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, preexec_fn=child_fds, pass_fds=(3, 4))
        os.close(high_r)
        os.close(high_w)
        self.timeout = timeout
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise ChromiumError(f"Chromium closed the DevTools pipe: {self._stderr_tail()}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _stderr_tail(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        return (self.process.stderr.read() or b"").decode(errors="replace")[-2000:]

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for k, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self.events.pop(k)
            self.events.append(self._read_message(deadline))

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                try:
                    self.send("Browser.close")
                except (ChromiumError, OSError):
                    pass
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            os.close(self._to_child)
            os.close(self._from_child)
            if self.process.stderr:
                self.process.stderr.close()


def check_pages(pages: list[Path], screenshot_dir: Path | None = None, chromium: str | None = None,
                timeout: float = 60.0) -> list[PageReport]:
    """Load each page in one headless Chromium; returns a report per page (see ``PageReport.ok``)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise ChromiumError(f"Chromium not found on PATH (looked for {', '.join(CHROMIUM_NAMES)}); "
                            "on Debian: apt-get install -y chromium")
    reports = []
    with tempfile.TemporaryDirectory(prefix="xai-fer-chromium-") as profile:
        pipe = _Pipe(chromium, Path(profile), timeout)
        try:
            for page in pages:
                page = Path(page).resolve()
                report = PageReport(page=str(page), static_missing=static_missing_images(page))
                target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
                session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
                pipe.send("Page.enable", session=session)
                pipe.send("Page.navigate", {"url": page.as_uri()}, session=session)
                pipe.wait_event("Page.loadEventFired", session)
                result = pipe.send("Runtime.evaluate", {"expression": _IMAGE_CHECK % {"timeout_ms": 20000},
                                                        "awaitPromise": True, "returnByValue": True},
                                   session=session)
                if "exceptionDetails" in result:
                    raise ChromiumError(f"image check failed on {page}: {result['exceptionDetails']}")
                report.images = json.loads(result["result"]["value"])
                if screenshot_dir is not None:
                    screenshot_dir.mkdir(parents=True, exist_ok=True)
                    shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                     session=session)
                    name = "_".join(page.parts[-3:]).replace(".html", "") + ".png"
                    (screenshot_dir / name).write_bytes(base64.b64decode(shot["data"]))
                    report.screenshot = str(screenshot_dir / name)
                pipe.send("Target.closeTarget", {"targetId": target})
                reports.append(report)
        finally:
            pipe.close()
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
