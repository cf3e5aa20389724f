"""The dashboard app on a real SQLite store, through Starlette's test client (no socket)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.report.records import fixture_records, make_record, save_records
from wattprint.config import load_settings
from wattprint.ui.app import create_app


@pytest.fixture
def client() -> Iterator[TestClient]:
    save_records(
        [
            *fixture_records(),
            make_record("dddd4444", "failed-run", energy_kwh=0.001, co2e_kg=0.0001, status="failed", minutes=60 * 30),
        ]
    )
    app = create_app(load_settings().db_url, check_every_s=0.0)  # every request asks the store: no waiting
    with TestClient(app, base_url="http://127.0.0.1:8765") as test_client:
        yield test_client


def run_ids(html: str) -> list[str]:
    return re.findall(r'name="run" value="([^"]+)"', html)


def rows_of_db() -> list[Any]:
    path = load_settings().db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall()


def test_runs_list_and_filters(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert run_ids(page.text) == ["dddd4444", "cccc3333", "bbbb2222", "aaaa1111"]  # newest first
    assert run_ids(client.get("/?name=MLP").text) == ["bbbb2222"]  # substring, any case
    assert run_ids(client.get("/?status=failed").text) == ["dddd4444"]
    assert run_ids(client.get("/?region=fr").text) == ["dddd4444", "bbbb2222", "aaaa1111"]
    assert run_ids(client.get("/?since=2026-05-01&until=2026-05-01").text) == ["cccc3333", "bbbb2222", "aaaa1111"]
    assert run_ids(client.get("/?since=2026-05-02").text) == ["dddd4444"]
    assert run_ids(client.get("/?limit=1").text) == ["dddd4444"]
    assert "No runs match" in client.get("/?name=zzz").text


@pytest.mark.parametrize(
    ("query", "field"), [("status=done", "status"), ("since=yesterday", "since"), ("limit=0", "limit")]
)
def test_bad_filters_are_400_naming_the_field(client: TestClient, query: str, field: str) -> None:
    page = client.get(f"/?{query}")
    assert page.status_code == 400 and f"{field}: " in page.text
    assert client.get(f"/api/runs?{query}").json()["error"].startswith(f"{field}: ")


def test_run_page_reuses_the_report(client: TestClient) -> None:
    page = client.get("/runs/aaaa")  # unique prefix
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') == 2 and "ResNet-18" in page.text
    assert '<a href="/">All runs</a>' in page.text
    missing = client.get("/runs/zzzz")
    assert missing.status_code == 404 and "no run with id or id prefix" in missing.text


def test_compare_page(client: TestClient) -> None:
    page = client.get("/compare?run=aaaa1111&run=bbbb2222&run=cccc3333")
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') == 2
    assert '<a href="/runs/bbbb2222">mlp_small</a>' in page.text
    assert client.get("/compare").status_code == 400
    assert client.get("/compare?run=aaaa1111&run=nope").status_code == 404
    lower = client.get("/compare?run=aaaa1111&run=bbbb2222&lower_is_better=1")
    assert "minimize accuracy, minimize energy" in lower.text


def test_json_endpoints(client: TestClient) -> None:
    body = client.get("/api/runs?name=mlp").json()
    assert [r["run_id"] for r in body["runs"]] == ["bbbb2222"] and body["truncated"] is False
    record = client.get("/api/runs/bbbb").json()
    assert record == fixture_records()[1].to_json_dict()
    assert client.get("/api/runs/nope").status_code == 404


def test_read_only_and_loopback_host_only(client: TestClient) -> None:
    before = rows_of_db()
    for path in ("/", "/runs/aaaa", "/compare?run=aaaa1111&run=bbbb2222", "/api/runs", "/api/runs/cccc"):
        assert client.get(path).status_code == 200
    assert client.post("/").status_code == 405
    assert client.delete("/api/runs/aaaa1111").status_code == 405
    assert rows_of_db() == before
    # a page fetched through another host name (DNS rebinding) is refused
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/favicon.ico").status_code == 204


def test_pages_follow_the_store(client: TestClient) -> None:
    """Pages come from a cache of the runs: a run added, or one changing status, shows on the next request."""
    before = run_ids(client.get("/").text)
    save_records([make_record("eeee5555", "late-run", energy_kwh=0.002, co2e_kg=0.0002, minutes=60 * 40)])
    after = run_ids(client.get("/").text)
    assert "eeee5555" in after and set(before) < set(after)
    assert any(r["run_id"] == "eeee5555" for r in client.get("/api/runs").json()["runs"])
    save_records(
        [make_record("eeee5555", "late-run", energy_kwh=0.002, co2e_kg=0.0002, minutes=60 * 40, status="failed")]
    )
    failed = client.get("/api/runs?status=failed").json()["runs"]
    assert "eeee5555" in {r["run_id"] for r in failed}


def test_runs_cache_rereads_when_stale(tmp_path: Any) -> None:
    """Checkpoints of a running run leave the signature alone: its figures are re-read after max_age_s
    (a clock the test moves, so that no timing can make it flaky)."""
    from wattprint.store import open_store
    from wattprint.ui.cache import RunsCache

    now = [100.0]
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with open_store(url) as writer, open_store(url, read_only=True) as reader:
        record = make_record("ffff6666", "grows", energy_kwh=0.001, co2e_kg=0.0001)
        writer.save(record)
        cache = RunsCache(reader, max_age_s=5.0, check_every_s=0.0, clock=lambda: now[0])
        first, _ = cache.records()
        assert cache.records()[0] is first  # unchanged store: the same list, not re-read
        writer.save(record.model_copy(update={"duration_s": 99.0}))  # same status and start: same signature
        now[0] += 4.0
        assert cache.records()[0] is first
        now[0] += 2.0  # past max_age_s
        assert cache.records()[0][0].duration_s == 99.0
        writer.save(make_record("gggg7777", "new", energy_kwh=0.001, co2e_kg=0.0001, minutes=5))
        assert {r.run_id for r in cache.records()[0]} == {"ffff6666", "gggg7777"}  # a new run: at once


def test_a_page_is_made_once_for_concurrent_requests_and_failures_are_shared(tmp_path: Any) -> None:
    import threading
    import time

    from wattprint.store import open_store
    from wattprint.ui.cache import RunsCache

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with open_store(url) as writer, open_store(url, read_only=True) as reader:
        writer.save(make_record("hhhh8888", "one", energy_kwh=0.001, co2e_kg=0.0001))
        cache = RunsCache(reader, check_every_s=60.0)
        calls: list[int] = []

        def make(records: list) -> str:
            calls.append(1)
            time.sleep(0.05)
            return f"{len(records)} runs"

        def boom(records: list) -> str:
            calls.append(1)
            time.sleep(0.05)
            raise RuntimeError("chart failed")

        results: list[object] = []

        def ask(key: str, maker: Any) -> None:
            try:
                results.append(cache.page(key, maker))
            except RuntimeError as exc:
                results.append(exc)

        for key, maker in (("/", make), ("/runs/x", boom)):
            calls.clear()
            results.clear()
            threads = [threading.Thread(target=ask, args=(key, maker)) for _ in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(calls) == 1, (key, len(calls))
            assert len(results) == 20
        assert all(isinstance(r, RuntimeError) and str(r) == "chart failed" for r in results)
        assert cache.page("/", make) == "1 runs" and len(calls) == 1  # cached: not made again
