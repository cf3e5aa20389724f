"""The dashboard in headless Chromium against a real `wattprint ui` process: list, run, compare, filter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (  # noqa: F401  (chrome: fixture)
    check_page,
    chrome,
    console_errors,
    rendered_charts,
    screenshot,
    wait_for,
)
from tests.report.records import fixture_records, save_records
from tests.ui.server import ui_process


@pytest.fixture
def dashboard(wattprint_cmd: list[str]) -> Iterator[str]:
    save_records(fixture_records())
    with ui_process(wattprint_cmd) as (_proc, url):
        yield url


def test_dashboard_pages_in_chromium(chrome: Any, dashboard: str, tmp_path: Path) -> None:  # noqa: F811
    check_page(chrome, dashboard, tmp_path / "list.png", charts=0)
    assert len(chrome.find_elements("css selector", "#runs input[name=run]")) == 3

    # one run's page, reached by its link
    chrome.find_element("link text", "aaaa1111").click()
    wait_for(chrome, "/runs/aaaa1111")
    assert console_errors(chrome) == []
    assert len([c for c in rendered_charts(chrome) if c["paths"] > 5 and c["width"] > 100]) == 2
    screenshot(chrome, tmp_path / "run.png")

    # compare two runs selected with their check boxes
    chrome.get(dashboard)
    for run_id in ("aaaa1111", "bbbb2222"):
        chrome.find_element("css selector", f"input[name=run][value={run_id}]").click()
    chrome.find_element("css selector", "#compare button[type=submit]").click()
    wait_for(chrome, "/compare?")
    assert "run=bbbb2222&run=aaaa1111" in chrome.current_url  # in the order of the list, newest first
    assert console_errors(chrome) == []
    assert chrome.find_element("tag name", "h1").text == "Comparison of 2 runs"
    assert len(rendered_charts(chrome)) == 2
    screenshot(chrome, tmp_path / "compare.png")

    # filter by name
    chrome.get(dashboard)
    box = chrome.find_element("css selector", "#filters input[name=name]")
    box.send_keys("resnet")
    box.submit()
    wait_for(chrome, "name=resnet")
    assert [e.get_attribute("value") for e in chrome.find_elements("css selector", "#runs input[name=run]")] == [
        "aaaa1111"
    ]
    assert console_errors(chrome) == []
    screenshot(chrome, tmp_path / "filtered.png")
