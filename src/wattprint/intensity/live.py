"""Base of the live providers: turn any failure into bundled data with the reason stated.

A subclass implements `_live_intensity`, `_live_series` and `_live_forecast`, raising `ProviderError`
for anything that goes wrong. The public methods here never let an outage, a malformed body or a
missing key reach the caller: they log one warning (no secret in it) and return the bundled figure
for the region with `fallback_reason` set. Only bad input (`WattprintInputError`) is raised.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from wattprint.errors import ProviderError, WattprintInputError
from wattprint.intensity.base import Intensity, IntensitySeries, as_utc
from wattprint.intensity.http import HttpClient, log
from wattprint.intensity.static import fallback_intensity, fallback_series
from wattprint.redact import redact

T = TypeVar("T")

#: default cache lifetimes per kind of answer, seconds
TTL_LATEST_S = 300.0
TTL_FORECAST_S = 900.0
TTL_PAST_S = 86400.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(value: Any) -> datetime:
    """An API timestamp (ISO 8601, 'Z' allowed) as aware UTC; a naive one is UTC by API convention."""
    if not isinstance(value, str):
        raise ProviderError("malformed response: timestamp is not a string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ProviderError(f"malformed response: bad timestamp {value[:40]!r}") from None


def parse_value(value: Any) -> float:
    """An intensity from an API body: a finite number >= 0, else `ProviderError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProviderError("malformed response: intensity is not a number")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ProviderError("malformed response: intensity is not a finite number >= 0")
    return number


def iso_z(value: datetime) -> str:
    """UTC timestamp as the APIs take it: 2024-05-01T12:00:00Z."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def chunks(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive pieces of at most `size` (APIs cap the range per request)."""
    out, lo = [], start
    while lo < end:
        hi = min(lo + size, end)
        out.append((lo, hi))
        lo = hi
    return out


class LiveProvider:
    """Common behaviour of the live providers: configuration, the HTTP client and the fallback."""

    name = "live"
    label = "live provider"
    default_url = ""
    url_env = ""
    #: environment variables holding secrets, redacted from every text that leaves the provider
    secret_envs: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        cache_dir: Path | str | None = None,
        cache: bool = True,
        fallback_region: str | None = None,
    ) -> None:
        url = base_url or (os.environ.get(self.url_env) if self.url_env else None) or self.default_url
        self.http = HttpClient(
            url,
            timeout_s=timeout_s,
            retries=retries,
            backoff_s=backoff_s,
            cache_dir=cache_dir,
            namespace=self.name,
            secrets=self._env_secrets(),
        )
        self.cache = cache
        self.fallback_region = fallback_region

    def close(self) -> None:
        """Release the HTTP connection pool (the provider opens a new one if used again)."""
        self.http.close()

    def _env_secrets(self) -> list[str]:
        return [v for v in (os.environ.get(name) for name in self.secret_envs) if v]

    def _secret(self, env: str, redact: bool = True) -> str:
        """A credential from the environment (never from an argument or a file), or `ProviderError`."""
        value = os.environ.get(env, "").strip()
        if not value:
            raise ProviderError(f"{env} is not set")
        if redact:
            self.http.add_secret(value)
        return value

    def _ttl(self, seconds: float) -> float:
        return seconds if self.cache else 0.0

    # -- to implement ----------------------------------------------------------------------------
    def _live_intensity(self, region: str, at: datetime | None) -> Intensity:
        raise NotImplementedError

    def _intensity_around(self, region: str, at: datetime, now: datetime) -> Intensity:
        """Intensity at a past or future moment, from the history or forecast hour around it."""
        fetch = self._live_forecast if at > now else self._live_series
        window = fetch(region, at - timedelta(hours=1), at + timedelta(hours=1))
        value = window.at(at)
        if value is None:
            raise ProviderError(f"no data at {iso_z(at)}")
        return Intensity(region, value, f"{window.source}, {iso_z(at)}")

    def _live_series(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        raise NotImplementedError

    def _live_forecast(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        raise NotImplementedError

    def _fallback_grid(self, region: str) -> str | None:
        """Bundled code standing in for `region` when the API fails (subclasses map their zone codes)."""
        return self.fallback_region

    def _check_region(self, region: str) -> str:
        """The region as the API wants it; raise `WattprintInputError` for one it cannot serve."""
        region = region.strip()
        if not region:
            raise WattprintInputError("region", f"empty region for the {self.label} provider")
        return region

    # -- public, never failing on the provider's side -------------------------------------------
    def intensity(self, region: str, at: datetime | None = None) -> Intensity:
        """Live intensity of `region` now (`at` None) or at `at`; bundled figure on any failure."""
        region = self._check_region(region)
        at = as_utc(at) if at is not None else None
        return self._guard(region, lambda: self._live_intensity(region, at), fallback_intensity)

    def series(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        """Historical intensity over [start, end); constant bundled figure on any failure."""
        region = self._check_region(region)
        start, end = as_utc(start), as_utc(end)
        return self._guard(
            region,
            lambda: self._non_empty(self._live_series(region, start, end)),
            lambda r, why, grid: fallback_series(r, start, end, why, grid),
        )

    def forecast(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        """Forecast intensity over [start, end); constant bundled figure on any failure."""
        region = self._check_region(region)
        start, end = as_utc(start), as_utc(end)
        return self._guard(
            region,
            lambda: self._non_empty(self._live_forecast(region, start, end)),
            lambda r, why, grid: fallback_series(r, start, end, why, grid),
        )

    @staticmethod
    def _non_empty(series: IntensitySeries) -> IntensitySeries:
        if not series.starts:
            raise ProviderError("no data for the requested range")
        return series

    def _guard(self, region: str, live: Callable[[], T], fallback: Callable[[str, str, str | None], T]) -> T:
        try:
            return live()
        except WattprintInputError:
            raise
        except ProviderError as exc:
            why = exc.reason
        except Exception as exc:  # a provider fault must never fail the user's run
            why = f"unexpected {type(exc).__name__}"
        why = redact(f"live provider {self.name} failed ({why})", [*self.http.secrets, *self._env_secrets()])
        result = fallback(region, why, self._fallback_grid(region))
        log.warning("%s", getattr(result, "fallback_reason", why))
        return result
