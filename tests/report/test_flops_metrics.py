"""FlopReport.as_metrics() gives the metrics reports read (macs, flops, params)."""

from __future__ import annotations

import pytest

from tests.report.records import make_record
from wattprint.report.tables import runs_table


def test_as_metrics_feeds_the_tables() -> None:
    torch = pytest.importorskip("torch")
    from wattprint import count_flops

    model = torch.nn.Linear(10, 5)
    report = count_flops(model, torch.randn(3, 10))
    metrics = report.as_metrics()
    assert metrics == {"macs": 3 * 10 * 5, "flops": 2 * 3 * 10 * 5, "params": 10 * 5 + 5}
    record = make_record("f1", "linear", energy_kwh=0.001, co2e_kg=0.0001, metrics={"accuracy": 0.5, **metrics})
    table = runs_table([record])
    assert table.header[2:4] == ["Params", "FLOPs"]  # below 1 K: no prefix
    assert table.rows[0][2:4] == ["55", "300"]
