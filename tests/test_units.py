from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from wattprint import units

finite = st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False)


def test_known_values() -> None:
    assert units.joules_to_kwh(3.6e6) == 1.0
    assert units.joules_to_wh(3600) == 1.0
    assert units.kg_to_lbs(0.45359237) == 1.0
    assert math.isclose(units.lbs_per_mwh_to_g_per_kwh(1000), 453.59237)
    # 1,287 MWh at 429 g/kWh is about 552 t (Patterson et al. 2021, GPT-3)
    assert round(units.kg_to_t(units.co2e_kg(1_287_000, 429))) == 552


@given(finite)
def test_round_trips(x: float) -> None:
    assert math.isclose(units.kwh_to_joules(units.joules_to_kwh(x)), x, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(units.wh_to_joules(units.joules_to_wh(x)), x, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(units.t_to_kg(units.kg_to_t(x)), x, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(units.lbs_to_kg(units.kg_to_lbs(x)), x, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(units.g_to_kg(units.kg_to_g(x)), x, rel_tol=1e-12, abs_tol=1e-12)


@given(finite, finite, st.floats(min_value=0, max_value=2000))
def test_carbon_is_additive_in_energy(a: float, b: float, intensity: float) -> None:
    whole = units.co2e_kg(a + b, intensity)
    parts = units.co2e_kg(a, intensity) + units.co2e_kg(b, intensity)
    assert math.isclose(whole, parts, rel_tol=1e-9, abs_tol=1e-9)
