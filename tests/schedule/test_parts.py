"""Durations and times, cluster lines, backtest jobs and forecasts, batch planning with chunks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from tests.schedule.helpers import T0, at, series_from_steps
from wattprint.errors import WattprintInputError
from wattprint.intensity.base import IntensitySeries
from wattprint.schedule import (
    JobSpec,
    backtest,
    cron_line,
    noisy_forecast,
    parse_duration,
    parse_time,
    plan,
    plan_many,
    sbatch_line,
)
from wattprint.schedule.grid import Grid


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90m", 5400),
        ("8h", 28800),
        ("1h30m", 5400),
        ("2d", 172800),
        ("PT2H", 7200),
        ("P1DT2H", 93600),
        ("PT1H30M", 5400),
        ("45s", 45),
        ("1.5h", 5400),
        ("1w", 604800),
        ("2h 15m", 8100),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["90", "soon", "", "1h1h", "30m1h", "-1h", "0m", "P", "PT", "1 hour", "h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(WattprintInputError) as info:
        parse_duration(text, "duration")
    assert info.value.field == "duration" and "90m" in str(info.value)


def test_times_naive_is_utc() -> None:
    utc = datetime(2020, 3, 1, 6, 0, tzinfo=timezone.utc)
    assert parse_time("2020-03-01T06:00") == utc
    assert parse_time("2020-03-01 06:00:00Z") == utc
    assert parse_time("2020-03-01T07:00+01:00") == utc
    assert parse_time(datetime(2020, 3, 1, 6, 0)) == utc
    with pytest.raises(WattprintInputError, match="naive times are UTC"):
        parse_time("tomorrow", "deadline")


def test_cluster_lines() -> None:
    s = series_from_steps([(0, 60, 300.0), (60, 120, 100.0), (120, 240, 300.0)])
    p = plan(s, "30m", earliest=at(0), deadline=at(240))
    assert (
        sbatch_line(p, "train.sh", "UTC")
        == "sbatch --begin=2020-01-01T01:00:00 --deadline=2020-01-01T04:00:00 train.sh"
    )
    assert sbatch_line(p, "train.sh", "Asia/Kolkata").startswith("sbatch --begin=2020-01-01T06:30:00 ")
    assert cron_line(p, "/j.sh", "UTC") == "0 1 1 1 * /j.sh"
    p = plan(s, "30m", earliest=at(0.5), deadline=at(240))  # starts at 00:00:30 + ... -> minute rounded up
    assert cron_line(p, "/j.sh", "UTC") == "0 1 1 1 * /j.sh"
    s2 = series_from_steps([(0, 240, 100.0)])
    p2 = plan(s2, "30m", earliest=at(0.5), deadline=at(240))
    assert p2.start == at(0.5) and cron_line(p2, "/j.sh", "UTC") == "1 0 1 1 * /j.sh"


def test_job_specs_and_windows() -> None:
    night = JobSpec.parse("nightly:2h@22:00-06:00")
    adhoc = JobSpec.parse("adhoc:1h/8h:50")
    assert (adhoc.duration_s, adhoc.window_s, adhoc.count) == (3600, 28800, 50)
    start, end = datetime(2020, 3, 1, tzinfo=timezone.utc), datetime(2020, 3, 5, tzinfo=timezone.utc)
    e, d = night.windows(start, end, np.random.default_rng(0))
    assert len(e) == 3 and np.all(d - e == 8 * 3600)
    assert datetime.fromtimestamp(e[0], timezone.utc) == datetime(2020, 3, 1, 22, tzinfo=timezone.utc)
    e, _ = night.windows(start, end, np.random.default_rng(0), tz="Europe/Berlin")
    assert datetime.fromtimestamp(e[0], timezone.utc) == datetime(2020, 3, 1, 21, tzinfo=timezone.utc)
    e, d = adhoc.windows(start, end, np.random.default_rng(0))
    assert len(e) == 50 and e.min() >= start.timestamp() and d.max() <= end.timestamp()
    for bad in (
        "nightly:9h@22:00-06:00",
        "nightly:1h@25:00-06:00",
        "adhoc:1h",
        "weekly:1h@mon",
        "adhoc:1h/8h:0",
    ):
        with pytest.raises(WattprintInputError):
            JobSpec.parse(bad)


def _year_like(n: int = 2000, seed: int = 3) -> IntensitySeries:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 300 - 100 * np.cos(2 * np.pi * (t - 12) / 96) + rng.normal(0, 20, n)  # cleanest at 03:00
    return IntensitySeries.from_points("XX", [T0 + timedelta(minutes=15 * int(i)) for i in t], values, "t")


def test_backtest_invariants() -> None:
    s = _year_like()
    jobs = ["adhoc:1h/8h:200", "adhoc:3h/12h:200", "nightly:2h@22:00-06:00"]
    perfect = backtest(s, jobs, interruptible=[False, True])
    noisy = backtest(s, jobs, forecast_error_pct=10, repeats=2, interruptible=[False, True])
    for p, q in zip(perfect.rows, noisy.rows, strict=True):
        assert p.deadline_misses == q.deadline_misses == 0
        assert p.savings_pct == pytest.approx(p.optimal_savings_pct)  # a perfect forecast reaches the optimum
        assert q.optimal_savings_pct == pytest.approx(p.optimal_savings_pct)
        assert q.savings_pct <= q.optimal_savings_pct + 1e-9  # no forecast beats perfect foresight
        assert p.optimal_savings_pct > 0
    by = {(r.jobs, r.interruptible): r for r in perfect.rows}
    for j in jobs:
        assert by[(j, True)].optimal_intensity <= by[(j, False)].optimal_intensity + 1e-9
    doc = noisy.to_json()
    assert doc["forecast_error_pct"] == 10 and len(doc["rows"]) == 6 and "method" in doc


def test_noisy_forecast_keeps_the_steps() -> None:
    g = Grid.from_series(_year_like())
    f = noisy_forecast(g, 5, np.random.default_rng(0))
    assert np.array_equal(f.lo, g.lo) and np.array_equal(f.hi, g.hi) and not np.array_equal(f.val, g.val)
    mean = float(np.mean(g.val))
    assert np.std(f.val - g.val) == pytest.approx(0.05 * mean, rel=0.1) and f.val.min() >= 0


def test_plan_many_with_min_chunk_and_forecast_scoring() -> None:
    s = _year_like(600)
    rng = np.random.default_rng(2)
    e = T0.timestamp() + rng.integers(0, 400, 12) * 900.0
    bp = plan_many(s, e, e + 12 * 3600, 3 * 3600.0, interruptible=True, min_chunk="1h")
    for j in range(12):
        p = plan(
            s,
            "3h",
            earliest=datetime.fromtimestamp(e[j], timezone.utc),
            window="12h",
            interruptible=True,
            min_chunk="1h",
        )
        assert bp.mean_intensity[j] == pytest.approx(p.mean_intensity, rel=1e-9)
        assert all((b - a) >= timedelta(hours=1) for a, b in p.slots)
    g = Grid.from_series(s)
    fc = noisy_forecast(g, 10, np.random.default_rng(1))
    scored = plan_many(fc, e, e + 12 * 3600, 3 * 3600.0, evaluate_on=g)
    best = plan_many(g, e, e + 12 * 3600, 3 * 3600.0)
    assert np.all(scored.actual_intensity >= best.mean_intensity - 1e-9)
