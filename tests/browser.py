"""Headless Chromium for page tests: a selenium driver fixture and checks every page test makes.

A page passes when it loads with no console message at SEVERE level (errors, failed resource loads),
its charts are real (inline <svg> with drawn paths and a non-zero size), and a screenshot is taken
and is not blank. Tests skip, saying why, only where Chromium or its driver is not installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing_browser() -> str | None:
    """Why headless Chromium cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and shutil.which(Path(path).name) is None:
            return f"{path} is not installed (CI installs chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (dev extra)"
    return None


def _binary(path: str) -> str:
    return path if Path(path).exists() else str(shutil.which(Path(path).name))


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    """A headless Chromium session shared by the tests of one module; console logs captured."""
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _binary(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(_binary(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, url: str) -> None:
    """Load `url` with the console log emptied first, so errors are those of this page."""
    driver.get_log("browser")
    driver.get(url)
    driver.execute_script("return document.readyState")


def wait_for(driver: Any, url_part: str, timeout_s: float = 15.0) -> None:
    """After a click or a submit: wait until the new page (URL containing `url_part`) has loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout_s).until(
        lambda d: url_part in d.current_url and d.execute_script("return document.readyState") == "complete"
    )


def console_errors(driver: Any) -> list[str]:
    """SEVERE console entries since the last call (JS errors, failed loads, CSP violations)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def rendered_charts(driver: Any, selector: str = "svg.chart") -> list[dict[str, float]]:
    """Size on screen and number of drawn <path> elements of each chart."""
    return driver.execute_script(
        """return Array.from(document.querySelectorAll(arguments[0])).map(svg => {
             const box = svg.getBoundingClientRect();
             return {width: box.width, height: box.height, paths: svg.querySelectorAll('path').length};
           });""",
        selector,
    )


def screenshot(driver: Any, path: Path) -> Path:
    """Save a PNG of the page and check it is a real image, not a blank one."""
    from PIL import Image

    assert driver.save_screenshot(str(path)), f"screenshot {path} not written"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        width, height = image.size
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert width >= 800 and height >= 600, (width, height)
    assert len(colours) > 50, f"screenshot looks blank: {len(colours)} colours"
    return path


def check_page(driver: Any, url: str, shot: Path, *, charts: int) -> list[dict[str, float]]:
    """Load `url`; assert no console errors, at least `charts` rendered charts; take a screenshot."""
    open_page(driver, url)
    errors = console_errors(driver)
    assert errors == [], errors
    drawn = rendered_charts(driver)
    assert len(drawn) >= charts, drawn
    for chart in drawn:
        assert chart["width"] > 100 and chart["height"] > 50 and chart["paths"] > 5, chart
    screenshot(driver, shot)
    return drawn
