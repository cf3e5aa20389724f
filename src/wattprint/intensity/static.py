"""Bundled yearly averages: countries (ISO alpha-2/alpha-3), US states ("US-CA"), cloud regions.

Google Cloud regions carry Google's published grid figure; AWS ("aws:eu-west-1") and Azure
("azure:westeurope") regions are mapped to the grid they sit in (country, or US state) and take that
grid's bundled figure. The offline default provider. Region codes are matched case-insensitively;
an unknown code raises `WattprintInputError` with close matches, never a silent guess.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import lru_cache

from wattprint.data import read_table
from wattprint.errors import WattprintInputError
from wattprint.intensity.base import Intensity, IntensitySeries

WORLD_REGION = "WORLD"
WORLD_G_PER_KWH = 480.0
WORLD_SOURCE = "Ember Global Electricity Review 2024, world average 2023"
#: Fleet-wide PUE each provider publishes (sources in data/SOURCES.md): Google 1.10 (2023 environmental
#: report), AWS 1.15 (global, 2023 and 2024), Microsoft 1.18 (global operating average of its datacenters)
CLOUD_DEFAULT_PUE = {"gcp": 1.10, "aws": 1.15, "azure": 1.18}
#: cloud providers whose regions are mapped to the grid they sit in: provider -> (table, display name)
GRID_MAPPED = {"aws": ("aws_region_grid.csv", "AWS"), "azure": ("azure_region_grid.csv", "Azure")}
ACCEPTED = (
    "an ISO country code (FR or FRA), a US state (US-CA), a cloud region "
    "(gcp:europe-west9, aws:eu-west-1, azure:westeurope) or WORLD"
)


@lru_cache(maxsize=1)
def _index() -> dict[str, Intensity]:
    index: dict[str, Intensity] = {
        WORLD_REGION: Intensity(WORLD_REGION, WORLD_G_PER_KWH, WORLD_SOURCE),
    }
    for row in read_table("country_intensity.csv"):
        src = f"Our World in Data / Ember, {row['name']} {row['year']} yearly average"
        value = float(row["intensity_g_per_kwh"])
        index[row["alpha2"].upper()] = Intensity(row["alpha2"].upper(), value, src)
        if row["alpha3"]:
            index[row["alpha3"].upper()] = Intensity(row["alpha2"].upper(), value, src)
    for row in read_table("us_state_intensity.csv"):
        code = f"US-{row['code'].upper()}"
        src = f"US EPA eGRID{row['year']}, {row['name']} output emission rate"
        index[code] = Intensity(code, float(row["intensity_g_per_kwh"]), src)
    for row in read_table("cloud_region_intensity.csv"):
        provider = row["provider"].lower()
        code = f"{provider}:{row['region'].lower()}"
        src = f"{provider.upper()} region {row['region']} ({row['location']}) published grid intensity"
        value = float(row["intensity_g_per_kwh"])
        index[code.upper()] = Intensity(code, value, src, CLOUD_DEFAULT_PUE.get(provider))
    for provider, (table, label) in GRID_MAPPED.items():
        for row in read_table(table):
            grid = index[row["grid"].upper()]  # a KeyError here is a broken bundled table, caught by tests
            code = f"{provider}:{row['region'].lower()}"
            src = f"{label} {row['region']} ({row['location']}) mapped to {grid.region} grid: {grid.source}"
            index[code.upper()] = Intensity(code, grid.g_per_kwh, src, CLOUD_DEFAULT_PUE[provider])
    return index


class StaticProvider:
    """Yearly averages bundled with the package; no network."""

    name = "static"

    def intensity(self, region: str, at: datetime | None = None, field: str = "region") -> Intensity:
        key = region.strip().upper()
        found = _index().get(key)
        if found is None:
            import difflib  # only on the error path

            close = difflib.get_close_matches(key, _index().keys(), n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise WattprintInputError(field, f"unknown region {region!r}{hint}; expected {ACCEPTED}")
        return found

    def series(self, region: str, start: datetime, end: datetime, field: str = "region") -> IntensitySeries:
        """The yearly average as a constant over [start, end): all a bundled figure can say."""
        found = self.intensity(region, field=field)
        return IntensitySeries.constant(found.region, start, end, found.g_per_kwh, found.source)

    def forecast(self, region: str, start: datetime, end: datetime, field: str = "region") -> IntensitySeries:
        """Same as `series`: the yearly average is the only forecast bundled data can give."""
        return self.series(region, start, end, field=field)

    def regions(self) -> list[str]:
        return sorted(_index())


def fallback_intensity(region: str, reason: str, grid: str | None = None) -> Intensity:
    """Bundled figure standing in for a failed live provider, with `fallback_reason` set.

    `grid` is an explicit bundled code for `region` (a live zone code may not be one). Otherwise the
    region itself, then its shorter prefixes ("US-CAL-CISO" -> "US-CAL" -> "US"), then the world
    average; the reason always names what was used, so the figure is never a silent guess.
    """
    index = _index()
    candidates = [grid] if grid else []
    parts = region.strip().upper().split("-")
    candidates += ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
    for code in candidates:
        found = index.get(code.strip().upper()) if code else None
        if found is not None:
            break
    else:
        found = index[WORLD_REGION]
    used = f"bundled yearly average for {found.region}"
    if found.region.upper() != region.strip().upper():
        used += f" (region {region!r} mapped to it)"
    return replace(found, fallback_reason=f"{reason}; {used} used")


def fallback_series(
    region: str, start: datetime, end: datetime, reason: str, grid: str | None = None
) -> IntensitySeries:
    """`fallback_intensity` as a constant series over [start, end)."""
    found = fallback_intensity(region, reason, grid)
    return IntensitySeries.constant(
        found.region, start, end, found.g_per_kwh, found.source, fallback_reason=found.fallback_reason
    )
