"""The contract of carbon-intensity providers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Intensity:
    """Grid carbon intensity for a region, with where the figure came from."""

    region: str
    g_per_kwh: float
    source: str
    #: PUE usually applied where this region is a data centre of a known provider, else None
    default_pue: float | None = None


@runtime_checkable
class IntensityProvider(Protocol):
    name: str

    def intensity(self, region: str, at: datetime | None = None) -> Intensity:
        """Intensity of `region` at `at` (None: now or the provider's yearly figure)."""
        ...
