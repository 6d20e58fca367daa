"""Open a page the way a person would: Debian's chromium, headless, driven by Playwright.

Pages people look at (the monitoring report, the docs site) are checked here, not only
parsed: a plot that fails to load or a script error shows only in a real browser. The
browser is the system's ``chromium`` (``make chromium`` installs Debian's package);
Playwright only drives it, so nothing is downloaded at test time.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

# what counts as a drawn figure: images, inline SVG and canvases with a non-zero box
_FIGURES = """() => [...document.querySelectorAll('img, svg, canvas')]
  .filter(el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; })
  .filter(el => el.tagName !== 'IMG' || (el.complete && el.naturalWidth > 0))
  .length"""


class NoBrowser(RuntimeError):
    """No chromium on this machine: ``make chromium`` installs it."""


@dataclass
class Rendered:
    title: str
    screenshot: Path
    images: int
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.console_errors + self.page_errors + self.failed_requests


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise NoBrowser("no chromium on PATH: run `make chromium` (Debian's package)")
    return path


def render(target: str | Path, screenshot: Path, *, timeout_ms: int = 30_000) -> Rendered:
    """Load ``target`` (a file or a URL), wait until the network is idle, and report.

    The screenshot is the full page, kept at ``screenshot`` for a person to look at.
    """
    from playwright.sync_api import sync_playwright

    url = target.resolve().as_uri() if isinstance(target, Path) else target
    console_errors: list[str] = []
    page_errors: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium refuses its sandbox
        browser = playwright.chromium.launch(
            executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda message: (
                    console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(url, wait_until="networkidle", timeout=timeout_ms)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            return Rendered(
                title=page.title(),
                screenshot=screenshot,
                images=int(page.evaluate(_FIGURES)),
                console_errors=console_errors,
                page_errors=page_errors,
                failed_requests=failed,
            )
        finally:
            browser.close()
