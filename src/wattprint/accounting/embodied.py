"""Embodied (manufacturing) emissions of hardware, amortised over the time a run reserves it.

SCI 1.1 (ISO/IEC 21031:2024): M = TE x (TiR / EL) x (RR / ToR), with TE the device's total embodied
emissions, TiR the time reserved, EL the expected lifetime, and RR/ToR the share of the device
reserved. The figures come from `wattprint/data/embodied.csv`, and they come by two different
methods that must not be confused: "published" (a vendor's product carbon footprint, e.g. NVIDIA's
164 kgCO2e per H100) and "modelled" (BoaviztAPI's bottom-up model, e.g. 575 kgCO2e for the same
H100). A published figure is preferred when both exist; the method always travels with the number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from wattprint.accounting.hardware import find_hardware, normalize_hardware_name
from wattprint.data import read_table
from wattprint.errors import WattprintInputError

SECONDS_PER_YEAR = 365 * 24 * 3600.0  # BoaviztAPI's 4 years = 35,040 h uses 365-day years
METHODS = ("published", "modelled")
HOST_DEVICE = "server"


def years_to_seconds(years: float) -> float:
    """Lifetime in seconds for a lifetime in 365-day years."""
    return years * SECONDS_PER_YEAR


def _check(field_name: str, value: float, minimum: float, strict: bool) -> None:
    bad = not math.isfinite(value) or (value <= minimum if strict else value < minimum)
    if bad:
        relation = ">" if strict else ">="
        expected = f"expected a finite number {relation} {minimum:g}"
        raise WattprintInputError(field_name, f"got {value!r}; {expected}")


def embodied_co2e_kg(total_kg: float, reserved_s: float, lifetime_s: float, share: float = 1.0) -> float:
    """SCI's M = TE x (TiR / EL) x (RR / ToR): the part of `total_kg` a reservation uses up.

    `share` is RR/ToR, the fraction of the device reserved (1.0: the whole device), in [0, 1].
    """
    _check("embodied_kg", total_kg, 0.0, strict=False)
    _check("reserved_s", reserved_s, 0.0, strict=False)
    _check("lifetime_s", lifetime_s, 0.0, strict=True)
    _check("share", share, 0.0, strict=False)
    if share > 1.0:
        raise WattprintInputError("share", f"got {share!r}; expected a fraction between 0 and 1")
    return total_kg * (reserved_s / lifetime_s) * share


@dataclass(frozen=True)
class EmbodiedFigure:
    """One row of embodied.csv: kgCO2e per device (with a published range when one exists)."""

    device: str
    kgco2e: float
    lifetime_years: float
    method: str
    source: str
    kgco2e_low: float | None = None
    kgco2e_high: float | None = None


@lru_cache(maxsize=1)
def embodied_table() -> tuple[EmbodiedFigure, ...]:
    """All rows of data/embodied.csv."""
    rows = []
    for row in read_table("embodied.csv"):
        low, high = row["kgco2e_low"], row["kgco2e_high"]
        rows.append(
            EmbodiedFigure(
                row["device"],
                float(row["kgco2e"]),
                float(row["lifetime_years"]),
                row["method"],
                row["source"],
                float(low) if low else None,
                float(high) if high else None,
            )
        )
    return tuple(rows)


@lru_cache(maxsize=1)
def _keys() -> dict[str, str]:
    """Matching key -> device name, for the device names and their aliases."""
    keys: dict[str, str] = {}
    for row in read_table("embodied.csv"):
        for label in [row["device"], *(a for a in row["aliases"].split(";") if a.strip())]:
            keys[normalize_hardware_name(label)] = row["device"]
    return keys


@lru_cache(maxsize=256)  # the bundled table does not change; a tracker asks again at every checkpoint
def lookup_embodied(device: str, method: str | None = None) -> EmbodiedFigure | None:
    """The figure for `device` (loose name match, also through the hardware table), or None.

    `method` picks "published" or "modelled"; None prefers a published figure over a modelled one.
    """
    if method is not None and method not in METHODS:
        raise WattprintInputError("method", f"got {method!r}; expected one of {', '.join(METHODS)}")
    name = _keys().get(normalize_hardware_name(device))
    if name is None:
        hardware = find_hardware(device)
        name = hardware.name if hardware is not None else None
    rows = [r for r in embodied_table() if r.device == name and (method is None or r.method == method)]
    rows.sort(key=lambda r: METHODS.index(r.method) if r.method in METHODS else len(METHODS))
    return rows[0] if rows else None


@dataclass(frozen=True)
class EmbodiedBreakdown:
    """Embodied kgCO2e charged to a run, per device, with a low/high range and a one-line note."""

    co2e_kg: float
    co2e_kg_low: float
    co2e_kg_high: float
    items: tuple[dict[str, Any], ...] = ()
    missing: tuple[str, ...] = ()
    note: str = ""


def host_figure(hardware: dict[str, Any]) -> str | EmbodiedFigure:
    """The host's embodied figure for a record's `hardware`: a cloud instance's published host platform where its type
    is known (`hardware["guest"]`), else the generic server row."""
    guest = hardware.get("guest") or {}
    kg, instance = guest.get("host_embodied_kg"), guest.get("instance_type")
    if not kg or not instance:
        return HOST_DEVICE
    return EmbodiedFigure(
        f"host of {instance}",
        float(kg),
        lookup_embodied(HOST_DEVICE).lifetime_years,  # type: ignore[union-attr]
        "modelled",
        "Cloud Carbon Footprint embodied coefficients (ccf-coefficients): the instance's host platform",
    )


def run_embodied(
    duration_s: float,
    gpu_names: Sequence[str] = (),
    host: str | EmbodiedFigure | None = HOST_DEVICE,
    host_share: float = 1.0,
    gpu_share: float = 1.0,
) -> EmbodiedBreakdown:
    """Embodied emissions of a run: each GPU it used plus a share of its host, over `duration_s`.

    Every GPU name is looked up in embodied.csv (published figure preferred); names without a figure
    are listed in `missing` and count zero (said in the note, never guessed). The host is the
    generic server figure unless another device or figure (`host_figure`) is given; None leaves it out.
    """
    from wattprint.accounting.uncertainty import embodied_range_kg

    devices: list[tuple[str | EmbodiedFigure, float]] = [(name, gpu_share) for name in gpu_names]
    if host is not None:
        devices.append((host, host_share))
    items: list[dict[str, Any]] = []
    missing: list[str] = []
    total = low = high = 0.0
    for device, share in devices:
        figure = device if isinstance(device, EmbodiedFigure) else lookup_embodied(device)
        name = device.device if isinstance(device, EmbodiedFigure) else device
        if figure is None:
            missing.append(name)
            continue
        kg = embodied_co2e_kg(figure.kgco2e, duration_s, years_to_seconds(figure.lifetime_years), share)
        kg_low, kg_high = embodied_range_kg(kg, figure)
        total, low, high = total + kg, low + kg_low, high + kg_high
        items.append(
            {
                "device": name,
                "matched": figure.device,
                "kgco2e_per_device": figure.kgco2e,
                "lifetime_years": figure.lifetime_years,
                "share": share,
                "co2e_kg": kg,
                "method": figure.method,
                "source": figure.source,
            }
        )
    note = embodied_note(
        [device_note(i["matched"], i["share"], i["method"], i["kgco2e_per_device"]) for i in items], missing
    )
    return EmbodiedBreakdown(total, low, high, tuple(items), tuple(missing), note)


def device_note(matched: str, share: float, method: str, kgco2e_per_device: float) -> str:
    """One device of an embodied note, e.g. 'server x0.25 (modelled, 1200 kg)'."""
    return f"{matched} x{share:g} ({method}, {kgco2e_per_device:g} kg)"


def embodied_note(device_notes: Sequence[str], missing: Sequence[str] = ()) -> str:
    """The record's `embodied_note`: each device counted, then those without a figure."""
    note = "; ".join(device_notes) if device_notes else "no device with an embodied figure"
    if missing:
        note += f"; not counted (no figure): {', '.join(missing)}"
    return note
