"""Other tools' history into the store: CodeCarbon's emissions.csv, one run per row, marked as imported.

CodeCarbon writes one row per flush of a tracker (its `run_id` names the tracker session, `timestamp` the
flush), with energies and powers that include the PUE and operational emissions only. A row becomes a
finished run whose energy is CodeCarbon's divided by the PUE (wattprint keeps energy at the hardware and
applies the PUE to the facility figure), whose operational CO2e is CodeCarbon's, and whose embodied figure is
0 with a note saying CodeCarbon has none; `measurement` is "codecarbon" per component and `attribution.mode`
is "imported". Run ids derive from (run_id, timestamp), so importing a file again adds nothing twice.
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from wattprint.errors import WattprintInputError

if TYPE_CHECKING:
    from wattprint.record import RunRecord

FIELD = "FILE"
_REQUIRED = ("timestamp", "project_name", "run_id", "duration", "emissions", "energy_consumed")


def records_from_codecarbon(text: str, source: str) -> list[RunRecord]:
    """The runs in a CodeCarbon emissions.csv's text (`source` names the file on each record)."""
    from wattprint import __version__
    from wattprint.data import read_table
    from wattprint.record import Co2eKg, EnergyKwh, Measurement, RunRecord

    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise WattprintInputError(FIELD, f"not a CodeCarbon emissions.csv: no column {', '.join(missing)}")
    alpha2 = {row["alpha3"]: row["alpha2"] for row in read_table("country_intensity.csv")}
    records = []
    for line, row in enumerate(reader, start=2):
        where = f"{source} line {line}"
        ended = _time(row["timestamp"], where)
        duration = _number(row, "duration", where)
        pue = _number(row, "pue", where, default=1.0) or 1.0
        energy = {c: _number(row, f"{c}_energy", where, default=0.0) / pue for c in ("cpu", "gpu", "ram")}
        facility = _number(row, "energy_consumed", where)
        emissions = _number(row, "emissions", where)
        country = alpha2.get((row.get("country_iso_code") or "").upper(), "")
        region = f"{row['cloud_provider']}:{row['cloud_region']}" if row.get("cloud_provider") else country
        detail = f"imported from CodeCarbon {row.get('codecarbon_version') or ''} ({source})".replace("  ", " ")
        records.append(
            RunRecord(
                run_id=uuid.uuid5(uuid.NAMESPACE_URL, f"codecarbon:{row['run_id']}:{row['timestamp']}").hex,
                name=row["project_name"] or "codecarbon",
                status="finished",
                started_at=ended - timedelta(seconds=duration),
                ended_at=ended,
                duration_s=duration,
                energy_kwh=EnergyKwh(total=sum(energy.values()), **energy),
                facility_energy_kwh=facility,
                measurement=Measurement(cpu="codecarbon", gpu="codecarbon", ram="codecarbon"),
                region=region or "WORLD",
                intensity_g_per_kwh=emissions / facility * 1000.0 if facility > 0 else 0.0,
                pue=pue,
                co2e_kg=Co2eKg(operational=emissions, embodied=0.0, total=emissions),
                attribution={"mode": "imported", "source": f"CodeCarbon emissions.csv {source}"},
                methods={c: {"method": "imported", "detail": detail} for c in ("cpu", "gpu", "ram")},
                intensity_source=f"CodeCarbon: emissions / energy_consumed ({source})",
                embodied_note="not in CodeCarbon's data: 0 here, so total = operational",
                hardware=_hardware(row),
                wattprint_version=__version__,
            )
        )
    return records


def _time(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise WattprintInputError(FIELD, f"{where}: timestamp {text!r} is not ISO-8601") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _number(row: dict[str, str], column: str, where: str, default: float | None = None) -> float:
    text = (row.get(column) or "").strip()
    if not text and default is not None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise WattprintInputError(FIELD, f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise WattprintInputError(FIELD, f"{where}: {column} {text!r}; expected a finite number >= 0")
    return value


def _hardware(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if row.get("cpu_model"):
        out["cpu_model"] = row["cpu_model"]
    if row.get("os"):
        out["os"] = row["os"]
    if (row.get("cpu_count") or "").strip():
        out["logical_cpus"] = int(float(row["cpu_count"]))
    if row.get("gpu_model"):
        out["gpus"] = [{"name": name.strip()} for name in row["gpu_model"].split(",") if name.strip()]
    return out
