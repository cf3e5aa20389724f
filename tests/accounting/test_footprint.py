"""Operational carbon, constant and integrated over an intensity series."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattprint.accounting.footprint import (
    facility_energy_kwh,
    integrate_operational,
    operational_co2e_kg,
    segments_from_cumulative,
)
from wattprint.errors import WattprintInputError
from wattprint.intensity.base import IntensitySeries

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
H = timedelta(hours=1)


def series() -> IntensitySeries:
    # 100 g/kWh over [T0, T0+1h), 300 over [T0+1h, T0+2h), nothing after
    return IntensitySeries("FR", (T0, T0 + H), (T0 + H, T0 + 2 * H), (100.0, 300.0), "test")


def test_existing_helpers() -> None:
    assert facility_energy_kwh(2.0, 1.5) == 3.0
    assert math.isclose(operational_co2e_kg(2.0, 400.0, 1.5), 1.2)


def test_constant_by_hand() -> None:
    out = integrate_operational([(T0, T0 + H, 2.0), (T0 + H, T0 + 2 * H, 1.0)], 300.0, pue=1.5)
    assert (out.energy_kwh, out.facility_energy_kwh) == (3.0, 4.5)
    assert math.isclose(out.co2e_kg, 4.5 * 300 / 1000)  # 1.35
    assert math.isclose(out.co2e_kg_low, 1.08) and math.isclose(out.co2e_kg_high, 1.62)  # +-20%
    assert out.covered_fraction == 1.0 and out.intensity_g_per_kwh == 300.0


def test_series_with_gap_by_hand() -> None:
    segments = [
        (T0 + H / 2, T0 + 3 * H / 2, 2.0),  # mean (100 + 300) / 2 = 200, covered
        (T0 + 3 * H / 2, T0 + 5 * H / 2, 1.0),  # half at 300, half uncovered -> fallback 500
    ]
    out = integrate_operational(segments, series(), fallback_g_per_kwh=500.0)
    # 2.0 x 200 + 0.5 x 300 + 0.5 x 500 = 400 + 150 + 250 = 800 g
    assert math.isclose(out.co2e_kg, 0.8)
    assert math.isclose(out.covered_fraction, 2.5 / 3.0)
    assert math.isclose(out.intensity_g_per_kwh, 800 / 3)
    # series part +-5%, fallback part +-20%: low 380 + 142.5 + 200, high 420 + 157.5 + 300
    assert math.isclose(out.co2e_kg_low, 0.7225) and math.isclose(out.co2e_kg_high, 0.8775)


def test_a_run_that_drew_no_energy_gets_the_series_time_mean_not_the_fallback() -> None:
    # three quarters of an hour at 100 and a quarter at 300: 150 over time; the yearly 500 is not what happened
    out = integrate_operational([(T0 + H / 4, T0 + 5 * H / 4, 0.0)], series(), fallback_g_per_kwh=500.0)
    assert out.co2e_kg == 0.0 and math.isclose(out.intensity_g_per_kwh, 150.0)
    assert math.isclose(out.intensity_low_g_per_kwh, 142.5) and math.isclose(out.intensity_high_g_per_kwh, 157.5)
    wholly_outside = integrate_operational([(T0 + 3 * H, T0 + 4 * H, 0.0)], series(), fallback_g_per_kwh=500.0)
    assert wholly_outside.intensity_g_per_kwh == 500.0  # nothing of the series covers it: the fallback


def test_uncovered_without_fallback_is_an_error() -> None:
    with pytest.raises(WattprintInputError, match="fallback_g_per_kwh"):
        integrate_operational([(T0 + 3 * H, T0 + 4 * H, 1.0)], series())


@pytest.mark.parametrize(
    "segment",
    [(T0, T0 + H, -1.0), (T0, T0 + H, float("nan")), (T0 + H, T0, 1.0)],
)
def test_bad_segments(segment: tuple) -> None:
    with pytest.raises(WattprintInputError):
        integrate_operational([segment], 100.0)


def test_bad_pue() -> None:
    with pytest.raises(WattprintInputError, match="pue"):
        integrate_operational([], 100.0, pue=0.9)


def test_segments_from_cumulative() -> None:
    times = [T0, T0 + H, T0 + 2 * H]
    assert segments_from_cumulative(times, [0.0, 1.0, 3.0]) == [(T0, T0 + H, 1.0), (T0 + H, T0 + 2 * H, 2.0)]


# -- properties: splitting an interval never changes the total --------------------------------------

steps = st.lists(st.tuples(st.integers(60, 7200), st.floats(0, 1000), st.booleans()), min_size=1, max_size=12)


def build_series(parts: list[tuple[int, float, bool]]) -> IntensitySeries:
    """Consecutive steps of the given lengths; a True flag leaves a gap of that length instead."""
    starts, ends, values, t = [], [], [], T0
    for seconds, value, gap in parts:
        if not gap:
            starts.append(t)
            ends.append(t + timedelta(seconds=seconds))
            values.append(value)
        t += timedelta(seconds=seconds)
    if not starts:
        starts, ends, values = [T0], [T0 + H], [42.0]
    return IntensitySeries("XX", tuple(starts), tuple(ends), tuple(values), "test")


@settings(max_examples=200, deadline=None)
@given(
    parts=steps,
    start_s=st.integers(-3600, 40_000),
    length_s=st.integers(1, 40_000),
    energy=st.floats(0, 1e4),
    cut=st.floats(0, 1),
    pue=st.floats(1, 3),
)
def test_splitting_an_interval_keeps_the_total(
    parts: list, start_s: int, length_s: int, energy: float, cut: float, pue: float
) -> None:
    src = build_series(parts)
    a = T0 + timedelta(seconds=start_s)
    b = a + timedelta(seconds=length_s)
    c = a + timedelta(seconds=round(cut * length_s, 6))
    share = (c - a) / (b - a)
    whole = integrate_operational([(a, b, energy)], src, pue=pue, fallback_g_per_kwh=250.0)
    split = integrate_operational(
        [(a, c, energy * share), (c, b, energy * (1 - share))], src, pue=pue, fallback_g_per_kwh=250.0
    )
    for attr in ("co2e_kg", "co2e_kg_low", "co2e_kg_high", "energy_kwh"):
        assert math.isclose(getattr(whole, attr), getattr(split, attr), rel_tol=1e-9, abs_tol=1e-9)
    assert whole.co2e_kg_low <= whole.co2e_kg + 1e-12 <= whole.co2e_kg_high + 2e-12


@given(
    energies=st.lists(st.floats(0, 1e4), min_size=1, max_size=20),
    intensity=st.floats(0, 2000),
    pue=st.floats(1, 3),
)
def test_constant_intensity_is_total_energy_times_intensity(energies: list, intensity: float, pue: float) -> None:
    segments = [(T0 + i * H, T0 + (i + 1) * H, e) for i, e in enumerate(energies)]
    out = integrate_operational(segments, intensity, pue=pue)
    assert math.isclose(out.co2e_kg, operational_co2e_kg(sum(energies), intensity, pue), rel_tol=1e-9, abs_tol=1e-9)
