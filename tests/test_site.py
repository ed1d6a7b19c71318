"""The rendered lessons in a browser: every page of build/site/ opened in headless Chromium, served from localhost.

The site is built from the executed copies `tests/test_notebooks.py` leaves in build/executed/ (it runs first in
`make test`), never executing a lesson, so each lesson runs once. Every page must load every image (naturalWidth
> 0), show no error output (a traceback, or an exception on stderr), load nothing from another host (the browser has
no network) and nothing the site lacks (no 404), and typeset its math. A screenshot of each page goes to
build/site-screenshots/.

Chromium and its driver come from Debian (`apt-get install chromium chromium-driver`; `.ci/run` installs them).
Without them the test skips, except in CI ($CI=true), where it fails.
"""

import functools
import http.server
import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402

SCREENSHOTS = ROOT / "build" / "site-screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--window-size=1280,1000"]

# Runs in the page once it has loaded: waits for every image and for MathJax, then reports what is wrong.
CHECK_PAGE = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(img => { img.loading = "eager"; });
const typeset = () => new Promise(resolve => (window.MathJax && MathJax.Hub) ? MathJax.Hub.Queue(resolve) : resolve());
Promise.allSettled(images.map(img => img.decode())).then(typeset).then(() => {
  const text = el => el.innerText.slice(0, 300);
  const raised = /Traceback \\(most recent call last\\)|^\\w*(Error|Exception)\\b.*:/m;
  done({
    broken_images: images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src.slice(0, 120)),
    tracebacks: Array.from(document.querySelectorAll(".output.traceback, .output.error")).map(text),
    stderr_errors: Array.from(document.querySelectorAll(".output.stderr")).filter(el => raised.test(el.innerText))
                        .map(text),
    other_hosts: Array.from(document.querySelectorAll("script[src], link[href], img[src], iframe[src], source[src]"))
                      .filter(el => el.tagName !== "LINK" || /stylesheet|preload|icon|manifest/.test(el.rel))
                      .map(el => el.src || el.href)
                      .filter(url => !url.startsWith(location.origin) && !url.startsWith("data:")),
    math: document.querySelectorAll(".math").length,
    typeset_math: document.querySelectorAll(".MathJax, .MathJax_Display, .MathJax_SVG").length,
    math_errors: document.querySelectorAll(".MathJax_Error, merror").length,
  });
});
"""


def _chromium():
    found = (shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver"))
    if all(found):
        return found
    why = "no chromium/chromedriver on PATH: apt-get install chromium chromium-driver"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (.ci/run installs them; in CI this test must run)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def site_url():
    try:
        build_site.build(may_execute=False)
        why = None
    except build_site.SiteNotBuilt as exc:
        why = str(exc)
    if why:
        pytest.fail(why, pytrace=False)
    handler = functools.partial(_QuietHandler, directory=str(build_site.SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    not_found: list[str] = []  # what the pages asked for and the site lacks (a font, a script, an image)

    def log_request(self, code="-", size="-"):
        if str(code).isdigit() and int(code) >= 400 and self.path != "/favicon.ico":  # the browser's own ask
            self.not_found.append(f"{code} {self.path}")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, chromedriver = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _screenshot(driver, path: Path) -> None:
    """The whole page, not only the window (up to 16,000 px tall): the window made as tall as the page."""
    import base64

    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": min(height, 16000),
                                                                  "deviceScaleFactor": 1, "mobile": False})
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.mark.slow
def test_every_page_shows_its_images_and_no_error(browser, site_url):  # the browser first: it may skip
    pages = sorted(p.relative_to(build_site.SITE).as_posix() for p in build_site.SITE.rglob("*.html")
                   if not p.relative_to(build_site.SITE).parts[0].startswith("_"))
    lessons = {f"lessons/{nb.stem}.html": nb for nb in build_site.NOTEBOOKS}
    assert {"index.html", "syllabus.html", *lessons} <= set(pages), f"pages built: {pages}"
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    # a lesson whose kernel died shows no error cell: its copy says it failed
    problems = [f"{page}: the lesson failed when executed (tests/test_notebooks.py says where)"
                for page, nb in lessons.items() if build_site.copy_state(nb) == "failed"]
    for page in pages:
        _QuietHandler.not_found.clear()
        browser.get(f"{site_url}/{page}")
        found = browser.execute_async_script(CHECK_PAGE)
        found["not_found"] = list(_QuietHandler.not_found)
        _screenshot(browser, SCREENSHOTS / (page.removesuffix(".html").replace("/", "__") + ".png"))
        for what in ("broken_images", "tracebacks", "stderr_errors", "other_hosts", "not_found"):
            problems += [f"{page}: {what.replace('_', ' ')}: {item!r}" for item in found[what]]
        if found["math_errors"] or found["math"] and not found["typeset_math"]:
            problems.append(f"{page}: math not typeset ({found['math']} formulas, {found['math_errors']} errors)")
    if problems:
        pytest.fail(f"{len(problems)} problems (screenshots in {SCREENSHOTS}):\n" + "\n".join(problems), pytrace=False)


def test_the_syllabus_names_each_exercise_by_its_heading():
    """An exercise's heading may share its cell with a section's ("## 4. One PPO step" above "### Exercise: …")."""
    facts = build_site.lesson_facts(ROOT / "notebooks" / "03b_ppo_value_head.ipynb")
    assert facts["exercises"] == ["GAE", "The clipped value loss"]
    assert "One PPO step" in facts["sections"]
