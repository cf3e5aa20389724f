"""Carbon-aware scheduling: run a job when (and where) the grid is cleanest, before its deadline.

Planning (exact optima for the given forecast or trace, vectorised):
    plan(series, duration, deadline=|window=, earliest=, interruptible=, min_chunk=, pause_cost_s=) -> Plan
    plan_location({region: series}, duration, ..., pue=, home=) -> LocationPlan
    plan_many(series, earliest, deadline, duration, interruptible=, evaluate_on=) -> BatchPlan
Execution (used by `wattprint run --within/--deadline`):
    Executor(forecast, window, ...) .wait_for_start() / .supervise(popen); TreePauser, CallbackPauser
    sbatch_line(plan, script), cron_line(plan, command)
Backtests (`wattprint schedule backtest`):
    backtest(series, jobs, forecast_error_pct=, seed=, interruptible=) -> BacktestReport
Durations and times: parse_duration("1h30m"), parse_time("2020-03-01T06:00")  (naive = UTC)

Heavy pieces import lazily: `import wattprint.schedule` costs numpy only.
"""

from __future__ import annotations

from wattprint._lazy import lazy_exports
from wattprint.schedule.batch import BatchPlan, plan_many
from wattprint.schedule.planning import LocationPlan, Plan, Window, plan, plan_location, resolve_window
from wattprint.schedule.timeparse import format_duration, iso, parse_duration, parse_time

_LAZY = {
    "Executor": "wattprint.schedule.execute",
    "FileForecast": "wattprint.schedule.execute",
    "StaticForecast": "wattprint.schedule.execute",
    "TreePauser": "wattprint.schedule.execute",
    "CallbackPauser": "wattprint.schedule.execute",
    "Cancelled": "wattprint.schedule.execute",
    "sbatch_line": "wattprint.schedule.cluster",
    "cron_line": "wattprint.schedule.cluster",
    "JobSpec": "wattprint.schedule.backtesting",
    "BacktestReport": "wattprint.schedule.backtesting",
    "backtest": "wattprint.schedule.backtesting",
    "parse_jobs": "wattprint.schedule.backtesting",
    "noisy_forecast": "wattprint.schedule.backtesting",
}

__all__ = [
    "BatchPlan",
    "LocationPlan",
    "Plan",
    "Window",
    "format_duration",
    "iso",
    "parse_duration",
    "parse_time",
    "plan",
    "plan_location",
    "plan_many",
    "resolve_window",
    *sorted(_LAZY),
]


__getattr__ = lazy_exports(__name__, _LAZY)
