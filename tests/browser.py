"""Open the built report in headless Chromium with the network off, and check it.

The report must render with nothing but its own files: the pages are served from
127.0.0.1 and every other host is unresolvable. For each page we record failed
requests and console errors, count typeset MathJax elements and unloaded images, and
save a screenshot.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1000",
    # The network is off: every host but the local server fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


@dataclass
class PageCheck:
    """What one page did in the browser."""

    page: str
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    typeset_math: int = 0
    images: int = 0
    broken_images: int = 0
    wide_equations: int = 0  # display equations wider than the text column
    cut_equations: int = 0  # ... of which neither scroll nor wrap: their right side is cut off
    bold_pasted: int = 0  # glued numbers and sentences set in bold, unlike the prose around them
    wide_tables: int = 0  # tables wider than the text column (they scroll sideways)
    page_overflow_px: int = 0  # how far the page is wider than the window (it scrolls sideways)
    smallest_text_px: float = 0.0  # the smallest font size of the page's own visible text
    figure_scales: list[float] = field(default_factory=list)  # each SVG figure's shown / own width
    screenshot: str = ""


def browser_available() -> bool:
    return shutil.which("chromium") is not None and shutil.which("chromedriver") is not None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on a free port of 127.0.0.1; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _driver(profile_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def check_pages(html_dir: Path, pages: list[str], screenshots: Path, wait_s: float = 20.0,
                width: int = 1280) -> list[PageCheck]:
    """Load each page (path relative to ``html_dir``) in a window ``width`` pixels wide
    and report what happened."""
    screenshots.mkdir(parents=True, exist_ok=True)
    results = []
    with serve(html_dir) as base, _tmp_profile() as profile_dir:
        driver = _driver(profile_dir)
        try:
            driver.set_window_size(width, 1000)
            driver.get("about:blank")  # let the browser's own start-up requests fail first
            time.sleep(1.0)
            for page in pages:
                driver.get_log("performance")  # drop earlier events
                driver.get(f"{base}/{page}")
                result = PageCheck(page)
                deadline = time.time() + wait_s
                while time.time() < deadline:  # MathJax typesets asynchronously
                    done = driver.execute_script(
                        "return document.readyState === 'complete' && "
                        "(!window.MathJax || !MathJax.startup || MathJax.startup.promise === undefined "
                        " || window.__mathDone === true);")
                    driver.execute_script(
                        "if (window.MathJax && MathJax.startup && MathJax.startup.promise) "
                        "MathJax.startup.promise.then(() => { window.__mathDone = true; });")
                    if done:
                        break
                    time.sleep(0.2)
                result.typeset_math = driver.execute_script(
                    "return document.querySelectorAll('mjx-container').length;")
                result.wide_equations, result.cut_equations = driver.execute_script(
                    "const wide = [...document.querySelectorAll('mjx-container[display=\\'true\\']')]"
                    "  .filter(e => e.scrollWidth > e.clientWidth + 1);"
                    "return [wide.length, wide.filter(e => !['auto', 'scroll']"
                    "  .includes(getComputedStyle(e).overflowX)).length];")
                result.bold_pasted = driver.execute_script(
                    "return [...document.querySelectorAll('span.pasted-text')]"
                    "  .filter(e => parseInt(getComputedStyle(e).fontWeight) >= 600).length;")
                result.smallest_text_px, result.figure_scales = driver.execute_script(_TEXT_AND_FIGURES)
                result.wide_tables = driver.execute_script(
                    "const column = document.querySelector('article section').clientWidth;"
                    "return [...document.querySelectorAll('article table')]"
                    "  .filter(t => t.getBoundingClientRect().width > column + 1).length;")
                result.page_overflow_px = driver.execute_script(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
                images = driver.execute_script(
                    "return Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0]);")
                result.images = len(images)
                result.broken_images = sum(1 for _, ok in images if not ok)
                urls = {}
                for entry in driver.get_log("performance"):
                    message = json.loads(entry["message"])["message"]
                    params = message.get("params", {})
                    if message["method"] == "Network.requestWillBeSent":
                        urls[params["requestId"]] = params["request"]["url"]
                    elif message["method"] == "Network.loadingFailed":
                        url = urls.get(params.get("requestId"), "?")
                        result.failed_requests.append(f"{url}: {params.get('errorText', 'failed')}")
                result.console_errors = [e["message"] for e in driver.get_log("browser")
                                         if e["level"] == "SEVERE"]
                shot = screenshots / (page.replace("/", "_").replace(".html", f"-{width}.png"))
                driver.save_screenshot(str(shot))
                result.screenshot = str(shot)
                results.append(result)
        finally:
            driver.quit()
    return results


# The smallest font of the article's visible text (not maths, not figures), and the
# scale at which each SVG figure is shown: its text is set in points at scale 1.
_TEXT_AND_FIGURES = """
const article = document.querySelector('article');
let smallest = Infinity;
const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const element = walker.currentNode.parentElement;
  if (!walker.currentNode.textContent.trim() || !element.offsetParent
      || element.closest('mjx-container, .headerlink')) continue;
  smallest = Math.min(smallest, parseFloat(getComputedStyle(element).fontSize));
}
const scales = [...article.querySelectorAll('img')].filter(i => /\\.svg$|^data:image\\/svg/.test(i.src))
  .map(i => i.clientWidth / i.naturalWidth);
return [smallest, scales];
"""


@contextmanager
def _tmp_profile() -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as folder:
        yield Path(folder)
