"""The run record: the JSON document other tools rely on (DESIGN.md, "Run record").

The contract fields come first and never change meaning; the rest are additive detail. Energy is at
the hardware (before PUE); `facility_energy_kwh` = `energy_kwh.total` x `pue`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer
from pydantic_core import PydanticSerializationError

from wattprint.status import STATUSES as STATUSES  # re-exported: part of the record's contract
from wattprint.status import Status as Status


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class EnergyKwh(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total: float = 0.0
    cpu: float = 0.0
    gpu: float = 0.0
    ram: float = 0.0


class Co2eKg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operational: float = 0.0
    embodied: float = 0.0
    total: float = 0.0


class Measurement(BaseModel):
    """How each component's energy was obtained: a counter ("rapl", "rapld", "nvml", ...) or a model ("model")."""

    model_config = ConfigDict(extra="forbid")
    cpu: str | None = None
    gpu: str | None = None
    ram: str | None = None


class RunRecord(BaseModel):
    """One tracked run. `model_dump(mode="json")` is the contract JSON."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    name: str
    status: Status = "running"
    started_at: datetime
    ended_at: datetime | None = None
    duration_s: float = 0.0
    energy_kwh: EnergyKwh = Field(default_factory=EnergyKwh)
    facility_energy_kwh: float = 0.0
    measurement: Measurement = Field(default_factory=Measurement)
    region: str = ""
    intensity_g_per_kwh: float = 0.0
    pue: float = 1.0
    co2e_kg: Co2eKg = Field(default_factory=Co2eKg)
    exit_code: int | None = None

    # Detail beyond the contract.
    machine_energy_kwh: EnergyKwh = Field(
        default_factory=EnergyKwh, description="whole-machine energy over the run, before attribution"
    )
    attribution: dict[str, Any] = Field(default_factory=dict)
    methods: dict[str, Any] = Field(default_factory=dict, description="per component: measured|estimated, detail")
    degraded: dict[str, str] = Field(default_factory=dict, description="component -> what went wrong")
    intensity_source: str = ""
    region_source: str = ""
    pue_source: str = ""
    intensity_note: str = Field(default="", description="time resolution, fallback or time-zone of the intensity")
    embodied_note: str = ""
    co2e_kg_range: dict[str, float] = Field(default_factory=dict, description="low/high of co2e_kg.total")
    sci: dict[str, Any] = Field(default_factory=dict, description="Software Carbon Intensity per functional unit")
    hardware: dict[str, Any] = Field(default_factory=dict)
    host: str = ""
    pid: int | None = None
    pid_create_time: float | None = Field(default=None, description="psutil create_time of `pid`, against reuse")
    command: list[str] | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    windows: list[dict[str, Any]] = Field(default_factory=list)
    bench: dict[str, Any] = Field(
        default_factory=dict, description="an inference benchmark's figures per batch size (wattprint.bench)"
    )
    timeline: dict[str, list[float]] = Field(default_factory=dict)
    interval_s: float = 1.0
    samples: int = 0
    wattprint_version: str = ""

    # torch.distributed jobs (wattprint.tracking.distributed); empty for a single-process run.
    nodes: list[dict[str, Any]] = Field(
        default_factory=list,
        description='per node: {"node_id", "ranks": [rank, ...], "energy_kwh": {...}, ...}; adds up to energy_kwh',
    )
    ranks: list[dict[str, Any]] = Field(
        default_factory=list, description='per rank: {"rank", "node_id", "energy_kwh": {...}, ...}; adds up too'
    )
    distributed: dict[str, Any] = Field(
        default_factory=dict, description="world size, who measured what, how node energy was split among ranks"
    )

    @field_serializer("started_at", "ended_at")
    def _iso_utc(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """The same document as `to_json_dict`, as compact JSON text, serialised without building Python
        dicts first: a running checkpoint takes about a fifth of the time of json.dumps(to_json_dict())."""
        try:
            return self.model_dump_json()
        except PydanticSerializationError:  # e.g. a lone surrogate from a non-UTF-8 argv, which json escapes
            return json.dumps(self.to_json_dict(), separators=(",", ":"))
