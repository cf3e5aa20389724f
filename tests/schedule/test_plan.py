"""Planning: exact optima against brute force on small random traces, invariants, bad input."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.schedule.helpers import (
    T0,
    at,
    brute_chunked,
    brute_cleanest,
    brute_start,
    series_from_steps,
    unit_cells,
)
from wattprint.errors import WattprintInputError
from wattprint.intensity.base import IntensitySeries
from wattprint.schedule import plan, plan_location, plan_many

TOL = 1e-6


@st.composite
def instances(draw: st.DrawFn, max_steps: int = 8, max_len: int = 3) -> dict:
    """A random trace with uneven steps and gaps, and a job (e, dl, d) in integer minutes that fits it."""
    n = draw(st.integers(1, max_steps))
    steps, t = [], 0
    for _ in range(n):
        t += draw(st.sampled_from([0, 0, 0, 1, 2]))  # sometimes a gap
        length = draw(st.integers(1, max_len))
        steps.append((t, t + length, draw(st.integers(0, 12))))
        t += length
    start, end = steps[0][0], steps[-1][1]
    e = draw(st.integers(start, end - 1))
    dl = draw(st.integers(e + 1, end))
    d = draw(st.integers(1, dl - e))
    return {"steps": steps, "e": e, "dl": dl, "d": d}


def _no_baseline(cells: dict[int, float], e: int, d: int) -> bool:
    """The job run at earliest would see no data at all: the baseline is undefined (an error)."""
    return not any(t in cells for t in range(e, e + d))


def _units(p_mean: float, d: int) -> float:
    return p_mean * d  # mean x duration (in units) = emission integral in value x units


def _check_plan_shape(p, e: int, dl: int, d: int, steps) -> None:
    s = series_from_steps(steps)
    assert p.start >= at(e) - timedelta(microseconds=1) and p.end <= at(dl) + timedelta(microseconds=1)
    total = sum((b - a).total_seconds() for a, b in p.slots)
    assert total == pytest.approx(d * 60, abs=1e-3)
    for (a, b), (c, _) in zip(p.slots, p.slots[1:], strict=False):
        assert a < b < c  # sorted, disjoint, with a real pause between
    # independent check of the reported intensity with IntensitySeries.mean_over, and full coverage
    f = 0.0
    for a, b in p.slots:
        mean, covered = s.mean_over(a, b)
        assert covered == pytest.approx(1.0, abs=1e-9)
        f += mean * (b - a).total_seconds()
    assert f / (d * 60) == pytest.approx(p.mean_intensity, rel=1e-9, abs=1e-9)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_non_interruptible_is_the_brute_force_optimum(inst: dict) -> None:
    steps, e, dl, d = inst["steps"], inst["e"], inst["dl"], inst["d"]
    s = series_from_steps(steps)
    cells = unit_cells(steps)
    best = brute_start(cells, e, dl, d)
    if best is None or _no_baseline(cells, e, d):
        with pytest.raises(WattprintInputError, match="trace"):
            plan(s, d * 60.0, earliest=at(e), deadline=at(dl))
        return
    p = plan(s, d * 60.0, earliest=at(e), deadline=at(dl))
    assert len(p.slots) == 1
    assert _units(p.mean_intensity, d) == pytest.approx(best, abs=TOL)  # never worse than any feasible start
    _check_plan_shape(p, e, dl, d, steps)
    # the earliest of equal optima
    for start in range(e, int(round((p.start - T0).total_seconds() / 60))):
        f = brute_start(cells, start, start + d, d)
        assert f is None or f > best + TOL


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_interruptible_is_the_cleanest_and_never_worse(inst: dict) -> None:
    steps, e, dl, d = inst["steps"], inst["e"], inst["dl"], inst["d"]
    s = series_from_steps(steps)
    cells = unit_cells(steps)
    best = brute_cleanest(cells, e, dl, d)
    if best is None or _no_baseline(cells, e, d):
        with pytest.raises(WattprintInputError, match="trace"):
            plan(s, d * 60.0, earliest=at(e), deadline=at(dl), interruptible=True)
        return
    p = plan(s, d * 60.0, earliest=at(e), deadline=at(dl), interruptible=True)
    assert _units(p.mean_intensity, d) == pytest.approx(best, abs=TOL)
    _check_plan_shape(p, e, dl, d, steps)
    if brute_start(cells, e, dl, d) is not None:
        q = plan(s, d * 60.0, earliest=at(e), deadline=at(dl))
        assert p.mean_intensity <= q.mean_intensity + TOL


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_steps=6), st.integers(1, 4), st.sampled_from([0.0, 0.0, 60.0, 150.0]))
def test_chunked_matches_brute_force(inst: dict, m: int, pause_cost_s: float) -> None:
    steps, e, dl, d = inst["steps"], inst["e"], inst["dl"], inst["d"]
    s = series_from_steps(steps)
    cells = unit_cells(steps)
    pause_units = pause_cost_s / 60.0
    best = brute_chunked(cells, e, dl, d, m, pause_units)
    single = brute_start(cells, e, dl, d)
    if best is None or _no_baseline(cells, e, d):
        assert best is not None or single is None
        with pytest.raises(WattprintInputError, match="trace"):
            plan(
                s,
                d * 60.0,
                earliest=at(e),
                deadline=at(dl),
                interruptible=True,
                min_chunk=m * 60.0,
                pause_cost_s=pause_cost_s,
            )
        return
    p = plan(
        s,
        d * 60.0,
        earliest=at(e),
        deadline=at(dl),
        interruptible=True,
        min_chunk=m * 60.0,
        pause_cost_s=pause_cost_s,
    )
    _check_plan_shape(p, e, dl, d, steps)
    assert all((b - a).total_seconds() >= min(m, d) * 60 - 1e-3 for a, b in p.slots)
    objective = _units(p.mean_intensity, d) + sum(pause_units * s.at(a) for a, _ in p.slots[1:])
    if p.resolution_s in (None, 60.0):
        assert objective == pytest.approx(best, abs=1e-6)  # the exact optimum on the unit grid
    else:
        assert objective >= best - 1e-6
    if single is not None:
        assert objective <= single + 1e-6  # never worse than not interrupting


def test_uneven_steps_and_gaps_from_points() -> None:
    times = [at(0), at(15), at(30), at(60), at(75), at(180), at(195)]  # 15/30-min steps, a gap at 90..180
    s = IntensitySeries.from_points("XX", times, [300, 200, 100, 50, 400, 10, 10], "t", max_step_s=1800)
    p = plan(s, "30m", earliest=at(0), deadline=at(210))
    assert (p.start, p.end) == (at(180), at(210)) and p.mean_intensity == pytest.approx(10)
    p = plan(s, "40m", earliest=at(0), deadline=at(210))  # 40 min cannot fit after the gap
    assert p.start == at(35) and p.end == at(75) and p.mean_intensity == pytest.approx((25 * 100 + 15 * 50) / 40)
    pi = plan(s, "40m", earliest=at(0), deadline=at(210), interruptible=True)
    assert pi.mean_intensity == pytest.approx((30 * 10 + 10 * 50) / 40)
    assert [(a, b) for a, b in pi.slots] == [(at(60), at(70)), (at(180), at(210))]


def test_contract_document_and_baseline() -> None:
    s = series_from_steps([(0, 60, 400.0), (60, 120, 100.0), (120, 180, 300.0)])
    p = plan(s, "1h", earliest=at(0), window="3h")
    doc = p.to_json()
    assert list(doc) == ["start", "end", "slots", "mean_intensity", "baseline_intensity", "savings_pct"]
    assert doc["start"] == "2020-01-01T01:00:00Z" and doc["slots"] == [["2020-01-01T01:00:00Z", "2020-01-01T02:00:00Z"]]
    assert (doc["mean_intensity"], doc["baseline_intensity"], doc["savings_pct"]) == (100.0, 400.0, 75.0)
    assert p.co2e_kg(energy_kwh=2.0, pue=1.5) == pytest.approx(2.0 * 1.5 * 100 / 1000)
    assert p.baseline_co2e_kg(energy_kwh=2.0) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration": "4h", "earliest": at(0), "window": "3h"}, "duration"),
        ({"duration": "1h", "deadline": at(60)}, "deadline"),  # in the past, earliest = now
        ({"duration": "1h", "earliest": at(60), "deadline": at(30)}, "deadline"),
        ({"duration": "1h", "earliest": at(0), "deadline": at(600)}, "trace"),  # not covered
        ({"duration": "1h", "earliest": at(-30), "window": "2h"}, "trace"),
        ({"duration": "soon", "earliest": at(0), "window": "2h"}, "duration"),
        ({"duration": "90", "earliest": at(0), "window": "2h"}, "duration"),
        ({"duration": "1h", "earliest": at(0), "window": "-2h"}, "window"),
        ({"duration": "1h", "earliest": "yesterday", "window": "2h"}, "earliest"),
        ({"duration": "1h", "earliest": at(0)}, "deadline"),
        ({"duration": "1h", "earliest": at(0), "window": "2h", "deadline": at(120)}, "deadline"),
    ],
)
def test_bad_input(kwargs: dict, field: str) -> None:
    s = series_from_steps([(0, 180, 100.0)])
    duration = kwargs.pop("duration")
    with pytest.raises(WattprintInputError) as info:
        plan(s, duration, **kwargs)
    assert info.value.field == field


def test_location_shifting_with_pue() -> None:
    de = series_from_steps([(0, 120, 300.0), (120, 240, 200.0)], "DE")
    fr = series_from_steps([(0, 240, 60.0)], "FR")
    dc = series_from_steps([(0, 240, 50.0)], "DC")
    lp = plan_location([de, fr, dc], "1h", earliest=at(0), window="4h", pue={"DE": 1.0, "FR": 1.1, "DC": 1.5})
    assert lp.region == "FR" and lp.home == "DE"  # 60 x 1.1 = 66 < 50 x 1.5 = 75
    assert lp.savings_pct == pytest.approx(100 * (300 - 66) / 300)
    assert lp.co2e_kg(1.0) == pytest.approx(0.066)
    short = series_from_steps([(0, 30, 1.0)], "XX")
    lp = plan_location({"DE": de, "XX": short}, "1h", earliest=at(0), window="4h")
    assert lp.region == "DE" and "XX" in lp.skipped


def test_plan_many_matches_plan() -> None:
    rng = np.random.default_rng(1)
    times = [at(15 * i) for i in range(400)]
    s = IntensitySeries.from_points("XX", times, rng.uniform(50, 500, 400).round(1), "t")
    e = np.array([at(int(x)).timestamp() for x in rng.integers(0, 5000, 50)])
    d = rng.integers(10, 300, 50) * 60.0
    window = d + rng.integers(0, 600, 50) * 60.0
    for interruptible in (False, True):
        bp = plan_many(s, e, e + window, d, interruptible=interruptible)
        assert bp.feasible.all()
        for j in range(50):
            p = plan(
                s,
                float(d[j]),
                earliest=at((e[j] - T0.timestamp()) / 60),
                window=float(window[j]),
                interruptible=interruptible,
            )
            assert bp.mean_intensity[j] == pytest.approx(p.mean_intensity, rel=1e-9)
            assert bp.start[j] == pytest.approx(p.start.timestamp())
            assert bp.baseline_intensity[j] == pytest.approx(p.baseline_intensity, rel=1e-9)
    # out of the data: infeasible, not an exception
    bp = plan_many(s, np.array([T0.timestamp() - 3600]), np.array([T0.timestamp() + 3600]), 600.0)
    assert not bp.feasible[0] and np.isnan(bp.start[0])
