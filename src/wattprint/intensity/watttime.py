"""WattTime API v3: marginal operating emission rate (signal co2_moer), forecast and historical.

WattTime publishes lbs CO2/MWh; values are converted to gCO2/kWh. The figure is MARGINAL (the
generator that responds to extra load), not the grid average the bundled tables give, and the source
text says so. Credentials come from WATTTIME_USERNAME / WATTTIME_PASSWORD only: a login with basic
auth returns a bearer token (kept in memory, never cached on disk). Regions are WattTime codes
("CAISO_NORTH"); pass `fallback_region` to name the bundled grid that stands in when the API fails.
"""

from __future__ import annotations

import base64
import time
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
from wattprint.units import lbs_per_mwh_to_g_per_kwh

USER_ENV = "WATTTIME_USERNAME"
PASSWORD_ENV = "WATTTIME_PASSWORD"
SIGNAL = "co2_moer"
#: tokens last 30 minutes; renew a little before
TOKEN_LIFE_S = 25 * 60
HISTORICAL_MAX = timedelta(days=30)
#: bundled grid for well-known WattTime region prefixes (others: `fallback_region`, the code itself, WORLD)
PREFIX_GRID = {"CAISO": "US-CA", "ERCOT": "US-TX", "NYISO": "US-NY", "BPA": "US-OR"}


class WattTimeProvider(LiveProvider):
    """Marginal emissions from WattTime; bundled data when it fails."""

    name = "watttime"
    label = "WattTime"
    default_url = "https://api.watttime.org"
    url_env = "WATTPRINT_WATTTIME_URL"
    secret_envs = (PASSWORD_ENV,)

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._token: str | None = None
        self._token_at = 0.0

    def _fallback_grid(self, region: str) -> str | None:
        if self.fallback_region:
            return self.fallback_region
        return PREFIX_GRID.get(region.upper().split("_")[0])

    def _login(self) -> str:
        if self._token and time.monotonic() - self._token_at < TOKEN_LIFE_S:
            return self._token
        user, password = self._secret(USER_ENV, redact=False), self._secret(PASSWORD_ENV)
        self.http.add_secret(base64.b64encode(f"{user}:{password}".encode()).decode())
        body = self.http.get_json("/login", auth=(user, password))
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError("malformed response: login returned no token")
        self.http.add_secret(token)
        self._token, self._token_at = token, time.monotonic()
        return token

    def _get(self, path: str, params: dict[str, str], ttl_s: float) -> Any:
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {self._login()}"}
            try:
                return self.http.get_json(path, params, headers=headers, cache_ttl_s=self._ttl(ttl_s))
            except ProviderError as exc:
                if attempt == 0 and exc.reason.startswith("HTTP 401"):
                    self._token = None  # expired token: log in once more
                    continue
                raise
        raise ProviderError("HTTP 401")  # pragma: no cover - the loop returns or raises

    def _points(self, region: str, body: Any, what: str) -> IntensitySeries:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ProviderError("malformed response: no 'data' list")
        meta = body["meta"] if isinstance(body.get("meta"), dict) else {}
        units = str(meta.get("units") or "lbs_co2_per_mwh")
        if units.lower() != "lbs_co2_per_mwh":
            raise ProviderError(f"malformed response: unexpected units {units[:30]!r}")
        times, values = [], []
        for item in body["data"]:
            if not isinstance(item, dict):
                raise ProviderError("malformed response: data entry is not an object")
            times.append(parse_time(item.get("point_time")))
            values.append(lbs_per_mwh_to_g_per_kwh(parse_value(item.get("value"))))
        source = f"WattTime v3 {what}, {SIGNAL} (marginal emissions), region {region}, converted from lbs/MWh"
        return IntensitySeries.from_points(region, times, values, source)

    def _live_intensity(self, region: str, at: datetime | None) -> Intensity:
        now = utcnow()
        if at is None or abs((now - at).total_seconds()) < 600:
            params = {"region": region, "signal_type": SIGNAL, "horizon_hours": "0"}
            series = self._points(region, self._get("/v3/forecast", params, TTL_LATEST_S), "forecast")
            if not series.starts:
                raise ProviderError("no data for the requested range")
            return Intensity(region, series.g_per_kwh[0], f"{series.source}, {iso_z(series.starts[0])}")
        return self._intensity_around(region, at, now)

    def _live_series(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        times: list[datetime] = []
        values: list[float] = []
        source = ""
        for lo, hi in chunks(start, end, HISTORICAL_MAX):
            params = {"region": region, "signal_type": SIGNAL, "start": iso_z(lo), "end": iso_z(hi)}
            part = self._points(region, self._get("/v3/historical", params, TTL_PAST_S), "historical")
            times += part.starts
            values += part.g_per_kwh
            source = part.source
        return IntensitySeries.from_points(region, times, values, source).clip(start, end)

    def _live_forecast(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        params = {"region": region, "signal_type": SIGNAL, "horizon_hours": "72"}
        body = self._get("/v3/forecast", params, TTL_FORECAST_S)
        return self._points(region, body, "forecast").clip(start, end)
