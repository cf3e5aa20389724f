from __future__ import annotations

import csv
import json
from datetime import datetime, timezone

import pytest

from tests.conftest import shared_file
from wattprint.errors import WattprintInputError
from wattprint.intensity.static import WORLD_G_PER_KWH, StaticProvider, fallback_intensity


def test_country_codes_alpha2_and_alpha3_match_reference() -> None:
    with shared_file("reference", "country-intensity-owid.csv").open() as f:
        rows = list(csv.DictReader(f))
    p = StaticProvider()
    for row in rows:
        expected = float(row["Carbon intensity of electricity (gCO2eq/kWh)"])
        assert p.intensity(row["alpha-2"]).g_per_kwh == pytest.approx(expected, abs=1e-3)
        assert p.intensity(row["Code"].lower()).g_per_kwh == pytest.approx(expected, abs=1e-3)
        assert p.intensity(row["Code"]).region == row["alpha-2"]


def test_us_state_is_converted_from_lbs_per_mwh() -> None:
    data = json.loads(shared_file("reference", "us-state-egrid2023.json").read_text())
    found = StaticProvider().intensity("US-CA")
    assert found.g_per_kwh == pytest.approx(data["california"]["emissions"] * 0.45359237, abs=1e-3)
    assert "eGRID" in found.source


def test_cloud_region_and_its_pue() -> None:
    found = StaticProvider().intensity("gcp:europe-west9")
    assert found.g_per_kwh == 34.0 and found.default_pue == 1.10


def test_world_default() -> None:
    assert StaticProvider().intensity("world").g_per_kwh == WORLD_G_PER_KWH


def test_unknown_region_suggests() -> None:
    with pytest.raises(WattprintInputError, match=r"--region: unknown region 'FRA1'.*did you mean"):
        StaticProvider().intensity("FRA1", field="--region")


@pytest.mark.parametrize(
    ("table", "provider", "pue"),
    [("aws_region_grid.csv", "aws", 1.15), ("azure_region_grid.csv", "azure", 1.18)],
)
def test_every_aws_and_azure_region_takes_its_grid_figure(table: str, provider: str, pue: float) -> None:
    from wattprint.data import read_table

    p = StaticProvider()
    rows = read_table(table)
    assert len(rows) >= 25
    for row in rows:
        found = p.intensity(f"{provider}:{row['region']}")
        grid = p.intensity(row["grid"])
        assert found.g_per_kwh == grid.g_per_kwh and found.default_pue == pue
        assert f"mapped to {grid.region} grid: {grid.source}" in found.source


def test_aws_region_source_names_the_location_and_grid() -> None:
    found = StaticProvider().intensity("AWS:EU-WEST-1")
    assert found.region == "aws:eu-west-1"
    assert found.source.startswith("AWS eu-west-1 (Ireland) mapped to IE grid: ")
    assert StaticProvider().intensity("aws:us-east-1").g_per_kwh == StaticProvider().intensity("US-VA").g_per_kwh
    assert (
        StaticProvider().intensity("azure:westeurope").source.startswith("Azure westeurope (Netherlands) mapped to NL")
    )


def test_static_series_and_forecast_are_constant_over_the_range() -> None:
    start, end = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc)
    p = StaticProvider()
    for s in (p.series("FR", start, end), p.forecast("FR", start, end)):
        assert (s.start, s.end) == (start, end) and s.fallback_reason is None
        assert s.mean_over(start, end) == (p.intensity("FR").g_per_kwh, 1.0)
    with pytest.raises(WattprintInputError, match="unknown region"):
        p.series("nowhere", start, end)


def test_fallback_is_never_a_silent_guess() -> None:
    exact = fallback_intensity("DE", "live provider x failed (timeout)")
    assert exact.region == "DE" and exact.fallback_reason == (
        "live provider x failed (timeout); bundled yearly average for DE used"
    )
    zone = fallback_intensity("US-NY-NYIS", "down")
    assert zone.region == "US-NY" and "region 'US-NY-NYIS' mapped to it" in (zone.fallback_reason or "")
    world = fallback_intensity("CAISO_NORTH", "down")
    assert world.region == "WORLD" and world.g_per_kwh == WORLD_G_PER_KWH
    assert fallback_intensity("CAISO_NORTH", "down", grid="US-CA").region == "US-CA"
