"""Optuna: measured energy of each trial as one more objective.

    study = optuna.create_study(directions=["maximize", "minimize"])   # accuracy up, energy down
    with energy_objective(objective) as wrapped:
        study.optimize(wrapped, n_trials=20)
    study.best_trials                                                  # the accuracy/energy Pareto front

The study is one tracked run (stored like any other, named "optuna:<study>"), each trial a window
"trial N" on it. The wrapped objective returns the user's value(s) followed by the trial's energy in
kWh, and stores on the trial (user attrs): wattprint_energy_kwh, wattprint_co2e_kg.operational,
wattprint_duration_s, wattprint_energy_method (how the energy was obtained), wattprint_run_id.

Trials that run at the same time in one process (`n_jobs` > 1) cannot be told apart: each one's
energy then includes the others', and the trial is marked `wattprint_energy_shared`. If wattprint
itself fails during a trial, the energy is NaN (Optuna then fails that trial rather than rank a
number that was not measured), `wattprint_fault` says why, and the study's record is flagged
(`degraded["optuna"]`); the user's values are kept in `wattprint_user_values`.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

from wattprint._extras import require
from wattprint.errors import WattprintInputError
from wattprint.integrations._training import flag_fault, log, method_label
from wattprint.tracking.base import TrackerLike
from wattprint.units import joules_to_kwh

optuna = require("optuna", extra="optuna", feature="the Optuna energy objective")

TRIAL_PREFIX = "trial "


class EnergyObjective:
    """An Optuna objective that also returns each trial's measured energy (kWh) as its last value."""

    def __init__(
        self,
        objective: Callable[[Any], Any],
        *,
        name: str | None = None,
        tracker: TrackerLike | None = None,
        **tracker_kwargs: Any,
    ) -> None:
        from wattprint.tracking.tracker import Tracker

        if not callable(objective):
            raise WattprintInputError("objective", f"got {type(objective).__name__}; expected a callable(trial)")
        self.objective = objective
        self.owns_tracker = tracker is None
        # made now so that bad settings fail before the study starts; started at the first trial
        self.tracker = tracker if tracker is not None else Tracker(name or "optuna", **tracker_kwargs)
        self._named = name is not None
        self._lock = threading.Lock()
        self._open: set[str] = set()
        self._shared: set[str] = set()
        self._warned = False

    # -- life cycle ------------------------------------------------------------------------------
    def _ensure_started(self, trial: Any) -> None:
        with self._lock:
            if self.tracker.monitor is not None:
                return
            if self.owns_tracker and not self._named:
                self.tracker.name = f"optuna:{trial.study.study_name}"
            self.tracker.start()

    def close(self) -> Any:
        """Stop the study's run (when this wrapper made it) and return its record."""
        rec = self.tracker.record
        if self.owns_tracker and rec is not None and rec.status == "running":
            return self.tracker.stop("finished")
        return rec

    def __enter__(self) -> EnergyObjective:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        rec = self.tracker.record
        if self.owns_tracker and rec is not None and rec.status == "running":
            self.tracker.stop("finished" if exc_type is None else "failed")

    # -- one trial -------------------------------------------------------------------------------
    def __call__(self, trial: Any) -> tuple[float, ...]:
        if len(trial.study.directions) < 2:  # fail before spending the trial's compute
            self._check_directions(trial, 1)
        window = f"{TRIAL_PREFIX}{trial.number}"
        measuring = self._begin(trial, window)
        values: tuple[float, ...] | None = None
        try:
            result = self.objective(trial)
            values = tuple(result) if isinstance(result, Sequence) and not isinstance(result, str) else (result,)
            self._check_directions(trial, len(values))
        finally:  # a failed or pruned trial still gets its energy
            energy_kwh = self._end(trial, window) if measuring else math.nan
            if values is not None and not math.isfinite(energy_kwh):
                trial.set_user_attr("wattprint_user_values", list(values))
        return (*values, energy_kwh)

    def _check_directions(self, trial: Any, n_values: int) -> None:
        directions = len(trial.study.directions)
        if directions != n_values + 1:
            raise WattprintInputError(
                "directions",
                f"the study has {directions} objective(s) but the wrapped objective returns "
                f"{n_values + 1} ({n_values} of yours + energy_kwh); create the study with one more direction, "
                "e.g. directions=['maximize', 'minimize']",
            )

    def _begin(self, trial: Any, window: str) -> bool:
        try:
            self._ensure_started(trial)
            with self._lock:
                if self._open:  # another trial is running in this process: their energies mix
                    self._shared |= self._open | {window}
                self._open.add(window)
            self.tracker.begin_window(window)
            return True
        except Exception as exc:  # the study comes first: the trial runs unmeasured
            with self._lock:
                self._open.discard(window)
            self._fault(trial, "opening the trial window", exc)
            return False

    def _end(self, trial: Any, window: str) -> float:
        try:
            result = self.tracker.end_window(window)
            with self._lock:
                self._open.discard(window)
                if self._open:
                    self._shared |= self._open | {window}
                shared = window in self._shared
                self._shared.discard(window)
            rec = self.tracker.record
            assert rec is not None  # the tracker was started with the study (fault handling: see below)
            energy_kwh = joules_to_kwh(result.total_j)
            trial.set_user_attr("wattprint_energy_kwh", energy_kwh)
            operational_kg = energy_kwh * rec.pue * rec.intensity_g_per_kwh / 1000.0
            trial.set_user_attr("wattprint_co2e_kg.operational", operational_kg)
            trial.set_user_attr("wattprint_duration_s", result.duration_s)
            trial.set_user_attr("wattprint_energy_method", method_label(rec))
            trial.set_user_attr("wattprint_run_id", rec.run_id)
            if shared:
                trial.set_user_attr("wattprint_energy_shared", True)
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "wattprint: Optuna trials ran at the same time in one process; each trial's "
                        "energy includes the others' (use n_jobs=1 for per-trial energy)"
                    )
            return energy_kwh
        except Exception as exc:  # the study comes first: the trial's energy is NaN
            with self._lock:
                self._open.discard(window)
            self._fault(trial, "closing the trial window", exc)
            return math.nan

    def _fault(self, trial: Any, where: str, exc: BaseException) -> None:
        flag_fault(self.tracker, "optuna", where, exc)
        with contextlib.suppress(Exception):  # the study comes first
            trial.set_user_attr("wattprint_fault", f"{where}: {type(exc).__name__}: {exc}")


def energy_objective(
    objective: Callable[[Any], Any],
    *,
    name: str | None = None,
    tracker: TrackerLike | None = None,
    **tracker_kwargs: Any,
) -> EnergyObjective:
    """Wrap `objective(trial)` so that it returns (its value(s)..., energy_kwh); see the module doc."""
    return EnergyObjective(objective, name=name, tracker=tracker, **tracker_kwargs)
