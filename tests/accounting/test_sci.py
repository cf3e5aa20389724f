"""Software Carbon Intensity per functional unit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattprint.accounting.sci import FUNCTIONAL_UNITS, functional_unit, sci
from wattprint.errors import WattprintInputError


def test_per_thousand_inferences() -> None:
    # O 0.3 kg + M 0.1 kg over 20,000 inferences = 20 units of 1,000 -> 20 g per 1,000 inferences
    score = sci(0.3, 0.1, "1,000 inferences", 20_000)
    assert math.isclose(score.g_per_unit, 20.0)
    assert score.unit == "1000 inferences" and score.units == 20
    assert score.label() == "20 gCO2e per 1000 inferences"


def test_per_epoch_and_run() -> None:
    assert math.isclose(sci(1.2, 0.0, "epochs", 4).g_per_unit, 300.0)
    assert math.isclose(sci(1.2, 0.3).g_per_unit, 1500.0)  # one run
    assert math.isclose(sci(1.0, 0.0, "token", 1e6).kg_per_unit, 1e-6)


@pytest.mark.parametrize("spelling", ["1k-inferences", "1000_inferences", "1,000 Inferences", "1000 inference"])
def test_unit_spellings(spelling: str) -> None:
    assert functional_unit(spelling) == "1000 inferences"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((1.0, 0.0, "minute", 1.0), "unit"),
        ((1.0, 0.0, "run", 0.0), "quantity"),
        ((float("nan"), 0.0, "run", 1.0), "operational_kg"),
        ((1.0, -0.1, "run", 1.0), "embodied_kg"),
    ],
)
def test_bad_input(args: tuple, field: str) -> None:
    with pytest.raises(WattprintInputError) as err:
        sci(*args)
    assert err.value.field == field


@given(st.floats(0, 1e6), st.floats(0, 1e6), st.sampled_from(sorted(FUNCTIONAL_UNITS)), st.floats(1e-3, 1e9))
def test_sci_times_units_is_total(o: float, m: float, unit: str, quantity: float) -> None:
    score = sci(o, m, unit, quantity)
    assert math.isclose(score.g_per_unit * score.units, (o + m) * 1000, rel_tol=1e-9, abs_tol=1e-9)
