"""IntensitySeries: constant, clip, fallback fields, and the additivity of time-weighted means."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattprint.errors import WattprintInputError
from wattprint.intensity import get_provider
from wattprint.intensity.base import IntensitySeries

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def hours(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def test_positional_construction_still_works_and_new_fields_default_to_none() -> None:
    s = IntensitySeries("FR", (hours(0),), (hours(1),), (50.0,), "x")
    assert s.fallback_reason is None and s.timezone_note is None


def test_constant_covers_the_range_and_carries_the_fallback_reason() -> None:
    s = IntensitySeries.constant("DE", hours(0), hours(5), 300, "bundled", fallback_reason="timeout")
    assert s.mean_over(hours(0), hours(5)) == (300.0, 1.0)
    assert s.fallback_reason == "timeout"
    assert IntensitySeries.constant("DE", hours(2), hours(2), 1, "x").end == hours(3)


def test_clip_cuts_steps_at_the_edges() -> None:
    s = IntensitySeries.from_points("X", [hours(0), hours(1), hours(2)], [10, 20, 30], "src")
    part = s.clip(hours(0.5), hours(2.5))
    assert part.starts == (hours(0.5), hours(1), hours(2))
    assert part.ends == (hours(1), hours(2), hours(2.5))
    assert part.source == "src" and s.clip(hours(5), hours(6)).starts == ()


def test_gap_is_not_covered() -> None:
    s = IntensitySeries.from_points("X", [hours(0), hours(1), hours(2), hours(10)], [10, 20, 30, 40], "s")
    assert s.at(hours(5)) is None
    mean, covered = s.mean_over(hours(0), hours(11))
    assert mean == pytest.approx((10 + 20 + 30 + 40) / 4) and covered == pytest.approx(4 / 11)


points = st.lists(st.tuples(st.integers(1, 240), st.floats(0, 2000, allow_nan=False)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(points, st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_mean_over_splits_into_a_time_weighted_combination(
    steps: list[tuple[int, float]], fa: float, fb: float, fc: float
) -> None:
    times, t = [], T0
    for minutes, _ in steps:
        times.append(t)
        t += timedelta(minutes=minutes)  # uneven steps; long ones become gaps
    series = IntensitySeries.from_points("X", times, [v for _, v in steps], "s")
    span = (series.end - series.start).total_seconds() + 7200
    a, b, c = sorted(series.start + timedelta(seconds=f * span - 3600) for f in (fa, fb, fc))
    if not (a < b < c):
        return

    def weighted(lo: datetime, hi: datetime) -> tuple[float, float]:
        got = series.mean_over(lo, hi)
        if got is None:
            return 0.0, 0.0
        seconds = got[1] * (hi - lo).total_seconds()
        return got[0] * seconds, seconds

    total_ac, covered_ac = weighted(a, c)
    total_ab, covered_ab = weighted(a, b)
    total_bc, covered_bc = weighted(b, c)
    assert covered_ac == pytest.approx(covered_ab + covered_bc, abs=1e-6)
    assert total_ac == pytest.approx(total_ab + total_bc, rel=1e-9, abs=1e-6)


def test_every_provider_name_that_settings_accept_builds_its_provider() -> None:
    """One table: the names settings accept (config) are exactly those get_provider knows."""
    from wattprint.intensity import _CLASSES, PROVIDERS

    assert set(_CLASSES) == set(PROVIDERS) and len(PROVIDERS) == 5
    for name in PROVIDERS:
        cls_name = _CLASSES[name][1]
        kwargs = {"path": __file__} if name == "trace" else {}
        try:
            provider = get_provider(name, **kwargs)
        except WattprintInputError:  # the trace provider reading a file that is no trace: it was found
            assert name == "trace"
            continue
        assert type(provider).__name__ == cls_name
