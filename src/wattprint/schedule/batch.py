"""Many jobs on one series at once: vectorised planning (backtests, capacity studies).

    bp = plan_many(series, earliest=epochs, deadline=epochs + 8 * 3600, duration=3600)
    bp.mean_intensity, bp.baseline_intensity, bp.savings_pct     # arrays, one entry per job

Times are arrays of POSIX seconds (or sequences of datetimes). A plan made on a forecast can be
scored on the actual trace with `evaluate_on=`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from wattprint.errors import WattprintInputError
from wattprint.intensity.base import IntensitySeries
from wattprint.schedule import solvers
from wattprint.schedule.grid import Grid, as_grid
from wattprint.schedule.timeparse import parse_duration

TimesLike = np.ndarray | Sequence[float] | Sequence[datetime]


@dataclass(frozen=True)
class BatchPlan:
    """One entry per job; infeasible jobs (window not covered, too little data): NaN, feasible False."""

    earliest: np.ndarray  # POSIX s
    deadline: np.ndarray
    duration_s: np.ndarray
    start: np.ndarray  # first slot's start, POSIX s
    end: np.ndarray  # last slot's end, POSIX s
    mean_intensity: np.ndarray  # on the series planned on, g/kWh
    baseline_intensity: np.ndarray  # run at earliest, uninterrupted, on the evaluation series
    actual_intensity: np.ndarray  # the plan scored on the evaluation series (= mean_intensity without one)
    feasible: np.ndarray

    @property
    def savings_pct(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return 100.0 * (self.baseline_intensity - self.actual_intensity) / self.baseline_intensity


def _epochs(values: TimesLike, name: str) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64)
    vals = list(values)
    if vals and isinstance(vals[0], datetime):
        from wattprint.schedule.timeparse import parse_time

        return np.array([parse_time(v, name).timestamp() for v in vals], dtype=np.float64)  # type: ignore[arg-type]
    return np.asarray(vals, dtype=np.float64)


def plan_many(
    series: IntensitySeries | Grid,
    earliest: TimesLike,
    deadline: TimesLike,
    duration: float | np.ndarray | timedelta | str,
    *,
    interruptible: bool = False,
    min_chunk: float | timedelta | str | None = None,
    pause_cost_s: float = 0.0,
    evaluate_on: IntensitySeries | Grid | None = None,
) -> BatchPlan:
    """Plan every job (same rules and optimality as `plan`), vectorised across jobs.

    Non-interruptible and interruptible-without-min-chunk plans are fully vectorised; with a
    minimum chunk or a pause cost, each job runs the chunked programme in turn.
    """
    grid = as_grid(series)
    ev = grid if evaluate_on is None else as_grid(evaluate_on)
    e_ep = _epochs(earliest, "earliest")
    d_ep = _epochs(deadline, "deadline")
    if isinstance(duration, (str, timedelta)):
        duration = parse_duration(duration).total_seconds()
    dur = np.broadcast_to(np.asarray(duration, dtype=np.float64), e_ep.shape).copy()
    if e_ep.shape != d_ep.shape or e_ep.ndim != 1:
        raise WattprintInputError("deadline", "earliest and deadline must be 1-d arrays of the same length")
    if np.any(~(dur > 0)):
        raise WattprintInputError("duration", "every duration must be > 0 seconds")
    m = parse_duration(min_chunk, "min_chunk").total_seconds() if min_chunk not in (None, 0, "0") else 0.0
    e = grid.epochs_to_s(e_ep)
    dl = grid.epochs_to_s(d_ep)
    inside = (e >= max(grid.start_s, ev.start_s) - 1e-6) & (dl <= min(grid.end_s, ev.end_s) + 1e-6) & (dl - e >= dur)
    e_c = np.where(inside, e, grid.start_s)
    dl_c = np.where(inside, dl, grid.start_s)  # an empty window: infeasible
    shift = grid.origin_epoch - ev.origin_epoch  # grid seconds -> evaluation-grid seconds

    s, f = solvers.best_starts(grid, e_c, dl_c, dur)
    start, end, f_plan = s, s + dur, f
    f_act = np.where(np.isfinite(s), ev.integral(s + shift, s + dur + shift), np.inf)
    if interruptible and (m <= 0 and pause_cost_s <= 0):
        fi, _, first, last, pieces = solvers.cleanest(grid, e_c, dl_c, dur, want_pieces=True)
        assert pieces is not None
        fi_act = np.bincount(
            pieces.job,
            weights=ev.integral(pieces.lo + shift, pieces.lo + pieces.taken + shift),
            minlength=e.size,
        )
        better = np.isfinite(fi) & (fi < f_plan - solvers._rel_tol(np.where(np.isfinite(f_plan), f_plan, 0.0)))
        start, end = np.where(better, first, start), np.where(better, last, end)
        f_plan, f_act = np.where(better, fi, f_plan), np.where(better, fi_act, f_act)
    elif interruptible:
        for j in np.flatnonzero(np.isfinite(f_plan)):
            if dur[j] <= m:
                continue
            res = solvers.chunked(grid, float(e_c[j]), float(dl_c[j]), float(dur[j]), m, pause_cost_s)
            if res is not None and res.objective < f_plan[j]:
                start[j], end[j], f_plan[j] = res.slots[0][0], res.slots[-1][1], res.f
                f_act[j] = sum(float(ev.integral(a + shift, b + shift)) for a, b in res.slots)
    feasible = np.isfinite(f_plan) & inside
    base_cov = ev.covered(e_c + shift, e_c + dur + shift)
    with np.errstate(divide="ignore", invalid="ignore"):
        baseline = np.where(feasible & (base_cov > 0), ev.integral(e_c + shift, e_c + dur + shift) / base_cov, np.nan)
        mean = np.where(feasible, f_plan / dur, np.nan)
        actual = np.where(feasible, f_act / dur, np.nan)
    origin = grid.origin_epoch
    return BatchPlan(
        earliest=e_ep,
        deadline=d_ep,
        duration_s=dur,
        start=np.where(feasible, start + origin, np.nan),
        end=np.where(feasible, end + origin, np.nan),
        mean_intensity=mean,
        baseline_intensity=baseline,
        actual_intensity=actual,
        feasible=feasible,
    )
