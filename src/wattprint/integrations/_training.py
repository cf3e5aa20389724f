"""Framework-neutral core of the training callbacks: epoch and step energy from Tracker windows.

The Lightning and Hugging Face callbacks only translate their framework's events into calls on a
`TrainingMeter` and send the returned numbers to the framework's loggers. The meter never raises:
the first fault is logged on the "wattprint" logger, flagged on the record under the framework's
name (`degraded["lightning"]`, `degraded["hf"]`, through `Tracker.flag`) and measuring stops,
while training goes on. Step windows are kept off the record (`end_window(..., record=False)`):
one entry per `log_every_n_steps` steps would only grow it; epoch windows stay on it.

CO2e names say which figure they are, as on the record (`co2e_kg.operational`, `.embodied`, `.total`).
Each epoch gets all three, counted as the record counts the run (`Tracker.window_co2e_kg`); steps, the running
figure and the prediction are operational. The finished run gets its totals (`run_...`) and the part outside
every epoch (`outside_epochs_...`: set-up, validation between epochs, teardown), the run's figure less the epochs',
so that the epochs and that part add up to the run's figures. That part also takes up what the epochs' figures could
not know when they were logged: a time-resolved intensity applied at the end, and the host share held over the
whole run (each epoch's embodied figure uses the share held by its end), so it can be slightly negative.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from wattprint.measure.base import COMPONENTS
from wattprint.record import RunRecord, Status
from wattprint.report.values import fmt_energy, fmt_mass
from wattprint.tracking.base import TrackerLike
from wattprint.units import joules_to_kwh

log = logging.getLogger("wattprint")

EPOCH_PREFIX = "epoch "  # window names "epoch 0", "epoch 1", ...: Tracker.predict selects them by this prefix
STEP_PREFIX = "steps from "  # window names "steps from 0", "steps from 50", ...: never mistaken for an epoch


def method_label(record: RunRecord) -> str:
    """How each component's energy was obtained, e.g. 'cpu: model (estimated), ram: model (estimated)'."""
    parts = []
    for component in COMPONENTS:
        source = getattr(record.measurement, component)
        if source:
            method = (record.methods.get(component) or {}).get("method") or "unknown"
            parts.append(f"{component}: {source} ({method})")
    return ", ".join(parts) or "no power source"


def summary(record: RunRecord) -> str:
    """One line for people: energy with its method, CO2e with its grid, duration, run id."""
    return (
        f"wattprint: {record.name} [{record.run_id[:8]}] {record.status}, {record.duration_s:.1f} s, "
        f"{fmt_energy(record.energy_kwh.total)} ({method_label(record)}), "
        f"{fmt_mass(record.co2e_kg.total)} CO2e ({record.region} {record.intensity_g_per_kwh:.0f} g/kWh, "
        f"PUE {record.pue:g})" + (f"; degraded: {', '.join(sorted(record.degraded))}" if record.degraded else "")
    )


def flag_fault(tracker: TrackerLike, key: str, where: str, exc: BaseException) -> None:
    """Log an integration's fault once per tracker and key, and flag it on the record
    (`degraded[key]`, kept through every checkpoint); never raises."""
    try:
        record = getattr(tracker, "record", None)
        if record is not None and key in record.degraded:
            return
        log.warning(
            "wattprint: %s failed, measurement stopped, training goes on: %s: %s", where, type(exc).__name__, exc
        )
        tracker.flag(key, f"{where}: {type(exc).__name__}: {exc}")
    except Exception:  # the host job comes first, even when logging breaks
        pass


class TrainingMeter:
    """Epoch and step windows on a Tracker, turned into loggable numbers.

    `tracker`: an existing Tracker (started or not) that the caller owns; otherwise one is made
    from `name` and `tracker_kwargs` (bad settings raise here, before training starts) and is
    stopped by `finish`. `log_every_n_steps`: the cadence of the per-step figure (mean energy per
    step over the last n steps); 0 turns it off. `predict_after_epochs`: from this many finished
    epochs on, each epoch end also predicts the whole run. `flag_key`: the record's `degraded` key
    for this meter's faults (the framework's name).
    """

    def __init__(
        self,
        name: str,
        *,
        tracker: TrackerLike | None = None,
        log_every_n_steps: int = 50,
        predict_after_epochs: int = 2,
        prefix: str = "wattprint/",
        flag_key: str = "training",
        **tracker_kwargs: Any,
    ) -> None:
        from wattprint.errors import WattprintInputError
        from wattprint.tracking.tracker import Tracker

        for field, value, least in (
            ("log_every_n_steps", log_every_n_steps, 0),
            ("predict_after_epochs", predict_after_epochs, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise WattprintInputError(field, f"got {value!r}; expected an integer >= {least}")
        self.owns_tracker = tracker is None
        self.tracker = tracker if tracker is not None else Tracker(name, **tracker_kwargs)
        self.log_every_n_steps = log_every_n_steps
        self.predict_after_epochs = predict_after_epochs
        self.prefix = prefix
        self.flag_key = flag_key
        self.epochs_done = 0
        self.prediction: Any = None
        self._epoch: str | None = None
        self._epoch_prefix = EPOCH_PREFIX
        self._fits = 0  # fits measured on the current tracker
        self._steps: str | None = None
        self._steps_in_window = 0
        self._step = 0
        self._epoch_sums = {"energy_kwh": 0.0, "operational": 0.0, "embodied": 0.0}  # this fit's epochs so far
        self.active = False

    # -- helpers ---------------------------------------------------------------------------------
    def _co2e_kg(self, energy_kwh: float) -> float:
        """Operational CO2e at the run's intensity and PUE; embodied comes with the finished run only."""
        rec = self.tracker.record
        if rec is None:  # not started: no intensity known yet
            return 0.0
        return energy_kwh * rec.pue * rec.intensity_g_per_kwh / 1000.0

    def _fail(self, where: str, exc: BaseException) -> None:
        flag_fault(self.tracker, self.flag_key, where, exc)
        self.active = False

    # -- events ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start (or join) the tracker. A fault disables the meter; it is never raised."""
        from wattprint.tracking.tracker import Tracker

        try:
            rec = self.tracker.record
            if self.owns_tracker and rec is not None:
                if rec.status == "running":  # the last fit died without an end event
                    self.finish("failed")
                # a second fit with the same callback is a new run
                self.tracker = Tracker(self.tracker.name, settings=self.tracker.settings)
                self._fits = 0
            if self.tracker.monitor is None:
                self.tracker.start()
            # your tracker through a second fit: that fit's epochs get their own names, so that its
            # prediction uses its own epochs only
            self._fits += 1
            self._epoch_prefix = EPOCH_PREFIX if self._fits == 1 else f"fit {self._fits} {EPOCH_PREFIX}"
            self.active = True
            self.epochs_done = 0
            self.prediction = None
            self._epoch_sums = dict.fromkeys(self._epoch_sums, 0.0)
        except Exception as exc:  # training goes on; the meter stops
            self._fail("starting the tracker", exc)

    def begin_epoch(self, epoch: int) -> None:
        if not self.active:
            return
        try:
            if self._epoch is not None:  # an epoch that never ended (a framework quirk): close it unused
                self.tracker.end_window(self._epoch)
            self._epoch = f"{self._epoch_prefix}{epoch}"
            self.tracker.begin_window(self._epoch)
        except Exception as exc:  # training goes on; the meter stops
            self._epoch = None
            self._fail("opening the epoch window", exc)

    def end_epoch(self, total_epochs: int | None) -> dict[str, float]:
        """Close the epoch window; its energy and CO2e, the run's so far, and a prediction when due."""
        if not self.active or self._epoch is None:
            return {}
        p = self.prefix
        try:
            result = self.tracker.end_window(self._epoch)
            self._epoch = None
            self.epochs_done += 1
            epoch_kwh = joules_to_kwh(result.total_j)
            try:
                operational, embodied = self.tracker.window_co2e_kg(result)
            except Exception as exc:  # the epoch's energy still counts; its embodied figure is left out
                log.debug("epoch CO2e by the record's rule failed: %s", exc)
                operational, embodied = self._co2e_kg(epoch_kwh), math.nan
            for key, value in (("energy_kwh", epoch_kwh), ("operational", operational), ("embodied", embodied)):
                self._epoch_sums[key] += value
            # as of the sample the window just took at its end
            so_far_kwh = self.tracker.energy_so_far_kwh()["total"]
            out = {
                f"{p}epoch_energy_kwh": epoch_kwh,
                f"{p}epoch_co2e_kg.operational": operational,
                f"{p}epoch_co2e_kg.embodied": embodied,
                f"{p}epoch_co2e_kg.total": operational + embodied,
                f"{p}energy_kwh": so_far_kwh,
                f"{p}co2e_kg.operational": self._co2e_kg(so_far_kwh),
            }
            if total_epochs and self.epochs_done >= self.predict_after_epochs and total_epochs >= self.epochs_done:
                out |= self._predict(total_epochs)
            return {k: v for k, v in out.items() if math.isfinite(v)}  # a figure that could not be had is left out
        except Exception as exc:  # training goes on; the meter stops
            self._fail("closing the epoch window", exc)
            return {}

    def _predict(self, total_epochs: int) -> dict[str, float]:
        from wattprint.accounting.predict import progress_line

        pred = self.tracker.predict(total_epochs, prefix=self._epoch_prefix)
        self.prediction = pred
        log.info("wattprint: %s", progress_line(pred))
        p = self.prefix
        return {
            f"{p}predicted_energy_kwh": pred.energy_kwh.value,
            f"{p}predicted_energy_kwh_low": pred.energy_kwh.low,
            f"{p}predicted_energy_kwh_high": pred.energy_kwh.high,
            f"{p}predicted_co2e_kg.operational": pred.co2e_kg.value,
            f"{p}predicted_duration_s": pred.duration_s.value,
        }

    def begin_step(self) -> None:
        """Open the step window at the first of every `log_every_n_steps` training steps."""
        if not self.active or self.log_every_n_steps == 0 or self._steps is not None:
            return
        try:
            self._steps = f"{STEP_PREFIX}{self._step}"
            self.tracker.begin_window(self._steps)
        except Exception as exc:  # training goes on; the meter stops
            self._steps = None
            self._fail("measuring steps", exc)

    def end_step(self) -> dict[str, float]:
        """Count one step; after `log_every_n_steps` of them, the mean energy per step over the window."""
        if not self.active or self._steps is None:
            return {}
        self._step += 1
        self._steps_in_window += 1
        if self._steps_in_window < self.log_every_n_steps:
            return {}
        try:
            result = self.tracker.end_window(self._steps, record=False)
            n, self._steps, self._steps_in_window = self._steps_in_window, None, 0
            step_kwh = joules_to_kwh(result.total_j) / n
            return {
                f"{self.prefix}step_energy_kwh": step_kwh,
                f"{self.prefix}step_co2e_kg.operational": self._co2e_kg(step_kwh),
            }
        except Exception as exc:  # training goes on; the meter stops
            self._steps = None
            self._fail("measuring steps", exc)
            return {}

    def finish(self, status: Status = "finished") -> RunRecord | None:
        """Stop the tracker when this meter made it; return the record (final, or running if not ours)."""
        self.active = False
        monitor = self.tracker.monitor
        try:
            # a partial window would overlap the next fit's; only the epoch's goes on the record
            for window, keep in ((self._steps, False), (self._epoch, True)):
                if window is not None and monitor is not None and window in monitor.open_windows():
                    self.tracker.end_window(window, record=keep)
        except Exception as exc:  # a stuck window must not keep the run from stopping
            flag_fault(self.tracker, self.flag_key, "closing windows", exc)
        self._steps, self._steps_in_window, self._epoch = None, 0, None
        rec = self.tracker.record
        if self.owns_tracker and rec is not None and rec.status == "running":
            try:
                return self.tracker.stop(status)
            except Exception as exc:  # the meter never raises into training
                flag_fault(self.tracker, self.flag_key, "stopping the tracker", exc)
        return rec

    def final_metrics(self, record: RunRecord | None) -> dict[str, float]:
        """The finished run's totals (energy at the hardware, CO2e operational, embodied and total, duration) and,
        after epochs, the part outside them: the run's figure less the epochs' sum."""
        if record is None:
            return {}
        p = self.prefix
        out = {
            f"{p}run_energy_kwh": record.energy_kwh.total,
            f"{p}run_co2e_kg.operational": record.co2e_kg.operational,
            f"{p}run_co2e_kg.embodied": record.co2e_kg.embodied,
            f"{p}run_co2e_kg.total": record.co2e_kg.total,
            f"{p}run_duration_s": record.duration_s,
        }
        # a second fit on one tracker, or a run still going: no single remainder to state
        if self.epochs_done and self._fits == 1 and record.status != "running":
            sums = self._epoch_sums
            operational = record.co2e_kg.operational - sums["operational"]
            embodied = record.co2e_kg.embodied - sums["embodied"]
            out |= {
                f"{p}outside_epochs_energy_kwh": record.energy_kwh.total - sums["energy_kwh"],
                f"{p}outside_epochs_co2e_kg.operational": operational,
                f"{p}outside_epochs_co2e_kg.embodied": embodied,
                f"{p}outside_epochs_co2e_kg.total": operational + embodied,
            }
        return {k: v for k, v in out.items() if math.isfinite(v)}
