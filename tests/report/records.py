"""Small, fully specified run records for report tests (exact table output depends on every field)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from wattprint.record import Co2eKg, EnergyKwh, Measurement, RunRecord

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
ESTIMATED = {
    "cpu": {"method": "estimated", "source": "model", "detail": "utilisation x TDP 85 W"},
    "ram": {"method": "estimated", "source": "model", "detail": "0.375 W/GiB"},
}
MEASURED_GPU = {
    "cpu": {"method": "measured", "source": "rapl", "detail": "package-0"},
    "gpu": {"method": "measured", "source": "nvml", "detail": "1 NVIDIA GPU(s)"},
    "ram": {"method": "estimated", "source": "model", "detail": "0.375 W/GiB"},
}


def make_record(
    run_id: str,
    name: str,
    *,
    energy_kwh: float,
    co2e_kg: float,
    metrics: dict[str, Any] | None = None,
    gpu: bool = False,
    region: str = "FR",
    minutes: int = 0,
    status: str = "finished",
    samples: int = 5,
    **fields: Any,
) -> RunRecord:
    """A finished run: energy split 80/20 (CPU/RAM) or 30/60/10 (CPU/GPU/RAM), CO2e 90% operational."""
    if gpu:
        split = {"cpu": 0.3 * energy_kwh, "gpu": 0.6 * energy_kwh, "ram": 0.1 * energy_kwh}
        measurement = Measurement(cpu="rapl", gpu="nvml", ram="model")
        methods = MEASURED_GPU
        hardware = {"cpu_model": "AMD EPYC 7763", "cpu_sockets": 1, "gpus": [{"index": 0, "name": "NVIDIA A100"}]}
    else:
        split = {"cpu": 0.8 * energy_kwh, "gpu": 0.0, "ram": 0.2 * energy_kwh}
        measurement = Measurement(cpu="model", ram="model")
        methods = ESTIMATED
        hardware = {"cpu_model": "Intel Xeon Gold 6338", "cpu_sockets": 2}
    duration_s = 3600.0 * energy_kwh / 0.1 if energy_kwh else 60.0  # about 100 W
    t_s = [round(duration_s * (i + 1) / samples, 3) for i in range(samples)]
    power = {
        c: [round(3.6e6 * split[c] / duration_s * (0.9 + 0.05 * (i % 3)), 3) for i in range(samples)]
        for c in ("cpu", "gpu", "ram")
    }
    values: dict[str, Any] = dict(
        run_id=run_id,
        name=name,
        status=status,
        started_at=T0 + timedelta(minutes=minutes),
        ended_at=T0 + timedelta(minutes=minutes, seconds=duration_s),
        duration_s=duration_s,
        energy_kwh=EnergyKwh(total=energy_kwh, **split),
        machine_energy_kwh=EnergyKwh(total=2 * energy_kwh, **{c: 2 * v for c, v in split.items()}),
        facility_energy_kwh=energy_kwh * 1.2,
        measurement=measurement,
        methods=methods,
        region=region,
        region_source="explicit: --region",
        intensity_g_per_kwh=56.0,
        intensity_source="bundled yearly average",
        pue=1.2,
        pue_source="explicit",
        co2e_kg=Co2eKg(operational=0.9 * co2e_kg, embodied=0.1 * co2e_kg, total=co2e_kg),
        co2e_kg_range={"low": 0.5 * co2e_kg, "high": 2.0 * co2e_kg},
        embodied_note="server x1 (modelled)",
        hardware=hardware,
        host="testhost",
        metrics=metrics or {},
        timeline={"t_s": t_s, "cpu_w": power["cpu"], "gpu_w": power["gpu"], "ram_w": power["ram"]},
        samples=samples,
        exit_code=0 if status == "finished" else None,
        wattprint_version="0.1.0",
    )
    values.update(fields)
    return RunRecord(**values)


def fixture_records() -> list[RunRecord]:
    """Three runs: a measured GPU run, an estimated CPU run, and one without accuracy or FLOPs."""
    return [
        make_record(
            "aaaa1111",
            "resnet-gpu",
            energy_kwh=0.5,
            co2e_kg=0.03,
            gpu=True,
            metrics={"accuracy": 0.93, "params": 11_689_512, "macs": 1_820_000_000, "model": "ResNet-18"},
        ),
        make_record(
            "bbbb2222",
            "mlp_small",
            energy_kwh=0.002,
            co2e_kg=0.00012,
            minutes=5,
            metrics={"accuracy": 0.871, "params": 50_000, "flops": 100_000},
        ),
        make_record(
            "cccc3333", "baseline & co", energy_kwh=0.01, co2e_kg=0.0006, minutes=10, region="gcp:europe-west9"
        ),
    ]


def save_records(records: list[RunRecord], home: Path | None = None) -> str:
    """Save `records` in the configured store (WATTPRINT_HOME of the test); returns its URL."""
    from wattprint.config import load_settings
    from wattprint.store import open_store

    url = load_settings().db_url
    with open_store(url) as store:
        for record in records:
            store.save(record)
    return url
