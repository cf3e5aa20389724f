"""MLflow logging against a real SQLite tracking store, read back with MlflowClient."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

import wattprint  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.integrations.mlflow import log_to_mlflow, track_mlflow  # noqa: E402

pytestmark = pytest.mark.slow  # MLflow creates its SQLite schema (migrations): a few seconds


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module: MLflow builds its schema once (seconds), tests use their own runs."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def tracking_uri(mlflow_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = mlflow_db
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    while mlflow.active_run() is not None:  # never leak a run into another test
        mlflow.end_run()


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_finished_tracker_is_logged_as_metrics_and_tags(tracking_uri: str) -> None:
    with mlflow.start_run() as run:
        with wattprint.track("train", region="FR", interval=0.05) as t:
            for epoch in range(2):
                t.begin_window(f"epoch {epoch}")
                busy(0.1)
                t.end_window(f"epoch {epoch}")
        logged = log_to_mlflow(t)
    rec = t.record
    data = MlflowClient(tracking_uri).get_run(run.info.run_id).data
    assert data.metrics["wattprint.energy_kwh.total"] == pytest.approx(rec.energy_kwh.total, rel=1e-12)
    assert rec.energy_kwh.total > 0
    for c in ("cpu", "gpu", "ram"):
        assert data.metrics[f"wattprint.energy_kwh.{c}"] == pytest.approx(getattr(rec.energy_kwh, c), rel=1e-12)
    for k in ("operational", "embodied", "total"):
        assert data.metrics[f"wattprint.co2e_kg.{k}"] == pytest.approx(getattr(rec.co2e_kg, k), rel=1e-12)
    assert data.metrics["wattprint.duration_s"] == pytest.approx(rec.duration_s)
    assert data.metrics["wattprint.facility_energy_kwh"] == pytest.approx(rec.facility_energy_kwh)
    assert set(logged) <= set(data.metrics)
    tags = data.tags
    assert tags["wattprint.run_id"] == rec.run_id and tags["wattprint.status"] == "finished"
    assert tags["wattprint.region"] == "FR" and tags["wattprint.intensity_source"] == rec.intensity_source
    assert tags["wattprint.measurement.cpu"] == rec.measurement.cpu
    assert tags["wattprint.method.cpu"] == rec.methods["cpu"]["method"]
    assert "wattprint.measurement.gpu" not in tags or rec.measurement.gpu
    # per-epoch history, one point per epoch window
    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "wattprint.epoch_energy_kwh")
    points = sorted(history, key=lambda m: m.step)
    assert [m.step for m in points] == [0, 1]
    assert [m.value for m in points] == pytest.approx([w["energy_kwh"]["total"] for w in rec.windows])


def test_context_manager_tracks_and_logs_at_exit(tracking_uri: str) -> None:
    with mlflow.start_run(run_name="finetune") as run, track_mlflow(region="DE", interval=0.05, prefix="wp/") as t:
        busy(0.2)
    data = MlflowClient(tracking_uri).get_run(run.info.run_id).data
    assert t.record.name == "finetune" and t.record.status == "finished"
    assert data.metrics["wp/energy_kwh.total"] == pytest.approx(t.record.energy_kwh.total, rel=1e-12)
    assert data.tags["wp/run_id"] == t.record.run_id


def test_failed_block_is_logged_as_failed_and_the_error_propagates(tracking_uri: str) -> None:
    with pytest.raises(ZeroDivisionError), mlflow.start_run() as run, track_mlflow(interval=0.05):
        _ = 1 / 0
    tags = MlflowClient(tracking_uri).get_run(run.info.run_id).data.tags
    assert tags["wattprint.status"] == "failed"


def test_explicit_run_and_record(tracking_uri: str) -> None:
    with wattprint.track("offline", interval=0.05) as t:
        busy(0.05)
    client = MlflowClient(tracking_uri)
    run = client.create_run(client.get_experiment_by_name("Default").experiment_id)
    log_to_mlflow(t.record, run=run.info.run_id)
    assert client.get_run(run.info.run_id).data.tags["wattprint.name"] == "offline"


def test_bad_input_names_the_field(tracking_uri: str) -> None:
    with wattprint.track("x", interval=0.05) as t:
        pass
    with pytest.raises(WattprintInputError, match="^run: no active MLflow run"):
        log_to_mlflow(t)
    with pytest.raises(WattprintInputError, match="^record_or_tracker: got dict"):
        log_to_mlflow({"energy": 1}, run="abc")
    running = wattprint.track("still", interval=0.05).start()
    try:
        with pytest.raises(WattprintInputError, match="still running"):
            log_to_mlflow(running, run="abc")
    finally:
        running.stop()
    with pytest.raises(WattprintInputError, match="^run:"), track_mlflow():
        pass


def test_missing_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['mlflow'] = None\n"
        "try:\n    import wattprint.integrations.mlflow\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingExtraError") and "pip install 'wattprint[mlflow]'" in out
