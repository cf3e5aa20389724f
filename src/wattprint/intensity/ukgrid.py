"""UK Carbon Intensity API (NESO, api.carbonintensity.org.uk): GB national intensity, no key needed.

Half-hourly periods with `from`/`to`; past periods carry an `actual` estimate, future ones only a
`forecast`. Series use the actual where published and the forecast otherwise (the source says which);
`forecast` uses the fw48h endpoint. The base URL can be changed with WATTPRINT_UKGRID_URL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from wattprint.errors import ProviderError, WattprintInputError
from wattprint.intensity.base import Intensity, IntensitySeries
from wattprint.intensity.live import (
    TTL_FORECAST_S,
    TTL_LATEST_S,
    TTL_PAST_S,
    LiveProvider,
    chunks,
    parse_time,
    parse_value,
    utcnow,
)

Row = tuple[datetime, datetime, float]
REGIONS = frozenset({"GB", "GBR", "UK"})
#: the API serves at most 14 days per from/to request
RANGE_MAX = timedelta(days=14)


def _path_time(value: datetime) -> str:
    """The API's path timestamp: 2024-05-01T12:00Z."""
    return value.strftime("%Y-%m-%dT%H:%MZ")


class UKGridProvider(LiveProvider):
    """Great Britain's national carbon intensity; bundled GB figure when the API fails."""

    name = "ukgrid"
    label = "UK Carbon Intensity API"
    default_url = "https://api.carbonintensity.org.uk"
    url_env = "WATTPRINT_UKGRID_URL"

    def _check_region(self, region: str) -> str:
        if region.strip().upper() not in REGIONS:
            message = f"the UK Carbon Intensity API covers Great Britain only; got {region!r}, expected GB"
            raise WattprintInputError("region", message)
        return "GB"

    def _fallback_grid(self, region: str) -> str | None:
        return self.fallback_region or "GB"

    def _periods(self, body: Any, use_actual: bool) -> tuple[list[Row], set[str]]:
        """(from, to, value) rows of a response, and which kinds of value were used."""
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ProviderError("malformed response: no 'data' list")
        rows: list[Row] = []
        kinds: set[str] = set()
        for item in items:
            block = item.get("intensity") if isinstance(item, dict) else None
            if not isinstance(block, dict):
                raise ProviderError("malformed response: period without 'intensity'")
            kind = "actual" if use_actual and block.get("actual") is not None else "forecast"
            if block.get(kind) is None:
                continue  # a period not yet forecast
            lo, hi = parse_time(item.get("from")), parse_time(item.get("to"))
            if hi <= lo:
                raise ProviderError("malformed response: period ends before it starts")
            rows.append((lo, hi, parse_value(block[kind])))
            kinds.add(kind)
        return rows, kinds

    def _get(self, path: str, ttl_s: float, use_actual: bool, what: str) -> IntensitySeries:
        rows, kinds = self._periods(self.http.get_json(path, cache_ttl_s=self._ttl(ttl_s)), use_actual)
        return _series(rows, kinds, what)

    def _live_intensity(self, region: str, at: datetime | None) -> Intensity:
        now = utcnow()
        if at is None or abs((now - at).total_seconds()) < 1800:
            series = self._get("/intensity", TTL_LATEST_S, True, "current")
            if not series.starts:
                raise ProviderError("no data for the requested range")
            return Intensity("GB", series.g_per_kwh[-1], series.source)
        fetch = self._live_forecast if at > now else self._live_series
        series = fetch(region, at - timedelta(hours=1), at + timedelta(hours=1))
        value = series.at(at)
        if value is None:
            raise ProviderError("no data at the requested time")
        return Intensity("GB", value, series.source)

    def _live_series(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        rows: list[Row] = []
        kinds: set[str] = set()
        for lo, hi in chunks(start, end, RANGE_MAX):
            path = f"/intensity/{_path_time(lo)}/{_path_time(hi)}"
            body = self.http.get_json(path, cache_ttl_s=self._ttl(TTL_PAST_S))
            part, part_kinds = self._periods(body, True)
            rows += part
            kinds |= part_kinds
        return _series(rows, kinds, "from/to").clip(start, end)

    def _live_forecast(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        path = f"/intensity/{_path_time(start)}/fw48h"
        return self._get(path, TTL_FORECAST_S, False, "fw48h").clip(start, end)


def _series(rows: list[Row], kinds: set[str], what: str) -> IntensitySeries:
    """Sorted periods without overlaps (request boundaries may repeat one) as a series."""
    kept: list[Row] = []
    for row in sorted(rows):
        if not kept or row[0] >= kept[-1][1]:
            kept.append(row)
    values = " and ".join(sorted(kinds)) or "no"
    source = f"NESO Carbon Intensity API {what}, GB national, {values} values"
    return IntensitySeries(
        "GB", tuple(r[0] for r in kept), tuple(r[1] for r in kept), tuple(r[2] for r in kept), source
    )
