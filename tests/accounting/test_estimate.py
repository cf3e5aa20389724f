"""The ahead-of-time calculator through its Python API."""

from __future__ import annotations

import inspect
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattprint.accounting.embodied import embodied_co2e_kg, years_to_seconds
from wattprint.accounting.estimate import STRUBELL_G_PER_KWH, estimate
from wattprint.errors import WattprintInputError
from wattprint.units import G_PER_LB, kg_to_lbs, lbs_to_kg

GPT3 = {"count": 10_000, "days": 14.8, "power_w": 330.0, "pue": 1.10, "intensity": 429.0}


def test_patterson_gpt3_row() -> None:
    out = estimate("V100", **GPT3)  # type: ignore[arg-type]
    # 10,000 x 330 W x 355.2 h = 1,172,160 kWh; x 1.10 = 1,289,376 kWh; x 0.429 = 553,142 kg
    assert math.isclose(out.energy_kwh, 1_172_160.0)
    assert math.isclose(out.facility_energy_kwh, 1_289_376.0)
    assert abs(out.facility_energy_kwh / 1000 / 1287 - 1) < 0.005
    assert abs(out.co2e_kg.total / 1000 / 552 - 1) < 0.005
    assert out.inputs["hardware"] == "V100 SXM2" and out.inputs["hours"] == pytest.approx(355.2)


def test_document_shape() -> None:
    doc = estimate("T4", hours=1, intensity=100).to_dict()
    assert set(doc) == {"energy_kwh", "facility_energy_kwh", "co2e_kg", "inputs", "range"}
    assert set(doc["co2e_kg"]) == {"operational", "embodied", "total"}
    assert set(doc["range"]) == {"co2e_kg_low", "co2e_kg_high"}


def test_tdp_default_and_range_by_hand() -> None:
    out = estimate("A100", hours=10, intensity=100)
    # 400 W x 10 h = 4 kWh, PUE 1.0 -> 0.4 kg; TDP -50%/+10%, intensity +-20%
    assert out.energy_kwh == 4.0 and out.inputs["power_source"] == "TDP"
    assert math.isclose(out.co2e_kg.operational, 0.4)
    assert math.isclose(out.range.co2e_kg_low, 4 * 0.5 * 80 / 1000)  # 0.16
    assert math.isclose(out.range.co2e_kg_high, 4 * 1.1 * 120 / 1000)  # 0.528
    assert out.inputs["pue"] == 1.0 and "default 1.0" in out.inputs["pue_source"]


def test_given_power_range() -> None:
    out = estimate("A100", hours=10, power_w=300, intensity=100)
    assert math.isclose(out.range.co2e_kg_low, 3 * 0.9 * 80 / 1000)
    assert math.isclose(out.range.co2e_kg_high, 3 * 1.1 * 120 / 1000)


def test_region_and_provider_default_pue() -> None:
    fr = estimate("T4", hours=100, region="fr")
    assert fr.inputs["region"] == "FR" and fr.inputs["pue"] == 1.0
    assert math.isclose(fr.co2e_kg.operational, 7.0 * fr.inputs["intensity_g_per_kwh"] / 1000)
    gcp = estimate("T4", hours=100, region="gcp:us-central1")
    assert gcp.inputs["pue"] == 1.10 and "gcp" in gcp.inputs["pue_source"]
    assert math.isclose(gcp.facility_energy_kwh, 7.7)


def test_mlco2_convention() -> None:
    out = estimate("T4", hours=10, intensity=500, method="mlco2")
    # 70 W x 10 h = 0.7 kWh, no PUE, x 0.5 kg/kWh = 0.35 kg
    assert out.energy_kwh == out.facility_energy_kwh == pytest.approx(0.7)
    assert math.isclose(out.co2e_kg.total, 0.35)
    assert out.inputs["pue"] == 1.0 and "no PUE" in out.inputs["pue_source"]
    with pytest.raises(WattprintInputError, match="^pue: "):
        estimate("T4", hours=10, intensity=500, pue=1.2, method="mlco2")
    with pytest.raises(WattprintInputError, match="^power_w: "):
        estimate("T4", hours=10, intensity=500, power_w=50, method="mlco2")


def test_strubell_convention() -> None:
    out = estimate("V100", count=8, hours=10, method="strubell")
    # 8 x 300 W x 10 h = 24 kWh; x 1.58 = 37.92 kWh; x 0.954 lbs/kWh = 36.17568 lbs
    assert out.energy_kwh == 24.0 and math.isclose(out.facility_energy_kwh, 37.92)
    assert out.co2e_lbs is not None and math.isclose(out.co2e_lbs.operational, 36.17568)
    assert math.isclose(out.co2e_kg.operational, lbs_to_kg(36.17568))
    assert math.isclose(STRUBELL_G_PER_KWH, 0.954 * G_PER_LB)
    assert "co2e_lbs" in out.to_dict()
    fr = estimate("V100", count=8, hours=10, region="FR", method="strubell")
    assert fr.inputs["region"] == "FR" and fr.co2e_lbs is not None
    assert math.isclose(fr.co2e_lbs.total, kg_to_lbs(fr.co2e_kg.total))
    with pytest.raises(WattprintInputError, match="^pue: "):
        estimate("V100", hours=1, pue=1.1, method="strubell")


def test_embodied_given_and_from_table() -> None:
    given_ = estimate("H100", count=8, hours=24, intensity=100, embodied_kg_per_device=164, lifetime_years=3)
    # 8 x 164 kg x 24 h / 26,280 h = 1.19817 kg, taken as exact
    assert math.isclose(given_.co2e_kg.embodied, 8 * 164 * 24 / 26280)
    assert math.isclose(given_.co2e_kg.total, given_.co2e_kg.operational + given_.co2e_kg.embodied)
    table = estimate("H100", count=8, hours=24, intensity=100, embodied_from_table=True)
    assert math.isclose(table.co2e_kg.embodied, given_.co2e_kg.embodied)
    assert table.inputs["embodied_source"].startswith("published")
    assert table.range.co2e_kg_high > given_.range.co2e_kg_high  # published +30% on the embodied part
    with pytest.raises(WattprintInputError, match="^embodied_from_table: "):
        estimate("T4", hours=1, intensity=100, embodied_from_table=True)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hardware": "V1000", "hours": 1, "intensity": 1}, "hardware"),
        ({"hardware": "V100", "hours": -1, "intensity": 1}, "hours"),
        ({"hardware": "V100", "hours": 0, "intensity": 1}, "hours"),
        ({"hardware": "V100", "days": float("nan"), "intensity": 1}, "days"),
        ({"hardware": "V100", "hours": 1, "days": 1, "intensity": 1}, "days"),
        ({"hardware": "V100", "intensity": 1}, "hours"),
        ({"hardware": "V100", "hours": 1, "intensity": 1, "region": "FR"}, "region"),
        ({"hardware": "V100", "hours": 1, "region": "Atlantis"}, "region"),
        ({"hardware": "V100", "hours": 1, "intensity": float("inf")}, "intensity"),
        ({"hardware": "V100", "hours": 1, "intensity": -5}, "intensity"),
        ({"hardware": "V100", "hours": 1, "intensity": 1, "count": 0}, "count"),
        ({"hardware": "V100", "hours": 1, "intensity": 1, "power_w": float("nan")}, "power_w"),
        ({"hardware": "V100", "hours": 1, "intensity": 1, "pue": 0.9}, "pue"),
        ({"hardware": "V100", "hours": 1, "intensity": 1, "embodied_kg_per_device": 100}, "lifetime_years"),
        ({"hardware": "V100", "hours": 1, "intensity": 1, "lifetime_years": 4}, "embodied_kg_per_device"),
        ({"hardware": "V100", "hours": 1, "intensity": 1, "method": "guess"}, "method"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict, field: str) -> None:
    """A Python caller is told the parameter (the CLI shows the flag instead: tests/cli/test_errors.py)."""
    with pytest.raises(WattprintInputError) as err:
        estimate(**kwargs)
    assert err.value.field == field and field in inspect.signature(estimate).parameters
    assert "--" not in str(err.value)


@given(
    count=st.integers(1, 100_000),
    hours=st.floats(1e-3, 1e5),
    power=st.floats(1, 2000),
    pue=st.floats(1, 3),
    intensity=st.floats(0, 2000),
)
def test_estimate_identities(count: int, hours: float, power: float, pue: float, intensity: float) -> None:
    out = estimate("H100", count=count, hours=hours, power_w=power, pue=pue, intensity=intensity)
    assert math.isclose(out.energy_kwh, count * power * hours / 1000, rel_tol=1e-12)
    assert math.isclose(out.facility_energy_kwh, out.energy_kwh * pue, rel_tol=1e-12)
    assert math.isclose(out.co2e_kg.total, out.facility_energy_kwh * intensity / 1000, rel_tol=1e-9, abs_tol=1e-12)
    assert out.range.co2e_kg_low <= out.co2e_kg.total <= out.range.co2e_kg_high
    days = estimate("H100", count=count, days=hours / 24, power_w=power, pue=pue, intensity=intensity)
    assert math.isclose(days.co2e_kg.total, out.co2e_kg.total, rel_tol=1e-9, abs_tol=1e-12)


@given(st.floats(0, 1e6), st.floats(0, 1e8), st.floats(0, 1e8), st.floats(0.1, 50), st.floats(0, 1))
def test_embodied_is_additive_over_time(total_kg: float, t1: float, t2: float, years: float, share: float) -> None:
    life = years_to_seconds(years)
    whole = embodied_co2e_kg(total_kg, t1 + t2, life, share)
    parts = embodied_co2e_kg(total_kg, t1, life, share) + embodied_co2e_kg(total_kg, t2, life, share)
    assert math.isclose(whole, parts, rel_tol=1e-9, abs_tol=1e-9)


@given(st.floats(0, 1e12))
def test_pound_conversions_round_trip(kg: float) -> None:
    assert math.isclose(lbs_to_kg(kg_to_lbs(kg)), kg, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(kg_to_lbs(kg) * G_PER_LB / 1000, kg, rel_tol=1e-12, abs_tol=1e-12)
