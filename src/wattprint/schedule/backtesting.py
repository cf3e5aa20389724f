"""Backtests: replay a trace with jobs, plan on a (perfect or noisy) forecast, score on the trace.

Job specs (`JobSpec.parse`, the CLI's `--jobs`):

    adhoc:DUR/WINDOW[:N]       N jobs (default 1000) arriving at uniformly random times over the
                               trace (seeded), each due WINDOW after its arrival; e.g. adhoc:1h/8h:500
    nightly:DUR@HH:MM-HH:MM    one job a day, to run inside that daily window (in the backtest's
                               time zone, UTC by default; an end before the start is the next day);
                               e.g. nightly:2h@22:00-06:00

Each job is scored three ways on the actual trace: run at once (its arrival, uninterrupted: the
baseline), as planned on the forecast, and as planned with perfect foresight (the optimum).
Savings are of total emissions (sum over jobs of intensity x duration; equal power assumed).

Forecast errors follow Wiesner et al. (Middleware 2021, "Let's Wait Awhile"): the forecast is the
trace plus independent Gaussian noise per step with a standard deviation of PCT % of the trace's
mean intensity (clipped at 0), one realisation per repeat, the same forecast for every job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Any

import numpy as np

from wattprint.errors import WattprintInputError
from wattprint.intensity.base import IntensitySeries
from wattprint.schedule.batch import plan_many
from wattprint.schedule.grid import Grid
from wattprint.schedule.timeparse import parse_duration

JOBS_EXAMPLES = "adhoc:DUR/WINDOW[:N] (e.g. adhoc:1h/8h:1000) or nightly:DUR@HH:MM-HH:MM (e.g. nightly:2h@22:00-06:00)"
DEFAULT_JOBS = ("adhoc:1h/8h:1000", "nightly:2h@22:00-06:00")
MAX_ADHOC_COUNT = 1_000_000  # plenty for a distribution; 10^11 jobs tried to allocate 745 GiB
DEFAULT_ADHOC_COUNT = 1000
_ADHOC = re.compile(r"adhoc:([^/:]+)/([^/:]+)(?::(\d+))?", re.IGNORECASE)
_NIGHTLY = re.compile(r"nightly:([^@]+)@(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})", re.IGNORECASE)


def _zone(tz: str | None) -> tzinfo:
    if tz is None:
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise WattprintInputError(
            "tz", f"unknown time zone {tz!r}; expected an IANA name such as Europe/Berlin"
        ) from None


@dataclass(frozen=True)
class JobSpec:
    """A family of jobs of one duration: ad-hoc (random arrivals, relative deadline) or nightly."""

    text: str
    kind: str  # "adhoc" | "nightly"
    duration_s: float
    window_s: float = 0.0  # adhoc
    count: int = DEFAULT_ADHOC_COUNT  # adhoc
    start_tod: time | None = None  # nightly
    end_tod: time | None = None  # nightly

    @classmethod
    def parse(cls, text: str, field: str = "jobs") -> JobSpec:
        raw = text.strip()
        m = _ADHOC.fullmatch(raw)
        if m:
            d = parse_duration(m.group(1), field).total_seconds()
            w = parse_duration(m.group(2), field).total_seconds()
            n = int(m.group(3)) if m.group(3) else DEFAULT_ADHOC_COUNT
            if d > w:
                raise WattprintInputError(field, f"{raw!r}: the duration is longer than the window")
            if not 1 <= n <= MAX_ADHOC_COUNT:
                raise WattprintInputError(field, f"{raw!r}: the number of jobs must be from 1 to {MAX_ADHOC_COUNT:,}")
            return cls(raw, "adhoc", d, window_s=w, count=n)
        m = _NIGHTLY.fullmatch(raw)
        if m:
            d = parse_duration(m.group(1), field).total_seconds()
            h1, m1, h2, m2 = (int(g) for g in m.groups()[1:])
            if max(h1, h2) > 23 or max(m1, m2) > 59:
                raise WattprintInputError(field, f"{raw!r}: times must be HH:MM, 00:00 to 23:59")
            span = ((h2 * 60 + m2) - (h1 * 60 + m1)) % 1440 or 1440
            if d > span * 60:
                raise WattprintInputError(field, f"{raw!r}: the duration is longer than the nightly window")
            return cls(raw, "nightly", d, start_tod=time(h1, m1), end_tod=time(h2, m2))
        raise WattprintInputError(field, f"got {raw!r}; expected {JOBS_EXAMPLES}")

    def windows(
        self, start: datetime, end: datetime, rng: np.random.Generator, tz: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(earliest, deadline) POSIX seconds of this family's jobs inside [start, end]."""
        a, b = start.timestamp(), end.timestamp()
        if self.kind == "adhoc":
            if b - a < self.window_s:
                return np.empty(0), np.empty(0)
            e = np.sort(rng.uniform(a, b - self.window_s, self.count))
            return e, e + self.window_s
        zone = _zone(tz)
        assert self.start_tod is not None and self.end_tod is not None
        day = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date()
        es, ds = [], []
        while day <= last:
            opens = datetime.combine(day, self.start_tod, zone)
            dl_day = day if self.end_tod > self.start_tod else day + timedelta(days=1)
            dl = datetime.combine(dl_day, self.end_tod, zone)
            if opens.timestamp() >= a and dl.timestamp() <= b:
                es.append(opens.timestamp())
                ds.append(dl.timestamp())
            day += timedelta(days=1)
        return np.array(es, dtype=np.float64), np.array(ds, dtype=np.float64)


def parse_jobs(texts: Sequence[str] | None, field: str = "jobs") -> list[JobSpec]:
    return [JobSpec.parse(t, field) for t in (texts or DEFAULT_JOBS)]


def noisy_forecast(grid: Grid, error_pct: float, rng: np.random.Generator) -> Grid:
    """The trace plus N(0, (error_pct % x mean intensity)^2) per step, clipped at 0."""
    if error_pct <= 0:
        return grid
    length = grid.hi - grid.lo
    mean = float(np.sum(grid.val * length) / np.sum(length))
    noise = rng.normal(0.0, error_pct / 100.0 * mean, grid.val.size)
    return grid.with_values(np.maximum(grid.val + noise, 0.0))


@dataclass(frozen=True)
class BacktestRow:
    jobs: str
    interruptible: bool
    n: int
    skipped: int
    baseline_intensity: float
    planned_intensity: float
    optimal_intensity: float
    savings_pct: float
    optimal_savings_pct: float
    share_of_optimum_pct: float
    deadline_misses: int


@dataclass(frozen=True)
class BacktestReport:
    trace: str
    region: str
    period: tuple[str, str]
    forecast_error_pct: float
    seed: int
    repeats: int
    tz: str
    rows: tuple[BacktestRow, ...]

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["period"] = list(self.period)
        doc["rows"] = [asdict(r) for r in self.rows]
        doc["method"] = (
            "baseline: each job run at its arrival without interruption; planned: the plan on the forecast, "
            "scored on the trace; optimal: the plan on the trace itself (perfect foresight). "
            "Forecast: trace + Gaussian noise per step, sd = forecast_error_pct % of the trace mean"
        )
        return doc


def _pct(part: float, whole: float) -> float:
    return float(100.0 * part / whole) if whole > 0 else float("nan")


def backtest(
    series: IntensitySeries | Grid,
    jobs: Sequence[JobSpec | str] | None = None,
    *,
    forecast_error_pct: float = 0.0,
    seed: int = 0,
    repeats: int = 1,
    interruptible: bool | Sequence[bool] = False,
    min_chunk: str | float | timedelta | None = None,
    pause_cost_s: float = 0.0,
    tz: str | None = None,
    trace_name: str = "",
) -> BacktestReport:
    """Replay `series` with the job families; one row per (family, interruptible) pair."""
    if not (0.0 <= forecast_error_pct <= 1000.0):
        raise WattprintInputError("forecast_error", f"got {forecast_error_pct!r}; expected a percentage >= 0")
    if repeats < 1:
        raise WattprintInputError("repeats", f"got {repeats!r}; expected a whole number >= 1")
    grid = series if isinstance(series, Grid) else Grid.from_series(series)
    specs = [j if isinstance(j, JobSpec) else JobSpec.parse(j) for j in (jobs or DEFAULT_JOBS)]
    modes = [interruptible] if isinstance(interruptible, bool) else list(interruptible)
    start, end = grid.to_dt(grid.start_s), grid.to_dt(grid.end_s)
    forecasts = [noisy_forecast(grid, forecast_error_pct, np.random.default_rng([seed, 1, r])) for r in range(repeats)]
    rows = []
    for index, spec in enumerate(specs):
        e, dl = spec.windows(start, end, np.random.default_rng([seed, 0, index]), tz)
        d = np.full(e.shape, spec.duration_s)
        covered = grid.fully_covered(grid.epochs_to_s(e), grid.epochs_to_s(e) + d) if e.size else np.empty(0, bool)
        e, dl, d = e[covered], dl[covered], d[covered]
        skipped = int(np.sum(~covered))
        for mode in modes:
            best = plan_many(grid, e, dl, d, interruptible=mode, min_chunk=min_chunk, pause_cost_s=pause_cost_s)
            ok = best.feasible
            base_f = float(np.sum(best.baseline_intensity[ok] * d[ok]))
            opt_f = float(np.sum(best.mean_intensity[ok] * d[ok]))
            planned_f, misses = 0.0, 0
            for fc in forecasts:
                p = plan_many(
                    fc,
                    e,
                    dl,
                    d,
                    interruptible=mode,
                    min_chunk=min_chunk,
                    pause_cost_s=pause_cost_s,
                    evaluate_on=grid,
                )
                planned_f += float(np.sum(p.actual_intensity[ok] * d[ok])) / repeats
                misses += int(np.sum((p.end[ok] > dl[ok] + 1e-6) | (p.start[ok] < e[ok] - 1e-6)))
            dur = float(np.sum(d[ok]))
            rows.append(
                BacktestRow(
                    jobs=spec.text,
                    interruptible=mode,
                    n=int(ok.sum()),
                    skipped=skipped + int(np.sum(~ok)),
                    baseline_intensity=base_f / dur if dur else float("nan"),
                    planned_intensity=planned_f / dur if dur else float("nan"),
                    optimal_intensity=opt_f / dur if dur else float("nan"),
                    savings_pct=_pct(base_f - planned_f, base_f),
                    optimal_savings_pct=_pct(base_f - opt_f, base_f),
                    share_of_optimum_pct=_pct(base_f - planned_f, base_f - opt_f),
                    deadline_misses=misses,
                )
            )
    return BacktestReport(
        trace=trace_name,
        region=grid.region,
        period=(start.isoformat(), end.isoformat()),
        forecast_error_pct=float(forecast_error_pct),
        seed=seed,
        repeats=repeats,
        tz=tz or "UTC",
        rows=tuple(rows),
    )
