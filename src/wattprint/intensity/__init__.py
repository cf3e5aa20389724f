"""Where gCO2e/kWh comes from: bundled averages, a user trace, or a live API (see `get_provider`).

Cheap to import: a provider module (and httpx or pyarrow) is loaded only when that provider is asked for.
"""

from __future__ import annotations

from typing import Any

from wattprint.errors import WattprintInputError
from wattprint.intensity.base import Intensity, IntensityProvider, IntensitySeries

PROVIDERS = ("static", "trace", "electricitymaps", "watttime", "ukgrid")

__all__ = ["PROVIDERS", "Intensity", "IntensityProvider", "IntensitySeries", "get_provider"]


def get_provider(name: str | None = None, **kw: Any) -> IntensityProvider:
    """The provider called `name` (None: "static", the offline default), built with `kw`.

    "trace" needs `path=` (and takes region, time_column, value_column, tz); the live ones take
    base_url, timeout_s, retries, backoff_s, cache_dir, cache and fallback_region.
    """
    key = (name or "static").strip().lower()
    if key == "static":
        from wattprint.intensity.static import StaticProvider

        return StaticProvider(**kw)
    if key == "trace":
        from wattprint.intensity.trace import TraceProvider

        if kw.get("path") is None:
            raise WattprintInputError("trace", "the trace provider needs a file path (CSV or Parquet)")
        return TraceProvider(**kw)
    if key == "electricitymaps":
        from wattprint.intensity.electricitymaps import ElectricityMapsProvider

        return ElectricityMapsProvider(**kw)
    if key == "watttime":
        from wattprint.intensity.watttime import WattTimeProvider

        return WattTimeProvider(**kw)
    if key == "ukgrid":
        from wattprint.intensity.ukgrid import UKGridProvider

        return UKGridProvider(**kw)
    raise WattprintInputError(
        "provider", f"unknown intensity provider {name!r}; expected one of {', '.join(PROVIDERS)}"
    )
