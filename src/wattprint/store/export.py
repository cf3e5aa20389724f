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


# CodeCarbon's emissions.csv columns (EmissionsData of codecarbon 3.3), in its order
CODECARBON_COLUMNS: tuple[str, ...] = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
    "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)  # fmt: skip


def export_codecarbon(records: Iterable[RunRecord]) -> str:
    """The records as CodeCarbon's emissions.csv, one row per run, so its users' tools read wattprint runs.

    CodeCarbon's conventions: energies and powers include the PUE (its `pue` scales both), `emissions` is
    operational CO2e in kg (CodeCarbon has no embodied figure: wattprint's is left out here, it is in the JSON
    export), powers are averages over the run, the country is ISO alpha-3. What wattprint does not know
    (water, coordinates, utilisation, CodeCarbon's version) is left empty rather than made up."""
    from wattprint.data import read_table

    countries = {row["alpha2"]: (row["alpha3"], row["name"]) for row in read_table("country_intensity.csv")}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CODECARBON_COLUMNS)
    for record in records:
        writer.writerow(_codecarbon_row(record, countries))
    return buffer.getvalue()


def _codecarbon_row(record: RunRecord, countries: dict[str, tuple[str, str]]) -> list[Any]:
    pue, duration = record.pue, record.duration_s or 0.0
    energy = {c: getattr(record.energy_kwh, c) * pue for c in ("cpu", "gpu", "ram")}
    power = {c: kwh * 3.6e6 / duration if duration > 0 else 0.0 for c, kwh in energy.items()}
    provider, _, cloud_region = record.region.partition(":") if ":" in record.region else ("", "", "")
    country = record.region.split("-")[0] if not provider else ""
    alpha3, country_name = countries.get(country.upper(), ("", ""))
    hardware = record.hardware or {}
    gpus = hardware.get("gpus") or []
    operational = record.co2e_kg.operational
    ended = record.ended_at or record.started_at
    return [
        ended.strftime("%Y-%m-%dT%H:%M:%S"),
        record.name,
        record.run_id,
        "",
        duration,
        operational,
        operational / duration if duration > 0 else 0.0,
        power["cpu"],
        power["gpu"],
        power["ram"],
        energy["cpu"],
        energy["gpu"],
        energy["ram"],
        record.facility_energy_kwh,
        "",
        country_name,
        alpha3,
        record.region.partition("-")[2] if not provider and "-" in record.region else "",
        provider,
        cloud_region,
        hardware.get("os", ""),
        hardware.get("python", ""),
        "",
        hardware.get("logical_cpus", ""),
        hardware.get("cpu_model", ""),
        len(gpus),
        ", ".join(sorted({str(g.get("name", "")) for g in gpus if isinstance(g, dict)})),
        "",
        "",
        hardware.get("ram_gb", ""),
        "process" if (record.attribution or {}).get("mode", "process") == "process" else "machine",
        "",
        "",
        "",
        "",
        "Y" if provider else "N",
        pue,
        "",
    ]
