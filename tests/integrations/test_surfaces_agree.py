"""One run, every surface: the record, the summary line, the Markdown report, Lightning's logged metrics (epochs,
the part outside them, the run), MLflow's metrics and the Prometheus gauges must say the same CO2e."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightning.pytorch")
pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.integrations.test_lightning import TinyRegressor, column, loader, metrics_rows, trainer  # noqa: E402
from wattprint.cli.render import summary_line  # noqa: E402
from wattprint.integrations.lightning import WattprintCallback  # noqa: E402
from wattprint.integrations.mlflow import mlflow_metrics  # noqa: E402
from wattprint.integrations.prometheus import PrometheusExporter  # noqa: E402
from wattprint.report.tables import markdown_table  # noqa: E402
from wattprint.report.values import fmt_mass, mass_scale, scaled  # noqa: E402

pytestmark = pytest.mark.slow
KINDS = ("operational", "embodied", "total")


def test_every_surface_says_the_same_co2e_and_epochs_add_up_to_the_run(tmp_path: Path, wattprint_env: Path) -> None:
    callback = WattprintCallback(region="FR", interval=0.05)
    trainer(tmp_path, callback, max_epochs=4).fit(TinyRegressor(), loader())
    rec = callback.record
    assert rec is not None and rec.status == "finished" and rec.co2e_kg.embodied > 0
    rows = metrics_rows(tmp_path)

    # Lightning: the run's three figures, and the epochs plus the part outside them adding up to each of them
    for kind in KINDS:
        assert column(rows, f"wattprint/run_co2e_kg.{kind}") == pytest.approx([getattr(rec.co2e_kg, kind)])
        epochs = column(rows, f"wattprint/epoch_co2e_kg.{kind}")
        [outside] = column(rows, f"wattprint/outside_epochs_co2e_kg.{kind}")
        assert len(epochs) == 4 and all(v > 0 for v in epochs)
        assert outside >= -1e-15  # the epochs never claim more than the run
        assert sum(epochs) + outside == pytest.approx(getattr(rec.co2e_kg, kind), rel=0.01)
    [outside_kwh] = column(rows, "wattprint/outside_epochs_energy_kwh")
    assert sum(column(rows, "wattprint/epoch_energy_kwh")) + outside_kwh == pytest.approx(
        rec.energy_kwh.total, rel=0.01
    )
    epochs = column(rows, "wattprint/epoch_co2e_kg.total")
    parts = zip(
        column(rows, "wattprint/epoch_co2e_kg.operational"),
        column(rows, "wattprint/epoch_co2e_kg.embodied"),
        strict=True,
    )
    assert epochs == pytest.approx([o + e for o, e in parts])
    # an epoch's embodied figure is its length at the run's embodied rate (the host share held by then)
    seconds = [w["duration_s"] for w in rec.windows if w["name"].startswith("epoch ")]
    rate = [e / s for e, s in zip(column(rows, "wattprint/epoch_co2e_kg.embodied"), seconds, strict=True)]
    assert max(rate) < 2 * rec.co2e_kg.embodied / rec.duration_s

    # MLflow's metrics, the summary line, the Markdown report
    logged = mlflow_metrics(rec)
    for kind in KINDS:
        assert logged[f"wattprint.co2e_kg.{kind}"] == pytest.approx(getattr(rec.co2e_kg, kind), rel=1e-12)
    assert fmt_mass(rec.co2e_kg.total) in summary_line(rec)
    scale = mass_scale([rec.co2e_kg.total])
    assert f"| {scaled(rec.co2e_kg.total, scale)} [" in markdown_table([rec])  # the total, then its range

    # Prometheus, scraped after the run: the final record's figures
    exporter = PrometheusExporter(callback.meter.tracker)
    text = exporter._prom.generate_latest(exporter.registry).decode()
    gauges = {
        s.labels["kind"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "wattprint_co2e_kg"
    }
    assert gauges == pytest.approx({kind: getattr(rec.co2e_kg, kind) for kind in KINDS}, rel=1e-12)
