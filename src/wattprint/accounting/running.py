"""The carbon of a run while it runs: a few multiplications per checkpoint.

Until a run ends, the tracker prices its energy at one constant intensity (the region's yearly figure;
a time series, where configured, is applied to the final record). At a constant intensity every carbon
figure of the record is linear: operational CO2e and its low/high in the energy of each component,
embodied CO2e and its low/high in the duration (times the host's share for the host). `LinearCarbon`
gets its coefficients by running the accounting functions themselves once, at unit inputs, so they
cannot drift from them; a checkpoint every few seconds for hours then costs arithmetic instead of a pass
through three modules with the cold caches of a thread that wakes once a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from wattprint.accounting.embodied import EmbodiedFigure, device_note, embodied_note, run_embodied
from wattprint.accounting.footprint import integrate_operational
from wattprint.accounting.uncertainty import record_range

_T = datetime(2000, 1, 1, tzinfo=timezone.utc)  # any instant: a constant intensity does not depend on it


@dataclass(frozen=True)
class CarbonFigures:
    """What a running record shows: operational and embodied kgCO2e, the total's range, the intensity
    applied and the embodied note."""

    operational_kg: float
    embodied_kg: float
    low_kg: float
    high_kg: float
    intensity_g_per_kwh: float
    embodied_note: str

    @property
    def total_kg(self) -> float:
        return self.operational_kg + self.embodied_kg


@dataclass(frozen=True)
class LinearCarbon:
    """Coefficients of a run's carbon at a constant intensity; `at()` evaluates them."""

    intensity_g_per_kwh: float
    operational_kg_per_kwh: float
    range_kg_per_kwh: Mapping[str, tuple[float, float]]  # component -> (low, high) of operational, per kWh
    gpu_kg_per_s: tuple[float, float, float]  # (central, low, high) embodied of the GPUs, per second
    host_kg_per_s: tuple[float, float, float]  # the same for the whole host (times its share)
    gpu_notes: tuple[str, ...]
    host: tuple[str, str, float] | None  # (matched device, method, kgCO2e per device) for the note
    missing: tuple[str, ...]

    @classmethod
    def derive(
        cls,
        intensity_g_per_kwh: float,
        pue: float,
        methods: Mapping[str, str | None],
        gpu_names: Sequence[str] = (),
        host: str | EmbodiedFigure | None = "server",
    ) -> LinearCarbon:
        """Coefficients from the accounting functions at 1 kWh per component and 1 s of reservation.

        `methods`: component -> "measured"/"estimated"/None, as on the record; these components are
        the ones `at()` accepts. Raises what those functions raise for bad input (WattprintInputError).
        """
        unit = integrate_operational([(_T, _T, 1.0)], intensity_g_per_kwh, pue)
        band = (unit.intensity_low_g_per_kwh, unit.intensity_high_g_per_kwh)
        ranges = {}
        for component, method in methods.items():
            r = record_range(
                {component: 1.0}, {component: method}, unit.intensity_g_per_kwh, pue, intensity_range_g_per_kwh=band
            )
            ranges[component] = (r["co2e_kg_low"], r["co2e_kg_high"])
        gpus = run_embodied(1.0, gpu_names, host=None)
        whole_host = run_embodied(1.0, (), host=host, host_share=1.0) if host is not None else None
        host_item = whole_host.items[0] if whole_host is not None and whole_host.items else None
        return cls(
            intensity_g_per_kwh=unit.intensity_g_per_kwh,
            operational_kg_per_kwh=unit.co2e_kg,
            range_kg_per_kwh=ranges,
            gpu_kg_per_s=(gpus.co2e_kg, gpus.co2e_kg_low, gpus.co2e_kg_high),
            host_kg_per_s=(
                (whole_host.co2e_kg, whole_host.co2e_kg_low, whole_host.co2e_kg_high) if whole_host else (0.0,) * 3
            ),
            gpu_notes=tuple(
                device_note(i["matched"], i["share"], i["method"], i["kgco2e_per_device"]) for i in gpus.items
            ),
            host=(host_item["matched"], host_item["method"], host_item["kgco2e_per_device"]) if host_item else None,
            missing=gpus.missing + (whole_host.missing if whole_host is not None else ()),
        )

    def at(self, energy_kwh: Mapping[str, float], duration_s: float, host_share: float) -> CarbonFigures:
        """The figures for this energy per component (kWh), reservation (s) and host share (0-1)."""
        total_kwh = low = high = 0.0
        for component, kwh in energy_kwh.items():
            per_kwh = self.range_kg_per_kwh[component]
            total_kwh += kwh
            low += kwh * per_kwh[0]
            high += kwh * per_kwh[1]
        gpu, host = self.gpu_kg_per_s, self.host_kg_per_s
        embodied = [duration_s * (g + h * host_share) for g, h in zip(gpu, host, strict=True)]
        notes = self.gpu_notes
        if self.host is not None:
            matched, method, kg = self.host
            notes = (*notes, device_note(matched, host_share, method, kg))
        return CarbonFigures(
            operational_kg=total_kwh * self.operational_kg_per_kwh,
            embodied_kg=embodied[0],
            low_kg=low + embodied[1],
            high_kg=high + embodied[2],
            intensity_g_per_kwh=self.intensity_g_per_kwh,
            embodied_note=embodied_note(notes, self.missing),
        )
