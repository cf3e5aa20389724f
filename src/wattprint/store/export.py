"""Runs out of the store: the contract JSON, and CSV with one column per contract figure."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wattprint.record import RunRecord

CSV_COLUMNS: tuple[str, ...] = (
    "run_id",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "energy_kwh_total",
    "energy_kwh_cpu",
    "energy_kwh_gpu",
    "energy_kwh_ram",
    "facility_energy_kwh",
    "measurement_cpu",
    "measurement_gpu",
    "measurement_ram",
    "region",
    "intensity_g_per_kwh",
    "pue",
    "co2e_kg_operational",
    "co2e_kg_embodied",
    "co2e_kg_total",
    "exit_code",
)


def export_json(records: Iterable[RunRecord]) -> str:
    """The records as one JSON array of run-record documents (the contract JSON)."""
    return json.dumps([record.to_json_dict() for record in records], indent=2)


def _csv_row(record: RunRecord) -> Sequence[Any]:
    data = record.to_json_dict()
    energy, measurement, co2e = data["energy_kwh"], data["measurement"], data["co2e_kg"]
    return (
        data["run_id"],
        data["name"],
        data["status"],
        data["started_at"],
        data["ended_at"],
        data["duration_s"],
        energy["total"],
        energy["cpu"],
        energy["gpu"],
        energy["ram"],
        data["facility_energy_kwh"],
        measurement["cpu"],
        measurement["gpu"],
        measurement["ram"],
        data["region"],
        data["intensity_g_per_kwh"],
        data["pue"],
        co2e["operational"],
        co2e["embodied"],
        co2e["total"],
        data["exit_code"],
    )


def export_csv(records: Iterable[RunRecord]) -> str:
    """The records as CSV with a header of `CSV_COLUMNS`; empty cells for nulls."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        writer.writerow(_csv_row(record))
    return buffer.getvalue()
