"""Electricity Maps API v3: latest, history (last 24 h), forecast and past-range carbon intensity.

Zones are Electricity Maps zone codes ("DE", "FR", "US-CAL-CISO"). The key comes from the environment
variable ELECTRICITYMAPS_API_KEY only and travels in the `auth-token` header; the base URL can be
changed with WATTPRINT_ELECTRICITYMAPS_URL (tests point it at a local server).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from wattprint.errors import ProviderError
from wattprint.intensity.base import Intensity, IntensitySeries
from wattprint.intensity.live import (
    TTL_FORECAST_S,
    TTL_LATEST_S,
    TTL_PAST_S,
    LiveProvider,
    chunks,
    iso_z,
    parse_time,
    parse_value,
    utcnow,
)

KEY_ENV = "ELECTRICITYMAPS_API_KEY"
#: past-range serves at most 10 days of hourly data per request
PAST_RANGE_MAX = timedelta(days=10)
HISTORY_SPAN = timedelta(hours=24)


class ElectricityMapsProvider(LiveProvider):
    """Live and historical intensity from Electricity Maps; bundled data when it fails."""

    name = "electricitymaps"
    label = "Electricity Maps"
    default_url = "https://api.electricitymaps.com"
    url_env = "WATTPRINT_ELECTRICITYMAPS_URL"
    secret_envs = (KEY_ENV,)

    def _get(self, path: str, params: dict[str, str], ttl_s: float) -> Any:
        headers = {"auth-token": self._secret(KEY_ENV)}
        return self.http.get_json(path, params, headers=headers, cache_ttl_s=self._ttl(ttl_s))

    def _points(self, zone: str, items: Any, what: str) -> IntensitySeries:
        if not isinstance(items, list):
            raise ProviderError(f"malformed response: no {what} list")
        times, values = [], []
        for item in items:
            if not isinstance(item, dict):
                raise ProviderError(f"malformed response: {what} entry is not an object")
            if item.get("carbonIntensity") is None:
                continue  # the API leaves hours without data as null
            times.append(parse_time(item.get("datetime")))
            values.append(parse_value(item.get("carbonIntensity")))
        kind = _factor_type(items)
        source = f"Electricity Maps v3 {what}, zone {zone} ({kind})"
        return IntensitySeries.from_points(zone, times, values, source)

    def _live_intensity(self, region: str, at: datetime | None) -> Intensity:
        now = utcnow()
        if at is None or abs((now - at).total_seconds()) < 3600:
            body = self._get("/v3/carbon-intensity/latest", {"zone": region}, TTL_LATEST_S)
            if not isinstance(body, dict):
                raise ProviderError("malformed response: not an object")
            series = self._points(region, [body], "latest")
            if not series.starts:
                raise ProviderError("no data for the requested range")
            return Intensity(region, series.g_per_kwh[0], f"{series.source}, {iso_z(series.starts[0])}")
        return self._intensity_around(region, at, now)

    def _live_series(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        if start >= utcnow() - HISTORY_SPAN:
            body = self._get("/v3/carbon-intensity/history", {"zone": region}, TTL_LATEST_S)
            return self._points(region, _field(body, "history"), "history").clip(start, end)
        items: list[Any] = []
        for lo, hi in chunks(start, end, PAST_RANGE_MAX):
            params = {"zone": region, "start": iso_z(lo), "end": iso_z(hi)}
            part = _field(self._get("/v3/carbon-intensity/past-range", params, TTL_PAST_S), "data")
            if not isinstance(part, list):
                raise ProviderError("malformed response: no data list")
            items.extend(part)
        return self._points(region, items, "past-range").clip(start, end)

    def _live_forecast(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        body = self._get("/v3/carbon-intensity/forecast", {"zone": region}, TTL_FORECAST_S)
        return self._points(region, _field(body, "forecast"), "forecast").clip(start, end)


def _field(body: Any, name: str) -> Any:
    if not isinstance(body, dict) or name not in body:
        raise ProviderError(f"malformed response: no {name!r} field")
    return body[name]


def _factor_type(items: list[Any]) -> str:
    kinds = {str(i.get("emissionFactorType") or "") for i in items if isinstance(i, dict)} - {""}
    return "/".join(sorted(kinds)) or "lifecycle"
