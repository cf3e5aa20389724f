from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import SHARED
from wattprint.errors import WattprintInputError
from wattprint.intensity.static import WORLD_G_PER_KWH, StaticProvider


def test_country_codes_alpha2_and_alpha3_match_reference() -> None:
    with (SHARED / "reference" / "country-intensity-owid.csv").open() as f:
        rows = list(csv.DictReader(f))
    p = StaticProvider()
    for row in rows:
        expected = float(row["Carbon intensity of electricity (gCO2eq/kWh)"])
        assert p.intensity(row["alpha-2"]).g_per_kwh == pytest.approx(expected, abs=1e-3)
        assert p.intensity(row["Code"].lower()).g_per_kwh == pytest.approx(expected, abs=1e-3)
        assert p.intensity(row["Code"]).region == row["alpha-2"]


def test_us_state_is_converted_from_lbs_per_mwh() -> None:
    data = json.loads((SHARED / "reference" / "us-state-egrid2023.json").read_text())
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
