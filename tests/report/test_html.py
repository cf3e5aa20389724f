"""HTML reports: self-contained pages with real charts, escaped user text, honest method labels."""

from __future__ import annotations

import re
import time

from tests.report.records import fixture_records, make_record
from wattprint.record import RunRecord
from wattprint.report.html import comparison_html, run_html
from wattprint.report.values import fmt_energy


def charts(html: str) -> list[str]:
    return re.findall(r"<svg class=\"chart\".*?</svg>", html, flags=re.S)


def assert_self_contained(html: str) -> None:
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "page loads something from elsewhere"
    assert "stylesheet" not in html


def test_run_page_has_power_and_breakdown_charts_and_the_method() -> None:
    record = fixture_records()[0]
    html = run_html(record)
    assert_self_contained(html)
    drawn = charts(html)
    assert len(drawn) == 2 and all(svg.count("<path") > 5 for svg in drawn)
    assert 'aria-label="power over time per component"' in html
    for text in (
        "ResNet-18",
        "500 Wh",
        "30.0 g",
        "range 15.0 g to 60.0 g",
        "FR",
        "explicit: --region",
        "1x NVIDIA A100 + AMD EPYC 7763",
        "rapl",
        "nvml",
        "measured",
        "estimated",
        "56.0 g/kWh",
        "× PUE 1.2",
    ):
        assert text in html, text
    assert "GPU (measured, nvml)" in drawn[0]  # the legend says how each line was obtained
    assert "RAM (estimated, model)" in drawn[0]


def test_run_without_timeline_says_so() -> None:
    record = make_record("a1", "short", energy_kwh=0.001, co2e_kg=0.0001, timeline={}, samples=0)
    html = run_html(record)
    assert "No power timeline was recorded" in html
    assert len(charts(html)) == 1  # the breakdown is still drawn


def test_user_text_is_escaped_everywhere() -> None:
    evil = '<script>alert("x")</script>'
    record = make_record(
        "a1",
        evil,
        energy_kwh=0.001,
        co2e_kg=0.0001,
        metrics={"accuracy": 0.5, "model": evil, evil: evil},
        degraded={"cpu": evil},
    )
    for html in (run_html(record), comparison_html([record, fixture_records()[1]])):
        assert "<script" not in html
        assert "&lt;script&gt;" in html


def test_comparison_page_charts_front_and_missing_metric() -> None:
    html = comparison_html(fixture_records(), run_href=lambda r: f"/runs/{r.run_id}")
    assert_self_contained(html)
    drawn = charts(html)
    assert len(drawn) == 2  # accuracy vs energy, accuracy vs FLOPs
    assert "minimize energy): mlp_small, ResNet-18." in html
    assert "Not on the charts (no numeric <code>accuracy</code>): baseline &amp; co." in html
    assert '<a href="/runs/aaaa1111">ResNet-18</a>' in html
    assert "—" in html  # missing accuracy shown as n/a in the table


def test_comparison_without_any_metric_explains() -> None:
    runs = [make_record("a1", "a", energy_kwh=0.1, co2e_kg=0.01), make_record("b2", "b", energy_kwh=0.2, co2e_kg=0.01)]
    html = comparison_html(runs)
    assert charts(html) == []
    assert "No run has a numeric <code>accuracy</code> metric" in html


def test_report_of_a_real_tracked_run() -> None:
    import wattprint
    from wattprint.config import load_settings
    from wattprint.store import open_store

    with wattprint.track(name="real-run") as tracker:
        tracker.log(accuracy=0.81, params=1234)
        deadline = time.monotonic() + 1.3
        while time.monotonic() < deadline:  # some CPU work for the model to see
            sum(i * i for i in range(10_000))
    with open_store(load_settings().db_url) as store:
        record: RunRecord = store.list()[0]
    assert record.name == "real-run" and record.metrics["accuracy"] == 0.81
    html = run_html(record)
    assert len(charts(html)) == 2
    assert "estimated" in html  # no RAPL/NVML here: the page must not claim a measurement
    assert "0.81" in html


def test_distributed_run_shows_its_nodes_and_ranks() -> None:
    energy = {"node-a": (0.3, [0.1, 0.2]), "node-b": (0.2, [0.15, 0.05])}
    nodes = [
        {"node_id": n, "ranks": [2 * i, 2 * i + 1], "energy_kwh": {"total": e, "cpu": e, "gpu": 0.0, "ram": 0.0}}
        for i, (n, (e, _)) in enumerate(energy.items())
    ]
    ranks = [
        {"rank": 2 * i + j, "node_id": n, "energy_kwh": {"total": r, "cpu": r, "gpu": 0.0, "ram": 0.0}}
        for i, (n, (_, rs)) in enumerate(energy.items())
        for j, r in enumerate(rs)
    ]
    record = make_record("d1", "ddp", energy_kwh=0.5, co2e_kg=0.02).model_copy(update={"nodes": nodes, "ranks": ranks})
    html = run_html(record)
    assert "Distributed job" in html
    for text in ("node-a", "node-b", "<td>0, 1</td>", "<td>2, 3</td>", "300 Wh", "200 Wh", "150 Wh", "50 Wh"):
        assert text in html, text
    assert "Distributed job" not in run_html(fixture_records()[0])  # single-process runs: no such section


def test_a_bench_run_shows_its_figures_per_batch_size() -> None:
    from tests.bench.workloads import FakeGenerator
    from wattprint.bench import run_bench

    result = run_bench(FakeGenerator(4, 40, 30), ["a b c", "d e"], batch_sizes=(1, 2), queries=4, idle_s=0)
    html = run_html(result.record)
    assert "Inference benchmark" in html and "J / decode token" in html
    for r in result.results:
        assert f'<td class="num">{r["batch_size"]}</td><td class="num">4</td>' in html
    assert "Serving" not in html and "Inference benchmark" not in run_html(fixture_records()[0])


def test_a_served_run_shows_its_routes() -> None:
    serving = {
        "rule": "each slice of time split among the requests in flight, by time in flight",
        "routes": {"/items/{id}": {"requests": 4, "energy_j": 2.0, "tokens": 10}, "/<b>": {"requests": 0}},
        "unattributed_j": 0.5,
    }
    record = make_record("s1", "api", energy_kwh=0.001, co2e_kg=0.0).model_copy(update={"bench": {"serving": serving}})
    html = run_html(record)
    assert "<h2>Serving</h2>" in html and "/items/{id}" in html and '<td class="num">0.500 J</td>' in html
    assert fmt_energy(0.5 / 3.6e6) in html  # the unattributed energy
    assert "/&lt;b&gt;" in html  # a route is user text: escaped
    assert "Inference benchmark" not in html
