"""The SVG label: well-formed, says what it must, escapes names, and renders in Chromium."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.bench.workloads import Overhead
from tests.browser import chrome, console_errors, open_page, screenshot  # noqa: F401  (chrome: fixture)
from wattprint.bench import run_bench
from wattprint.bench.label import GREEN, label_height, render_label
from wattprint.bench.stars import Reference, rate
from wattprint.errors import WattprintInputError
from wattprint.report.values import fmt_energy

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    mp = pytest.MonkeyPatch()  # module scope: its own home, like the autouse fixture gives each test
    import tempfile

    mp.setenv("WATTPRINT_HOME", tempfile.mkdtemp())
    work = Overhead()
    work.model = "enc<oder> & co"  # a name that must be escaped
    doc = run_bench(work, [f"q{i}" for i in range(16)], batch_sizes=(1, 4), queries=16, idle_s=0).document
    mp.undo()
    return doc


def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def _filled_stars(svg: str) -> int:
    return sum(1 for p in ET.fromstring(svg).iter(f"{SVG}polygon") if p.get("fill") == GREEN)


def test_label_states_model_task_hardware_energy_method_and_date(document: dict[str, Any]) -> None:
    svg = render_label(document, when=datetime(2026, 12, 7, tzinfo=timezone.utc))
    texts = _texts(svg)  # parses: well-formed XML, the model's "<&>" escaped
    assert "enc<oder> & co" in texts and "&amp;" in svg
    largest = document["results"][-1]
    assert fmt_energy(largest["kwh_per_1k_queries"]) in texts
    assert any(t.startswith("callable (16 queries, batch size 4)") for t in texts)
    assert any(t.startswith(f"Energy: {largest['energy_method']}") for t in texts)
    assert any(t.startswith("2026-12-07") for t in texts)
    assert any(document["hardware"]["cpu_model"] in t for t in texts)
    assert "not rated" in texts and _filled_stars(svg) == 0


def test_label_draws_the_stars_of_the_chosen_batch_size(document: dict[str, Any]) -> None:
    doc = {**document, "results": [dict(r) for r in document["results"]]}
    first = doc["results"][0]
    table = [Reference(m, "callable", "user", 1, k) for m, k in (("a", 0.0), ("b", first["kwh_per_1k_queries"] * 2))]
    first["rating"] = rate(doc["model"], "callable", "user", 1, first["kwh_per_1k_queries"], table)
    assert first["rating"]["stars"] == 3  # halfway between 0 and twice its figure
    svg = render_label(doc, batch_size=1)
    assert _filled_stars(svg) == 3 and "3 of 5 stars among 3 models" in _texts(svg)
    with pytest.raises(WattprintInputError, match="label_batch_size"):
        render_label(doc, batch_size=64)


def test_every_batch_size_fits_on_the_label(document: dict[str, Any]) -> None:
    many = {**document, "results": [dict(document["results"][0], batch_size=2**i) for i in range(8)]}
    svg = render_label(many)
    root = ET.fromstring(svg)
    height = float(root.get("height"))
    assert height == label_height(8)
    ys = [float(t.get("y")) for t in root.iter(f"{SVG}text")]
    assert max(ys) < height - 5  # nothing drawn past the bottom edge
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("x") == "20" and (t.text or "").isdigit()] == [
        str(2**i) for i in range(8)
    ]


def test_label_renders_in_chromium(document: dict[str, Any], chrome: Any, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "label.svg"
    path.write_text(render_label(document), encoding="utf-8")
    open_page(chrome, path.as_uri())
    assert console_errors(chrome) == []
    box = chrome.execute_script(
        "const r = document.documentElement.getBoundingClientRect(); return [r.width, r.height];"
    )
    assert box == [380, label_height(2)]
    screenshot(chrome, tmp_path / "label.png")
