"""Where gCO2e/kWh comes from: bundled averages, a user trace, or a live API (see `get_provider`).

Cheap to import: a provider module (and httpx or pyarrow) is loaded only when that provider is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from wattprint.config import INTENSITY_PROVIDERS
from wattprint.errors import WattprintInputError
from wattprint.intensity.base import Intensity, IntensityProvider, IntensitySeries

# name -> (module, class): the one table of intensity providers (names as settings accept them)
_CLASSES: dict[str, tuple[str, str]] = {
    "static": ("wattprint.intensity.static", "StaticProvider"),
    "trace": ("wattprint.intensity.trace", "TraceProvider"),
    "electricitymaps": ("wattprint.intensity.electricitymaps", "ElectricityMapsProvider"),
    "watttime": ("wattprint.intensity.watttime", "WattTimeProvider"),
    "ukgrid": ("wattprint.intensity.ukgrid", "UKGridProvider"),
}
PROVIDERS: tuple[str, ...] = INTENSITY_PROVIDERS

__all__ = ["PROVIDERS", "Intensity", "IntensityProvider", "IntensitySeries", "get_provider"]


def get_provider(name: str | None = None, **kw: Any) -> IntensityProvider:
    """The provider called `name` (None: "static", the offline default), built with `kw`.

    "trace" needs `path=` (and takes region, time_column, value_column, tz); the live ones take
    base_url, timeout_s, retries, backoff_s, cache_dir, cache and fallback_region.
    """
    key = (name or "static").strip().lower()
    if key not in _CLASSES:
        raise WattprintInputError(
            "provider", f"unknown intensity provider {name!r}; expected one of {', '.join(PROVIDERS)}"
        )
    if key == "trace" and kw.get("path") is None:
        raise WattprintInputError("trace", "the trace provider needs a file path (CSV or Parquet)")
    module, cls = _CLASSES[key]
    provider: IntensityProvider = getattr(importlib.import_module(module), cls)(**kw)
    return provider
