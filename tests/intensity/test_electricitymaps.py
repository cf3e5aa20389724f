"""Electricity Maps v3 client against recorded responses on a loopback server."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.intensity.fakeserver import FAST, FakeServer, Reply
from wattprint.intensity import electricitymaps, get_provider
from wattprint.intensity.electricitymaps import ElectricityMapsProvider
from wattprint.intensity.static import StaticProvider

KEY = "em-test-key-7Hq2Zr9WbX"
UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


@pytest.fixture
def em(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> ElectricityMapsProvider:
    monkeypatch.setenv("ELECTRICITYMAPS_API_KEY", KEY)
    monkeypatch.setattr(electricitymaps, "utcnow", lambda: NOW)
    server.routes["/v3/carbon-intensity/latest"] = Reply.fixture("em_latest.json")
    server.routes["/v3/carbon-intensity/history"] = Reply.fixture("em_history.json")
    server.routes["/v3/carbon-intensity/forecast"] = Reply.fixture("em_forecast.json")
    server.routes["/v3/carbon-intensity/past-range"] = Reply.fixture("em_past_range.json")
    return ElectricityMapsProvider(base_url=server.url, **FAST)


def test_latest_sends_the_key_in_the_auth_token_header(em: ElectricityMapsProvider, server: FakeServer) -> None:
    found = em.intensity("DE")
    assert found.g_per_kwh == 302 and found.fallback_reason is None
    assert found.source == "Electricity Maps v3 latest, zone DE (lifecycle), 2024-05-01T12:00:00Z"
    seen = server.requests[0]
    assert seen.headers["auth-token"] == KEY and seen.query == {"zone": ["DE"]}


def test_history_skips_null_hours(em: ElectricityMapsProvider) -> None:
    s = em.series("DE", NOW - timedelta(hours=3), NOW)
    assert s.g_per_kwh == (310, 305) and s.start == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert s.fallback_reason is None and "history" in s.source


def test_past_range_for_older_periods(em: ElectricityMapsProvider, server: FakeServer) -> None:
    start, end = datetime(2024, 1, 10, tzinfo=UTC), datetime(2024, 1, 10, 4, tzinfo=UTC)
    s = em.series("FR", start, end)
    assert s.mean_over(start, end) == (pytest.approx((41 + 43 + 47 + 52) / 4), 1.0)
    assert server.requests[0].query == {
        "zone": ["FR"],
        "start": ["2024-01-10T00:00:00Z"],
        "end": ["2024-01-10T04:00:00Z"],
    }
    at = em.intensity("FR", datetime(2024, 1, 10, 2, 30, tzinfo=UTC))
    assert at.g_per_kwh == 47


def test_forecast_is_clipped_to_the_range(em: ElectricityMapsProvider) -> None:
    s = em.forecast("DE", datetime(2024, 5, 1, 14, tzinfo=UTC), datetime(2024, 5, 1, 16, tzinfo=UTC))
    assert s.g_per_kwh == (250, 210) and "forecast" in s.source
    assert em.intensity("DE", datetime(2024, 5, 1, 15, 30, tzinfo=UTC)).g_per_kwh == 210  # future: forecast


def test_answers_are_cached_on_disk_without_the_key(
    em: ElectricityMapsProvider, server: FakeServer, wattprint_env: Path
) -> None:
    assert (
        em.intensity("DE").g_per_kwh == ElectricityMapsProvider(base_url=server.url, **FAST).intensity("DE").g_per_kwh
    )
    assert len(server.requests) == 1
    files = list((wattprint_env / "cache" / "electricitymaps").glob("*.json"))
    assert len(files) == 1 and KEY not in files[0].read_text()
    ElectricityMapsProvider(base_url=server.url, cache=False, **FAST).intensity("DE")
    assert len(server.requests) == 2


def test_base_url_from_the_environment(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELECTRICITYMAPS_API_KEY", KEY)
    monkeypatch.setenv("WATTPRINT_ELECTRICITYMAPS_URL", server.url)
    server.routes["/v3/carbon-intensity/latest"] = Reply.fixture("em_latest.json")
    assert get_provider("electricitymaps", **FAST).intensity("DE").g_per_kwh == 302


def test_missing_key_falls_back_without_a_request(server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    p = ElectricityMapsProvider(base_url=server.url, **FAST)
    found = p.intensity("DE")
    assert server.requests == []
    assert found.g_per_kwh == StaticProvider().intensity("DE").g_per_kwh
    assert found.fallback_reason == (
        "live provider electricitymaps failed (ELECTRICITYMAPS_API_KEY is not set); bundled yearly average for DE used"
    )
    assert [r.levelname for r in caplog.records] == ["WARNING"]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(500), "HTTP 500 (2 attempts)"),
        (Reply(429), "HTTP 429 (2 attempts)"),
        (Reply(200, b"{}", delay_s=1.0), "timeout after 0.2 s (2 attempts)"),
        (Reply(200, b"<html>oops"), "malformed response: body is not JSON"),
        (Reply.json({"zone": "DE", "carbonIntensity": "high", "datetime": "x"}), "malformed response"),
        (Reply.json({"zone": "DE", "carbonIntensity": 300, "datetime": "yesterday"}), "bad timestamp"),
        (Reply.json([1, 2]), "malformed response: not an object"),
    ],
)
def test_failures_fall_back_to_bundled_data(
    em: ElectricityMapsProvider, server: FakeServer, reply: Reply, reason: str
) -> None:
    server.routes["/v3/carbon-intensity/latest"] = reply
    found = em.intensity("DE")
    assert found.region == "DE" and found.g_per_kwh == StaticProvider().intensity("DE").g_per_kwh
    assert reason in (found.fallback_reason or "")
    s = em.forecast("DE", NOW, NOW + timedelta(hours=2)) if reply.status == 200 else None
    if s is not None:
        assert s.fallback_reason is None  # only the broken endpoint falls back


def test_series_fallback_is_a_constant_over_the_range(em: ElectricityMapsProvider, server: FakeServer) -> None:
    server.routes["/v3/carbon-intensity/past-range"] = Reply(502)
    start, end = datetime(2024, 1, 10, tzinfo=UTC), datetime(2024, 1, 11, tzinfo=UTC)
    s = em.series("US-NY-NYIS", start, end)
    assert (s.start, s.end, s.region) == (start, end, "US-NY")
    assert "HTTP 502" in (s.fallback_reason or "") and "'US-NY-NYIS' mapped to it" in (s.fallback_reason or "")
    empty = em.forecast("DE", datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC))
    assert "no data for the requested range" in (empty.fallback_reason or "")


def test_the_key_never_leaks(em: ElectricityMapsProvider, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f'{{"message": "bad token {KEY}"}}'.encode()
    results = []
    for reply in (Reply(401, echo), Reply(500, echo), Reply(200, echo[:-3]), Reply(200, b"{}", delay_s=1.0)):
        server.routes["/v3/carbon-intensity/latest"] = reply
        server.routes["/v3/carbon-intensity/forecast"] = reply
        results.append(em.intensity("DE"))
        results.append(em.forecast("DE", NOW, NOW + timedelta(hours=1)))
    text = " ".join(repr(r) for r in results) + " ".join(r.getMessage() for r in caplog.records)
    assert all(r.fallback_reason for r in results)
    assert KEY not in text and "em-test-key" not in text
    assert any(r.headers.get("auth-token") == KEY for r in server.requests)  # it was really sent


def test_unexpected_errors_inside_the_provider_fall_back(
    em: ElectricityMapsProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kw: object) -> None:
        raise RuntimeError(f"internal {KEY}")

    monkeypatch.setattr(em.http, "get_json", boom)
    found = em.intensity("DE")
    assert found.fallback_reason is not None and "unexpected RuntimeError" in found.fallback_reason
    assert KEY not in found.fallback_reason
