"""Bundled yearly averages: countries (ISO alpha-2/alpha-3), US states ("US-CA"), cloud regions.

The offline default provider. Region codes are matched case-insensitively; an unknown code raises
`WattprintInputError` with close matches, never a silent guess.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from functools import lru_cache

from wattprint.data import read_table
from wattprint.errors import WattprintInputError
from wattprint.intensity.base import Intensity

WORLD_REGION = "WORLD"
WORLD_G_PER_KWH = 480.0
WORLD_SOURCE = "Ember Global Electricity Review 2024, world average 2023"
#: Google reports a fleet-wide trailing twelve-month PUE of 1.10 (2023 environmental report)
CLOUD_DEFAULT_PUE = {"gcp": 1.10}
ACCEPTED = "an ISO country code (FR or FRA), a US state (US-CA), a cloud region (gcp:europe-west9) or WORLD"


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
        index[code.upper()] = Intensity(code, float(row["intensity_g_per_kwh"]), src, CLOUD_DEFAULT_PUE.get(provider))
    return index


class StaticProvider:
    """Yearly averages bundled with the package; no network."""

    name = "static"

    def intensity(self, region: str, at: datetime | None = None, field: str = "region") -> Intensity:
        key = region.strip().upper()
        found = _index().get(key)
        if found is None:
            close = difflib.get_close_matches(key, _index().keys(), n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise WattprintInputError(field, f"unknown region {region!r}{hint}; expected {ACCEPTED}")
        return found

    def regions(self) -> list[str]:
        return sorted(_index())
