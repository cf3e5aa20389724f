"""UK Carbon Intensity API client: current, from/to range, fw48h forecast, GB only."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.intensity.fakeserver import FAST, FakeServer, Reply
from wattprint.errors import WattprintInputError
from wattprint.intensity import get_provider, ukgrid
from wattprint.intensity.static import StaticProvider
from wattprint.intensity.ukgrid import UKGridProvider

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, 10, tzinfo=UTC)


@pytest.fixture
def uk(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> UKGridProvider:
    monkeypatch.setattr(ukgrid, "utcnow", lambda: NOW)
    server.routes["/intensity"] = Reply.fixture("uk_intensity.json")
    server.prefixes["/intensity/2024-05-01T12:00Z/fw48h"] = Reply.fixture("uk_fw48h.json")
    server.prefixes["/intensity/2024-01-"] = Reply.fixture("uk_range.json")
    return UKGridProvider(base_url=server.url, **FAST)


def test_current_uses_the_forecast_when_no_actual_yet(uk: UKGridProvider, server: FakeServer) -> None:
    found = uk.intensity("uk")
    assert (found.region, found.g_per_kwh) == ("GB", 120)
    assert found.source == "NESO Carbon Intensity API current, GB national, forecast values"
    assert server.requests[0].headers.get("authorization") is None  # no key for this API


def test_range_prefers_actual_values(uk: UKGridProvider, server: FakeServer) -> None:
    start, end = datetime(2024, 1, 10, tzinfo=UTC), datetime(2024, 1, 10, 2, tzinfo=UTC)
    s = uk.series("GB", start, end)
    assert s.g_per_kwh == (146, 140, 141, 132) and "actual and forecast values" in s.source
    assert server.paths() == ["/intensity/2024-01-10T00:00Z/2024-01-10T02:00Z"]
    assert uk.intensity("GB", datetime(2024, 1, 10, 0, 40, tzinfo=UTC)).g_per_kwh == 140


def test_fw48h_forecast(uk: UKGridProvider, server: FakeServer) -> None:
    s = uk.forecast("GB", datetime(2024, 5, 1, 12, tzinfo=UTC), datetime(2024, 5, 1, 13, 15, tzinfo=UTC))
    assert s.g_per_kwh == (120, 110, 95) and s.end == datetime(2024, 5, 1, 13, 15, tzinfo=UTC)
    assert server.paths() == ["/intensity/2024-05-01T12:00Z/fw48h"] and "fw48h" in s.source


def test_only_great_britain() -> None:
    with pytest.raises(WattprintInputError, match="region: the UK Carbon Intensity API covers Great Britain only"):
        get_provider("ukgrid").intensity("FR")


@pytest.mark.parametrize(
    "reply",
    [
        Reply(503),
        Reply(200, b"{}", delay_s=1.0),
        Reply(200, b"not json"),
        Reply.json({"data": [{"from": "2024-05-01T12:00Z", "to": "2024-05-01T12:30Z"}]}),
        Reply.json({"data": [{"from": "x", "to": "y", "intensity": {"forecast": 5}}]}),
        Reply.json({"data": []}),
    ],
)
def test_failures_fall_back_to_the_bundled_gb_figure(uk: UKGridProvider, server: FakeServer, reply: Reply) -> None:
    server.routes["/intensity"] = reply
    found = uk.intensity("GB")
    assert found.g_per_kwh == StaticProvider().intensity("GB").g_per_kwh
    assert (found.fallback_reason or "").startswith("live provider ukgrid failed (")
    s = uk.series("GB", NOW - timedelta(hours=1), NOW)  # not served: 404
    assert s.fallback_reason is not None and "HTTP 404" in s.fallback_reason
