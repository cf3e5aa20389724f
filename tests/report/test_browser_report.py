"""The HTML reports in headless Chromium: no console errors, charts drawn, screenshots taken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser import check_page, chrome  # noqa: F401  (fixture)
from tests.report.records import fixture_records
from wattprint.report.html import comparison_html, run_html


def test_run_report_renders_in_chromium(chrome: Any, tmp_path: Path) -> None:  # noqa: F811
    page = tmp_path / "run.html"
    page.write_text(run_html(fixture_records()[0]), encoding="utf-8")
    drawn = check_page(chrome, page.as_uri(), tmp_path / "run.png", charts=2)
    assert len(drawn) == 2
    assert chrome.find_element("id", "energy-total").text == "500 Wh"
    assert chrome.title.startswith("ResNet-18")


def test_comparison_report_renders_in_chromium(chrome: Any, tmp_path: Path) -> None:  # noqa: F811
    page = tmp_path / "compare.html"
    page.write_text(comparison_html(fixture_records()), encoding="utf-8")
    check_page(chrome, page.as_uri(), tmp_path / "compare.png", charts=2)
    rows = chrome.find_elements("css selector", "#runs-table tr")
    assert len(rows) == 4  # header + 3 runs
    # each marker of the scatter is a drawn path inside the chart
    assert chrome.execute_script("return document.querySelectorAll('#energy-chart svg path').length") > 10


def test_the_checks_catch_a_broken_page(chrome: Any, tmp_path: Path) -> None:  # noqa: F811
    """Guard against a vacuous check: a console error, a missing resource or no chart must fail it."""
    import pytest

    broken = tmp_path / "broken.html"
    broken.write_text('<html><body><img src="missing.png"><script>undefinedCall()</script></body></html>')
    with pytest.raises(AssertionError) as info:
        check_page(chrome, broken.as_uri(), tmp_path / "broken.png", charts=0)
    assert "undefinedCall" in str(info.value) or "missing.png" in str(info.value)
    empty = tmp_path / "empty.html"
    empty.write_text("<html><body><p>no chart</p></body></html>")
    with pytest.raises(AssertionError):
        check_page(chrome, empty.as_uri(), tmp_path / "empty.png", charts=1)
