"""MLflow: a run's energy, carbon and how they were measured, as metrics and tags of an MLflow run.

    with mlflow.start_run():
        with wattprint.integrations.mlflow.track_mlflow() as t:   # tracks, logs at exit
            train()

    log_to_mlflow(tracker_or_record)                               # or log a finished run yourself

Metrics (prefix "wattprint." by default): energy_kwh.{total,cpu,gpu,ram}, facility_energy_kwh,
co2e_kg.{operational,embodied,total,low,high}, duration_s, intensity_g_per_kwh, pue, and
epoch_energy_kwh per epoch window ("epoch N", step N). Tags: run_id, name, status,
measurement.{cpu,gpu,ram} (the source) with method.{cpu,gpu,ram} (measured|estimated), region and
where it came from, intensity source, PUE source, wattprint version, degraded parts. All in one
`log_batch` call, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from wattprint._extras import require
from wattprint.errors import WattprintInputError
from wattprint.integrations._training import EPOCH_PREFIX, method_label
from wattprint.measure.base import COMPONENTS
from wattprint.record import RunRecord
from wattprint.tracking.base import TrackerLike

mlflow = require("mlflow", extra="mlflow", feature="MLflow logging")
log = logging.getLogger("wattprint")

TAG_MAX_CHARS = 5000  # MLflow's limit on a tag value


def _record_of(record_or_tracker: Any) -> RunRecord:
    if isinstance(record_or_tracker, RunRecord):
        return record_or_tracker
    from wattprint.tracking.tracker import Tracker

    if isinstance(record_or_tracker, Tracker):
        rec = record_or_tracker.record
        if rec is None:
            raise WattprintInputError("record_or_tracker", "the tracker was never started; start and stop it first")
        if rec.status == "running":
            raise WattprintInputError("record_or_tracker", "the tracker is still running; stop it first")
        return rec
    raise WattprintInputError(
        "record_or_tracker", f"got {type(record_or_tracker).__name__}; expected a wattprint Tracker or RunRecord"
    )


def _run_id_of(run: Any) -> str:
    """An MLflow run id from None (the active run), an id string, or a Run / ActiveRun."""
    if run is None:
        active = mlflow.active_run()
        if active is None:
            raise WattprintInputError("run", "no active MLflow run; call inside mlflow.start_run() or pass run=")
        return str(active.info.run_id)
    if isinstance(run, str) and run:
        return run
    info = getattr(run, "info", None)
    if info is not None and getattr(info, "run_id", None):
        return str(info.run_id)
    raise WattprintInputError("run", f"got {run!r}; expected None (the active run), a run id, or an MLflow Run")


def mlflow_metrics(record: RunRecord, prefix: str = "wattprint.") -> dict[str, float]:
    """The record's numbers under MLflow metric names."""
    out = {f"{prefix}energy_kwh.{c}": getattr(record.energy_kwh, c) for c in ("total", *COMPONENTS)}
    out |= {f"{prefix}co2e_kg.{k}": getattr(record.co2e_kg, k) for k in ("operational", "embodied", "total")}
    out |= {f"{prefix}co2e_kg.{k}": v for k, v in record.co2e_kg_range.items() if k in ("low", "high")}
    out[f"{prefix}facility_energy_kwh"] = record.facility_energy_kwh
    out[f"{prefix}duration_s"] = record.duration_s
    out[f"{prefix}intensity_g_per_kwh"] = record.intensity_g_per_kwh
    out[f"{prefix}pue"] = record.pue
    return out


def mlflow_tags(record: RunRecord, prefix: str = "wattprint.") -> dict[str, str]:
    """How the numbers were obtained, and which wattprint run they are, as MLflow tags."""
    tags = {
        f"{prefix}run_id": record.run_id,
        f"{prefix}name": record.name,
        f"{prefix}status": record.status,
        f"{prefix}measurement": method_label(record),
        f"{prefix}region": record.region,
        f"{prefix}region_source": record.region_source,
        f"{prefix}intensity_source": record.intensity_source,
        f"{prefix}pue_source": record.pue_source,
        f"{prefix}version": record.wattprint_version,
    }
    for component in COMPONENTS:
        source = getattr(record.measurement, component)
        if source:
            tags[f"{prefix}measurement.{component}"] = source
            tags[f"{prefix}method.{component}"] = str((record.methods.get(component) or {}).get("method"))
    if record.degraded:
        tags[f"{prefix}degraded"] = "; ".join(f"{k}: {v}" for k, v in sorted(record.degraded.items()))
    return {k: v[:TAG_MAX_CHARS] for k, v in tags.items() if v}


def log_to_mlflow(record_or_tracker: Any, run: Any = None, prefix: str = "wattprint.") -> dict[str, float]:
    """Log a finished run's energy and carbon as metrics, and its methods as tags, on an MLflow run.

    `run`: None for the active run, a run id, or an MLflow Run. Returns the metrics logged.
    """
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    record = _record_of(record_or_tracker)
    run_id = _run_id_of(run)
    now_ms = int(time.time() * 1000)
    metrics = mlflow_metrics(record, prefix)
    batch = [Metric(k, float(v), now_ms, 0) for k, v in metrics.items()]
    for window in record.windows:
        name = str(window.get("name", ""))
        if name.startswith(EPOCH_PREFIX) and name[len(EPOCH_PREFIX) :].isdigit():
            step = int(name[len(EPOCH_PREFIX) :])
            batch.append(Metric(f"{prefix}epoch_energy_kwh", float(window["energy_kwh"]["total"]), now_ms, step))
    tags = [RunTag(k, v) for k, v in mlflow_tags(record, prefix).items()]
    MlflowClient().log_batch(run_id, metrics=batch, tags=tags)
    return metrics


@contextmanager
def track_mlflow(
    name: str | None = None, *, run: Any = None, prefix: str = "wattprint.", **tracker_kwargs: Any
) -> Iterator[Any]:
    """Track the block as a wattprint run and log it to the MLflow run at exit (also on failure).

    `name` defaults to the MLflow run's name. Bad settings or no MLflow run raise before the block
    runs; a failure to log at the end is logged on the "wattprint" logger, never raised.
    """
    from wattprint.tracking.tracker import Tracker

    run_id = _run_id_of(run)
    if name is None:
        name = mlflow.tracking.MlflowClient().get_run(run_id).info.run_name or "mlflow"
    tracker = Tracker(name, **tracker_kwargs)
    try:
        with tracker:
            yield tracker
    finally:  # a failed block is logged too, with status "failed"
        _log_quietly(tracker, run_id, prefix)


def _log_quietly(tracker: TrackerLike, run_id: str, prefix: str) -> None:
    try:
        log_to_mlflow(tracker, run=run_id, prefix=prefix)
    except Exception as exc:  # runs in a finally: must not fail the block or hide its exception
        log.warning("wattprint: could not log run %s to MLflow run %s: %s", tracker.name, run_id, exc)
