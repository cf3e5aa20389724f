"""Plans: when (and where) to run a job of known duration before its deadline.

    from wattprint.schedule import plan
    p = plan(series, "2h", deadline="2020-03-02T06:00", earliest="2020-03-01T18:00")
    p.start, p.slots, p.mean_intensity, p.savings_pct, p.co2e_kg(energy_kwh=1.5, pue=1.2)

Intensities are time-weighted means in gCO2e/kWh over the time the job runs; emissions follow
the tracker's accounting (`wattprint.accounting.footprint.operational_co2e_kg`: energy x PUE x
intensity). The baseline is the job run at `earliest` without interruption. See `solvers` for how
each plan is computed and in what sense it is optimal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from wattprint.accounting.footprint import operational_co2e_kg
from wattprint.errors import WattprintInputError
from wattprint.intensity.base import IntensitySeries
from wattprint.schedule import solvers
from wattprint.schedule.grid import TIME_TOL_S, Grid, as_grid, utc_now
from wattprint.schedule.timeparse import format_duration, iso, parse_duration, parse_time

Slot = tuple[datetime, datetime]


@dataclass(frozen=True)
class Window:
    """The job's duration and the window it must run in: [earliest, deadline]."""

    earliest: datetime
    deadline: datetime
    duration: timedelta

    @property
    def duration_s(self) -> float:
        return self.duration.total_seconds()


def resolve_window(
    duration: str | float | timedelta,
    *,
    deadline: str | datetime | None = None,
    window: str | float | timedelta | None = None,
    earliest: str | datetime | None = None,
    now: datetime | None = None,
) -> Window:
    """Validate and resolve the inputs of a plan. Exactly one of `deadline` and `window` (counted from
    `earliest`). `earliest` defaults to `now` (default: the current time); a deadline must then be in
    the future. Raises `WattprintInputError` naming the field."""
    d = parse_duration(duration, "duration")
    if (deadline is None) == (window is None):
        raise WattprintInputError(
            "deadline",
            "give either a deadline (a time) or a window (a duration), not both"
            if deadline is not None
            else "give a deadline (a time) or a window (a duration)",
        )
    defaulted = earliest is None
    now = utc_now() if now is None else parse_time(now, "now")
    e = now if defaulted else parse_time(earliest, "earliest")  # type: ignore[arg-type]
    dl = (
        parse_time(deadline, "deadline") if deadline is not None else e + parse_duration(window, "window")  # type: ignore[arg-type]
    )
    if defaulted and dl <= now:
        raise WattprintInputError(
            "deadline",
            f"{iso(dl)} is in the past (now is {iso(now.replace(microsecond=0))}); "
            "to plan over a past trace, give the earliest start (--earliest)",
        )
    if dl <= e:
        raise WattprintInputError("deadline", f"{iso(dl)} is not after earliest {iso(e)}")
    if d > dl - e:
        raise WattprintInputError(
            "duration",
            f"{format_duration(d.total_seconds())} is longer than the window {iso(e)} .. {iso(dl)} "
            f"({format_duration((dl - e).total_seconds())})",
        )
    return Window(e, dl, d)


@dataclass(frozen=True)
class Plan:
    """When to run: one slot (non-interruptible) or several (interruptible), inside [earliest, deadline]."""

    region: str
    source: str
    earliest: datetime
    deadline: datetime
    duration_s: float
    interruptible: bool
    slots: tuple[Slot, ...]
    #: time-weighted mean intensity over the slots, gCO2e/kWh
    mean_intensity: float
    #: the job run at `earliest` without interruption, gCO2e/kWh (over the covered part if a gap)
    baseline_intensity: float
    baseline_coverage: float = 1.0
    min_chunk_s: float = 0.0
    pause_cost_s: float = 0.0
    #: grid of the chunked programme (s), None where the plan is the exact continuous optimum
    resolution_s: float | None = None

    @property
    def start(self) -> datetime:
        return self.slots[0][0]

    @property
    def end(self) -> datetime:
        return self.slots[-1][1]

    @property
    def pauses(self) -> int:
        return len(self.slots) - 1

    @property
    def savings_pct(self) -> float:
        if self.baseline_intensity <= 0:
            return 0.0
        return 100.0 * (self.baseline_intensity - self.mean_intensity) / self.baseline_intensity

    def co2e_kg(self, energy_kwh: float, pue: float = 1.0) -> float:
        """Operational kgCO2e of the job run as planned, `energy_kwh` at the hardware (the tracker's rule)."""
        return operational_co2e_kg(energy_kwh, self.mean_intensity, pue)

    def baseline_co2e_kg(self, energy_kwh: float, pue: float = 1.0) -> float:
        return operational_co2e_kg(energy_kwh, self.baseline_intensity, pue)

    def to_json(self) -> dict[str, Any]:
        """The `wattprint schedule --json` document."""
        return {
            "start": iso(self.start),
            "end": iso(self.end),
            "slots": [[iso(a), iso(b)] for a, b in self.slots],
            "mean_intensity": float(self.mean_intensity),
            "baseline_intensity": float(self.baseline_intensity),
            "savings_pct": float(self.savings_pct),
        }


def check_coverage(grid: Grid, w: Window, field_name: str = "trace") -> None:
    """The data must span the whole window (gaps inside it are avoided, not filled)."""
    if grid.to_s(w.earliest) < grid.start_s - TIME_TOL_S or grid.to_s(w.deadline) > grid.end_s + TIME_TOL_S:
        raise WattprintInputError(
            field_name,
            f"the intensity data covers {iso(grid.to_dt(grid.start_s))} .. {iso(grid.to_dt(grid.end_s))}, "
            "not the "
            f"whole window {iso(w.earliest)} .. {iso(w.deadline)}",
        )


def plan(
    series: IntensitySeries | Grid | Any,
    duration: str | float | timedelta,
    *,
    deadline: str | datetime | None = None,
    window: str | float | timedelta | None = None,
    earliest: str | datetime | None = None,
    interruptible: bool = False,
    min_chunk: str | float | timedelta | None = None,
    pause_cost_s: float = 0.0,
    now: datetime | None = None,
) -> Plan:
    """The plan of least emissions for the job on this intensity series (a forecast or a trace).

    `series`: an `IntensitySeries` (e.g. `TraceProvider(path).full_series`), a pandas Series indexed by
    time, a DataFrame with a time column and a gCO2e/kWh column, or (time, gCO2e/kWh) pairs; each value
    holds until the next time, naive times are UTC.

    Non-interruptible: the one start in [earliest, deadline - duration] minimising the emission
    integral (exact; the earliest of equal optima). Interruptible: the slots minimising it, each at
    least `min_chunk` long, each pause costing `pause_cost_s` seconds of running at the intensity
    where the job resumes (exact without min_chunk and pause cost; with them, exact on the trace's
    step grid, see `wattprint.schedule.solvers`). Never worse than the non-interruptible plan.
    Raises `WattprintInputError` for bad input or data that does not cover the window.
    """
    w = resolve_window(duration, deadline=deadline, window=window, earliest=earliest, now=now)
    m = parse_duration(min_chunk, "min_chunk").total_seconds() if min_chunk not in (None, 0, "0") else 0.0
    if pause_cost_s < 0 or not np.isfinite(pause_cost_s):
        raise WattprintInputError("pause_cost_s", f"got {pause_cost_s!r}; expected a number of seconds >= 0")
    return plan_window(as_grid(series), w, interruptible=interruptible, min_chunk_s=m, pause_cost_s=pause_cost_s)


def plan_window(
    grid: Grid,
    w: Window,
    *,
    interruptible: bool = False,
    min_chunk_s: float = 0.0,
    pause_cost_s: float = 0.0,
    field_name: str = "trace",
) -> Plan:
    """`plan` for a resolved window and a prepared grid."""
    check_coverage(grid, w, field_name)
    e, dl, d = grid.to_s(w.earliest), grid.to_s(w.deadline), w.duration_s
    ea, da, dd = np.array([e]), np.array([dl]), np.array([d])
    s, f = solvers.best_starts(grid, ea, da, dd)
    single = None if not np.isfinite(s[0]) else ([(float(s[0]), float(s[0]) + d)], float(f[0]))
    slots: list[tuple[float, float]] | None = single[0] if single else None
    fval: float = single[1] if single else float(np.inf)
    resolution: float | None = None
    if interruptible and d > min_chunk_s:
        if min_chunk_s <= 0 and pause_cost_s <= 0:
            fi, _, _, _, pieces = solvers.cleanest(grid, ea, da, dd, want_pieces=True)
            if (
                np.isfinite(fi[0])
                and pieces is not None
                and (single is None or fi[0] < fval - solvers._rel_tol(np.array(fval)))
            ):
                slots, fval = solvers.merge_slots(pieces.lo, pieces.lo + pieces.taken), float(fi[0])
        else:
            res = solvers.chunked(grid, e, dl, d, min_chunk_s, pause_cost_s)
            if res is not None and (single is None or res.objective < fval - solvers._rel_tol(np.array(fval))):
                slots, fval, resolution = res.slots, res.f, res.resolution_s
    if slots is None:
        raise WattprintInputError(
            field_name,
            f"gaps in the intensity data leave no {'' if interruptible else 'uninterrupted '}"
            f"{format_duration(d)} with data in {iso(w.earliest)} .. {iso(w.deadline)}",
        )
    base_f = float(grid.integral(e, e + d))
    base_cov = float(grid.covered(e, e + d))
    baseline = base_f / base_cov if base_cov > 0 else float("nan")
    if not np.isfinite(baseline):
        raise WattprintInputError(field_name, f"no intensity data at earliest {iso(w.earliest)}")
    return Plan(
        region=grid.region,
        source=grid.source,
        earliest=w.earliest,
        deadline=w.deadline,
        duration_s=d,
        interruptible=interruptible,
        slots=tuple((grid.to_dt(a), grid.to_dt(b)) for a, b in slots),
        mean_intensity=fval / d,
        baseline_intensity=baseline,
        baseline_coverage=min(1.0, base_cov / d),
        min_chunk_s=min_chunk_s,
        pause_cost_s=pause_cost_s,
        resolution_s=resolution,
    )


# -- location shifting --------------------------------------------------------------------------
@dataclass(frozen=True)
class LocationPlan:
    """The best (region, plan) over several regions, compared on facility intensity (intensity x PUE)."""

    region: str
    plan: Plan
    plans: dict[str, Plan]
    pue: dict[str, float]
    home: str
    #: skipped regions and why (data not covering the window, ...)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def facility_intensity(self) -> float:
        """gCO2e per kWh at the hardware, PUE included, of the chosen plan."""
        return self.plan.mean_intensity * self.pue[self.region]

    @property
    def baseline_facility_intensity(self) -> float:
        """Running at once in the home region, PUE included."""
        return self.plans[self.home].baseline_intensity * self.pue[self.home]

    @property
    def savings_pct(self) -> float:
        base = self.baseline_facility_intensity
        return 0.0 if base <= 0 else 100.0 * (base - self.facility_intensity) / base

    def co2e_kg(self, energy_kwh: float) -> float:
        return operational_co2e_kg(energy_kwh, self.plan.mean_intensity, self.pue[self.region])


def plan_location(
    traces: Mapping[str, IntensitySeries | Grid] | Sequence[IntensitySeries],
    duration: str | float | timedelta,
    *,
    deadline: str | datetime | None = None,
    window: str | float | timedelta | None = None,
    earliest: str | datetime | None = None,
    interruptible: bool = False,
    min_chunk: str | float | timedelta | None = None,
    pause_cost_s: float = 0.0,
    pue: float | Mapping[str, float] = 1.0,
    home: str | None = None,
    now: datetime | None = None,
) -> LocationPlan:
    """Where and when: the plan of least operational emissions (intensity x PUE) over regions.

    `traces` maps region -> series (a sequence uses each series' region). `home` (default: the first
    region) is where the job would run at once: the baseline. Regions whose data does not cover the
    window are skipped (listed in `.skipped`); if none is left, the first error is raised.
    """
    if not isinstance(traces, Mapping):
        traces = {s.region: s for s in traces}
    if not traces:
        raise WattprintInputError("traces", "no region given")
    home = home if home is not None else next(iter(traces))
    if home not in traces:
        raise WattprintInputError("home", f"{home!r} is not one of the regions {', '.join(traces)}")
    pues = {r: float(pue[r] if isinstance(pue, Mapping) else pue) for r in traces}
    for r, p in pues.items():
        if not (p >= 1.0 and np.isfinite(p)):
            raise WattprintInputError("pue", f"{r}: got {p!r}; expected a finite number >= 1.0")
    w = resolve_window(duration, deadline=deadline, window=window, earliest=earliest, now=now)
    m = parse_duration(min_chunk, "min_chunk").total_seconds() if min_chunk not in (None, 0, "0") else 0.0
    plans: dict[str, Plan] = {}
    skipped: dict[str, str] = {}
    first_error: WattprintInputError | None = None
    for region, series in traces.items():
        try:
            plans[region] = plan_window(
                as_grid(series),
                w,
                interruptible=interruptible,
                min_chunk_s=m,
                pause_cost_s=pause_cost_s,
                field_name="trace" if len(traces) == 1 else f"trace {region}",
            )
        except WattprintInputError as exc:
            skipped[region] = str(exc)
            first_error = first_error or exc
    if home not in plans:
        assert first_error is not None
        raise first_error if not plans else WattprintInputError("home", skipped[home])
    best = min(plans, key=lambda r: (plans[r].mean_intensity * pues[r], r != home))
    return LocationPlan(best, plans[best], plans, pues, home, skipped)
