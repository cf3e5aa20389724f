"""WattTime v3 client: login, bearer token, lbs/MWh conversion, fallback, no leaked credentials."""

from __future__ import annotations

import base64
import logging
from datetime import datetime, timedelta, timezone

import pytest

from tests.intensity.fakeserver import FAST, FakeServer, Reply
from wattprint.intensity import watttime
from wattprint.intensity.static import StaticProvider
from wattprint.intensity.watttime import WattTimeProvider
from wattprint.units import lbs_per_mwh_to_g_per_kwh

USER, PASSWORD = "wp-user", "wt-pass-Q8v3Lm2Zx"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.test-token-9f8e7d6c5b4a"
UTC = timezone.utc
NOW = datetime(2024, 5, 1, 13, 2, tzinfo=UTC)


@pytest.fixture
def wt(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> WattTimeProvider:
    monkeypatch.setenv("WATTTIME_USERNAME", USER)
    monkeypatch.setenv("WATTTIME_PASSWORD", PASSWORD)
    monkeypatch.setattr(watttime, "utcnow", lambda: NOW)
    server.routes["/login"] = Reply.fixture("wt_login.json")
    server.routes["/v3/forecast"] = Reply.fixture("wt_forecast.json")
    server.routes["/v3/historical"] = Reply.fixture("wt_historical.json")
    return WattTimeProvider(base_url=server.url, **FAST)


def test_login_then_bearer_and_conversion_from_lbs(wt: WattTimeProvider, server: FakeServer) -> None:
    found = wt.intensity("CAISO_NORTH")
    assert found.g_per_kwh == pytest.approx(900.0 * 0.45359237)
    assert "marginal" in found.source and "converted from lbs/MWh" in found.source
    login, data = server.requests
    assert login.path == "/login"
    assert login.headers["authorization"] == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert data.headers["authorization"] == f"Bearer {TOKEN}"
    assert data.query == {"region": ["CAISO_NORTH"], "signal_type": ["co2_moer"], "horizon_hours": ["0"]}
    wt.forecast("CAISO_NORTH", NOW, NOW + timedelta(hours=1))
    assert server.paths().count("/login") == 1  # the token is reused


def test_forecast_and_historical(wt: WattTimeProvider, server: FakeServer) -> None:
    f = wt.forecast("CAISO_NORTH", datetime(2024, 5, 1, 13, 5, tzinfo=UTC), datetime(2024, 5, 1, 14, tzinfo=UTC))
    assert f.g_per_kwh == tuple(lbs_per_mwh_to_g_per_kwh(v) for v in (880.0, 860.0, 840.0))
    start, end = datetime(2024, 1, 10, tzinfo=UTC), datetime(2024, 1, 10, 0, 20, tzinfo=UTC)
    h = wt.series("CAISO_NORTH", start, end)
    assert h.mean_over(start, end)[0] == pytest.approx(lbs_per_mwh_to_g_per_kwh((1000 + 950 + 920 + 1010) / 4))
    q = server.requests[-1].query
    assert q["start"] == ["2024-01-10T00:00:00Z"] and q["end"] == ["2024-01-10T00:20:00Z"]


def test_expired_token_logs_in_again(wt: WattTimeProvider, server: FakeServer) -> None:
    server.routes["/v3/forecast"] = [Reply(401), Reply.fixture("wt_forecast.json")]
    assert wt.intensity("CAISO_NORTH").fallback_reason is None
    assert server.paths() == ["/login", "/v3/forecast", "/login", "/v3/forecast"]


def test_missing_credentials_and_failures_fall_back(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    p = WattTimeProvider(base_url=server.url, **FAST)
    found = p.intensity("CAISO_NORTH")
    assert server.requests == [] and found.region == "US-CA"
    assert found.g_per_kwh == StaticProvider().intensity("US-CA").g_per_kwh
    assert "WATTTIME_USERNAME is not set" in (found.fallback_reason or "")
    assert WattTimeProvider(base_url=server.url, fallback_region="FR", **FAST).intensity("X").region == "FR"


@pytest.mark.parametrize(
    ("route", "reply", "reason"),
    [
        ("/login", Reply(403), "HTTP 403"),
        ("/login", Reply.json({"nope": 1}), "login returned no token"),
        (
            "/v3/forecast",
            Reply.json({"data": [{"point_time": "2024-05-01T13:00Z", "value": None}]}),
            "not a number",
        ),
        ("/v3/forecast", Reply.json({"data": [], "meta": {"units": "kg_per_kwh"}}), "unexpected units"),
        ("/v3/forecast", Reply(200, b"{}", delay_s=1.0), "timeout"),
    ],
)
def test_failures_fall_back(wt: WattTimeProvider, server: FakeServer, route: str, reply: Reply, reason: str) -> None:
    server.routes[route] = reply
    found = wt.intensity("CAISO_NORTH")
    assert reason in (found.fallback_reason or "") and found.region == "US-CA"


def test_credentials_and_token_never_leak(
    wt: WattTimeProvider, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    wt.cache = False  # every call reaches the server
    results = [wt.intensity("CAISO_NORTH")]
    server.routes["/v3/forecast"] = Reply(500, f'{{"error": "{TOKEN} {PASSWORD}"}}'.encode())
    results.append(wt.intensity("CAISO_NORTH"))
    results.append(wt.forecast("CAISO_NORTH", NOW, NOW + timedelta(hours=1)))
    server.routes["/login"] = Reply(200, f'{{"token": "{PASSWORD}'.encode())
    wt._token = None
    results.append(wt.intensity("CAISO_NORTH"))
    text = " ".join(repr(r) for r in results) + " ".join(r.getMessage() for r in caplog.records)
    assert sum(r.fallback_reason is not None for r in results) == 3
    for secret in (PASSWORD, TOKEN, basic):
        assert secret not in text
