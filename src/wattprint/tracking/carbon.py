"""A run's carbon, from its energy: operational (time-resolved at the end where the provider has a series,
one constant intensity while it runs), embodied, the total's range and the SCI per functional unit. The
tracker measures energy; this turns it into the record's carbon figures."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from wattprint.measure.base import COMPONENTS

if TYPE_CHECKING:
    from wattprint.accounting.running import LinearCarbon
    from wattprint.config import Settings
    from wattprint.record import RunRecord


class RunCarbon:
    """The carbon accounting of one run, for the settings and grid region it was started with."""

    def __init__(self, settings: Settings, region: dict[str, Any]) -> None:
        self.settings = settings
        self.region = region
        self.functional_unit: tuple[str, float] | None = None  # (unit, quantity) for the SCI
        self._linear: tuple[Any, LinearCarbon] | None = None  # (inputs, coefficients) of the running carbon

    def account(
        self,
        rec: RunRecord,
        held_share: float,
        energy: dict[str, float],
        gpus: set[str],
        cumulative: list[tuple[datetime, float]],
        final: bool,
    ) -> None:
        """Set `rec`'s carbon from its energy so far; `cumulative` is (time, total kWh) at each checkpoint and
        `held_share` the run's share of this machine's CPU capacity (see `EnergyMonitor.mean_held_share`)."""
        pue = rec.pue
        yearly = self.region["intensity_g_per_kwh"]
        used, share, rule, methods = self._inputs(rec, held_share, gpus)
        rec.attribution.update(host_share=share, host_share_rule=rule)
        if not final:  # one constant intensity until the end: the same figures by arithmetic (see LinearCarbon)
            figures = self._linear_coefficients(yearly, pue, methods, used, rec.hardware).at(
                energy, rec.duration_s, share
            )
            self._set(
                rec,
                figures.operational_kg,
                figures.embodied_kg,
                figures.intensity_g_per_kwh,
                (figures.low_kg, figures.high_kg),
                figures.embodied_note,
            )
            return
        from wattprint.accounting.embodied import host_figure, run_embodied
        from wattprint.accounting.footprint import integrate_operational, segments_from_cumulative
        from wattprint.accounting.uncertainty import record_range

        intensity: Any = yearly
        if final and self.settings.intensity_provider != "static":
            intensity = self._series(rec, rec.started_at, cumulative[-1][0])
        if isinstance(intensity, float):
            # a constant intensity needs one interval: checkpoints stay O(1) however long the run
            (first_t, _), (last_t, last_kwh) = cumulative[0], cumulative[-1]
            segments = segments_from_cumulative((first_t, last_t), (0.0, last_kwh))
        else:
            segments = segments_from_cumulative(*zip(*cumulative, strict=True))
        try:
            op = integrate_operational(segments, intensity, pue, fallback_g_per_kwh=yearly)
        except Exception as exc:  # a bad series must not lose the record
            rec.intensity_note = f"series unusable ({exc}); yearly average used"
            op = integrate_operational(segments, yearly, pue)
        emb = run_embodied(rec.duration_s, gpu_names=used, host=host_figure(rec.hardware), host_share=share)
        band = record_range(
            energy,
            methods,
            op.intensity_g_per_kwh,
            pue,
            embodied_kg=(emb.co2e_kg_low, emb.co2e_kg_high),
            intensity_range_g_per_kwh=(op.intensity_low_g_per_kwh, op.intensity_high_g_per_kwh),
        )
        self._set(
            rec, op.co2e_kg, emb.co2e_kg, op.intensity_g_per_kwh, (band["co2e_kg_low"], band["co2e_kg_high"]), emb.note
        )

    def span(
        self, rec: RunRecord, held_share: float, energy: dict[str, float], gpus: set[str], duration_s: float
    ) -> tuple[float, float]:
        """(operational, embodied) kg of a span of the run (a window): `energy` kWh per component over `duration_s`,
        at the run's yearly intensity and PUE and its current host share, by the coefficients checkpoints use."""
        used, share, _rule, methods = self._inputs(rec, held_share, gpus)
        linear = self._linear_coefficients(self.region["intensity_g_per_kwh"], rec.pue, methods, used, rec.hardware)
        figures = linear.at(energy, duration_s, share)
        return figures.operational_kg, figures.embodied_kg

    def _inputs(
        self, rec: RunRecord, held_share: float, gpus: set[str]
    ) -> tuple[list[str], float, str, dict[str, str | None]]:
        """What the run's carbon depends on besides its energy: the names of the GPUs it used (of the domains in
        `gpus`), its host share and that share's rule, and each component's method."""
        used = [g["name"] for g in rec.hardware.get("gpus", []) if g.get("domain", f"nvml:{g.get('index')}") in gpus]
        share, rule = host_share(rec.hardware, self.settings.attribution, held_share, len(used))
        methods: dict[str, str | None] = {c: (rec.methods.get(c) or {}).get("method") for c in COMPONENTS}
        return used, share, rule, methods

    def _linear_coefficients(
        self,
        intensity_g_per_kwh: float,
        pue: float,
        methods: dict[str, Any],
        gpu_names: list[str],
        hardware: dict[str, Any],
    ) -> LinearCarbon:
        """The running run's carbon coefficients, derived again only when one of their inputs changes."""
        key = (intensity_g_per_kwh, pue, tuple(methods.items()), tuple(gpu_names))
        if self._linear is None or self._linear[0] != key:
            from wattprint.accounting.embodied import host_figure
            from wattprint.accounting.running import LinearCarbon

            host = host_figure(hardware)
            linear = LinearCarbon.derive(intensity_g_per_kwh, pue, methods, gpu_names, host=host)
            self._linear = (key, linear)
        return self._linear[1]

    def _set(
        self,
        rec: RunRecord,
        operational_kg: float,
        embodied_kg: float,
        intensity_g_per_kwh: float,
        range_kg: tuple[float, float],
        embodied_note: str,
    ) -> None:
        from wattprint.accounting.sci import sci
        from wattprint.record import Co2eKg

        rec.intensity_g_per_kwh = intensity_g_per_kwh
        rec.co2e_kg = Co2eKg(operational=operational_kg, embodied=embodied_kg, total=operational_kg + embodied_kg)
        rec.embodied_note = embodied_note
        rec.co2e_kg_range = {"low": range_kg[0], "high": range_kg[1]}
        if self.functional_unit is not None:
            unit, quantity = self.functional_unit
            score = sci(operational_kg, embodied_kg, unit, quantity)
            rec.sci = {"unit": score.unit, "units": score.units, "g_per_unit": score.g_per_unit}

    def _series(self, rec: RunRecord, start: datetime, end: datetime) -> Any:
        """The configured provider's series over the run; the yearly figure (said on the record) on failure."""
        from wattprint.intensity import get_provider

        kw: dict[str, Any] = {}
        if self.settings.intensity_provider == "trace":
            kw["path"] = self.settings.intensity_trace
        else:
            kw["cache_dir"] = self.settings.home / "cache"
        try:
            series = get_provider(self.settings.intensity_provider, **kw).series(rec.region, start, end)
        except Exception as exc:  # any provider fault: the yearly average, said on the record
            rec.intensity_note = f"{self.settings.intensity_provider} failed ({exc}); yearly average used"
            return self.region["intensity_g_per_kwh"]
        rec.intensity_source = series.source
        notes = [n for n in (getattr(series, "fallback_reason", None), getattr(series, "timezone_note", None)) if n]
        rec.intensity_note = "; ".join(notes) or f"time-resolved from {self.settings.intensity_provider}"
        return series


def host_share(hardware: dict[str, Any], attribution: str, held_share: float, gpus_used: int = 0) -> tuple[float, str]:
    """The run's share of its host's embodied emissions, and the rule, for the record: what the run holds (its share
    of this machine's CPU capacity, at least its GPUs' share of the machine's GPUs, or all of it with machine
    attribution) times, in a virtual machine, the VM's vCPUs over its host's. A GPU job that keeps one core of 64
    busy still holds the server its GPUs sit in, in proportion to them."""
    held = 1.0 if attribution == "machine" else held_share
    rule = "the whole machine (machine attribution)" if attribution == "machine" else "its share of CPU capacity"
    present = len(hardware.get("gpus") or [])
    if attribution != "machine" and gpus_used and present and gpus_used / present > held:
        held = min(1.0, gpus_used / present)
        rule = f"its GPUs' share of the machine's ({gpus_used} of {present}), more than its share of CPU capacity"
    guest = hardware.get("guest")
    if not guest:
        return held, f"{rule} of this physical machine"
    vm = float(guest.get("host_share", 1.0))
    share = held * vm
    return share, f"{rule} x {guest['vcpus']:g} of {guest['host_vcpus']:g} host vCPUs ({guest['host_rule']})"
