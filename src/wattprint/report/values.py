"""What reports read from a run record, and how they format it.

Metric conventions (values a user attaches with ``tracker.log(...)``; all optional):

- ``accuracy``: the quality metric compared by default (higher is better); any other metric can be
  chosen by name (``--metric``), with lower-is-better for losses and error rates.
- ``model``: the model's name in tables and charts (default: the run's name).
- ``params``: number of parameters.
- ``flops`` or ``macs``: compute of the measured work; FLOPs = 2 x MACs when only ``macs`` is given
  (the convention of :func:`wattprint.count_flops`, whose ``FlopReport.as_metrics()`` logs all three).

A value that is missing or not a finite number is shown as "—" (n/a), never as 0, and a run without
the compared metric is left off the Pareto front with a note saying so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from wattprint.record import RunRecord

MISSING = "—"  # shown for a value the run does not have
COMPONENTS = ("cpu", "gpu", "ram")


def number(value: Any) -> float | None:
    """`value` as a finite float, or None (missing, bool, text, NaN, inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def metric_value(record: RunRecord, name: str) -> float | None:
    """A numeric metric of the run, or None when it is absent or not a finite number."""
    return number(record.metrics.get(name))


def flops_of(record: RunRecord) -> float | None:
    """FLOPs of the run: metric ``flops``, else 2 x ``macs``, else None."""
    flops = metric_value(record, "flops")
    if flops is not None:
        return flops
    macs = metric_value(record, "macs")
    return None if macs is None else 2.0 * macs


def params_of(record: RunRecord) -> float | None:
    return metric_value(record, "params")


def model_name(record: RunRecord) -> str:
    """Metric ``model`` when it is a non-empty string, else the run's name."""
    model = record.metrics.get("model")
    return model.strip() if isinstance(model, str) and model.strip() else record.name


def energy_method(record: RunRecord) -> str:
    """'measured', 'estimated', or e.g. 'mixed (cpu measured; ram estimated)' over the components in use."""
    methods = {c: (record.methods.get(c) or {}).get("method") for c in COMPONENTS if getattr(record.measurement, c)}
    kinds = {m for m in methods.values() if m}
    if not kinds:
        return "unknown"
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed (" + "; ".join(f"{c} {m}" for c, m in methods.items() if m) + ")"


def component_sources(record: RunRecord) -> list[tuple[str, str, str, str]]:
    """(component, source, method, detail) for each component the run measured or modelled."""
    rows = []
    for c in COMPONENTS:
        source = getattr(record.measurement, c)
        if source:
            m = record.methods.get(c) or {}
            rows.append((c, source, str(m.get("method") or "unknown"), str(m.get("detail") or "")))
    return rows


def hardware_label(record: RunRecord) -> str:
    """e.g. '1x NVIDIA H100 80GB HBM3 + Intel Xeon Gold 6338' (GPUs first), or '—'."""
    hw = record.hardware or {}
    parts = []
    counts: dict[str, int] = {}
    for gpu in hw.get("gpus") or []:
        name = str(gpu.get("name") or "GPU") if isinstance(gpu, dict) else str(gpu)
        counts[name] = counts.get(name, 0) + 1
    parts += [f"{n}x {name}" for name, n in counts.items()]
    cpu = hw.get("cpu_model")
    if cpu:
        sockets = hw.get("cpu_sockets")
        parts.append(f"{sockets}x {cpu}" if isinstance(sockets, int) and sockets > 1 else str(cpu))
    return " + ".join(parts) if parts else MISSING


def cloud_provider(region: str) -> str | None:
    """'gcp', 'aws' or 'azure' for a cloud region written 'provider:region', else None."""
    provider, sep, _ = region.partition(":")
    return provider.lower() if sep and provider else None


def sig(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant figures in positional notation (no exponent), e.g. 0.0000153."""
    if value == 0:
        return "0"
    text = format(Decimal(format(value, f".{digits - 1}e")), "f")
    if "." in text and len(text.replace("-", "").replace(".", "").lstrip("0")) > digits:
        text = text.rstrip("0").rstrip(".")
    return text


@dataclass(frozen=True)
class Scale:
    """A unit chosen for a whole column so that every cell shares the header's unit."""

    unit: str
    factor: float  # displayed value = value x factor


_ENERGY_SCALES = (Scale("GWh", 1e-6), Scale("MWh", 1e-3), Scale("kWh", 1.0), Scale("Wh", 1e3))
_MASS_SCALES = (Scale("t", 1e-3), Scale("kg", 1.0), Scale("g", 1e3))
_COUNT_SCALES = (Scale("T", 1e-12), Scale("G", 1e-9), Scale("M", 1e-6), Scale("K", 1e-3), Scale("", 1.0))


def _pick(values: Sequence[float | None], scales: tuple[Scale, ...]) -> Scale:
    """The largest unit in which the largest value is at least 1 (else the smallest unit)."""
    present = [abs(v) for v in values if v is not None]
    top = max(present, default=0.0)
    for scale in scales:
        if top * scale.factor >= 1:
            return scale
    return scales[-1]


def energy_scale(values_kwh: Sequence[float | None]) -> Scale:
    return _pick(values_kwh, _ENERGY_SCALES)


def mass_scale(values_kg: Sequence[float | None]) -> Scale:
    return _pick(values_kg, _MASS_SCALES)


def count_scale(values: list[float | None]) -> Scale:
    return _pick(values, _COUNT_SCALES)


def scaled(value: float | None, scale: Scale, digits: int = 3) -> str:
    return MISSING if value is None else sig(value * scale.factor, digits)


def fmt_energy(energy_kwh: float) -> str:
    """One energy figure with its own unit, to 3 significant figures, e.g. '1.53 Wh' or '1.29 GWh': the
    one formatter of energy for people, in reports, the CLI and the integrations' summaries."""
    scale = energy_scale([energy_kwh])
    return f"{sig(energy_kwh * scale.factor)} {scale.unit}"


def fmt_mass(mass_kg: float) -> str:
    """One mass figure with its own unit, to 3 significant figures, e.g. '4.17 g' or '552 t' (the one
    formatter of masses for people)."""
    scale = mass_scale([mass_kg])
    return f"{sig(mass_kg * scale.factor)} {scale.unit}"


def fmt_metric(value: float | None) -> str:
    """A metric as logged, to 4 significant figures; '—' when missing."""
    if value is None:
        return MISSING
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = format(value, ".4g")
    return sig(value, 4) if "e" in text else text


def co2e_range_kg(record: RunRecord) -> tuple[float, float] | None:
    band = record.co2e_kg_range or {}
    low, high = number(band.get("low")), number(band.get("high"))
    return (low, high) if low is not None and high is not None else None
