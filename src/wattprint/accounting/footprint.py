"""Operational carbon: energy at the hardware x PUE x grid intensity. Pure functions.

With a constant intensity (a yearly average) the whole run gets one figure. With an intensity
time series, each checkpoint interval's energy is multiplied by the series' time-weighted mean
intensity over that interval (energy is taken as uniform within an interval, which is what a
checkpoint knows); parts of an interval the series does not cover use a fallback constant, and the
result says which share of the energy the series covered. Splitting an interval, with its energy
split in proportion to time, never changes the total.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from wattprint.accounting.uncertainty import SERIES_INTENSITY, YEARLY_INTENSITY, Band
from wattprint.errors import WattprintInputError
from wattprint.units import co2e_kg, g_to_kg

#: a covered fraction this close to 1 is full coverage (float rounding of the series' seconds)
COVERED_TOLERANCE = 1e-12
#: (start, end, energy_kwh at the hardware) of one checkpoint interval
Segment = tuple[datetime, datetime, float]


def facility_energy_kwh(energy_kwh: float, pue: float) -> float:
    """Energy drawn by the facility: IT energy x power usage effectiveness."""
    return energy_kwh * pue


def operational_co2e_kg(energy_kwh: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """kgCO2e of `energy_kwh` at the hardware, in a facility of `pue`, on a grid of the given intensity."""
    return co2e_kg(facility_energy_kwh(energy_kwh, pue), intensity_g_per_kwh)


@runtime_checkable
class SeriesLike(Protocol):
    """What integration needs of an intensity series (see `wattprint.intensity.base.IntensitySeries`)."""

    def mean_over(self, start: datetime, end: datetime) -> tuple[float, float] | None:
        """(time-weighted mean gCO2e/kWh, covered fraction) over [start, end), or None if uncovered."""
        ...


@dataclass(frozen=True)
class OperationalResult:
    """Operational footprint of a run integrated over its checkpoint intervals.

    `intensity_g_per_kwh` is the effective (energy-weighted) intensity; its low/high come from the
    intensity bands only (combine with the energy's band in `uncertainty.record_range`).
    """

    energy_kwh: float
    facility_energy_kwh: float
    co2e_kg: float
    pue: float
    intensity_g_per_kwh: float
    intensity_low_g_per_kwh: float
    intensity_high_g_per_kwh: float
    #: share of the energy whose intensity came from the series (1.0 for a constant)
    covered_fraction: float

    @property
    def co2e_kg_low(self) -> float:
        return co2e_kg(self.facility_energy_kwh, self.intensity_low_g_per_kwh)

    @property
    def co2e_kg_high(self) -> float:
        return co2e_kg(self.facility_energy_kwh, self.intensity_high_g_per_kwh)


def _finite(field: str, value: float, minimum: float) -> float:
    if not math.isfinite(value) or value < minimum:
        raise WattprintInputError(field, f"got {value!r}; expected a finite number >= {minimum:g}")
    return float(value)


def integrate_operational(
    segments: Iterable[Segment],
    intensity: float | SeriesLike,
    pue: float = 1.0,
    fallback_g_per_kwh: float | None = None,
    fallback_band: Band = YEARLY_INTENSITY,
    series_band: Band = SERIES_INTENSITY,
) -> OperationalResult:
    """Operational CO2e of checkpoint intervals: sum of energy x PUE x intensity of each interval.

    `intensity` is a constant gCO2e/kWh or a series with `mean_over(start, end)`. Uncovered parts of
    an interval use `fallback_g_per_kwh` (required when the series leaves a gap; a constant is its
    own fallback). The constant and fallback get `fallback_band`, series values `series_band`.
    """
    _finite("pue", pue, 1.0)
    # a number first: isinstance against a runtime Protocol is slow, and this runs at every checkpoint
    is_series = not isinstance(intensity, int | float) and isinstance(intensity, SeriesLike)
    constant = None if is_series else _finite("intensity_g_per_kwh", intensity, 0.0)  # type: ignore[arg-type]
    fallback = constant if constant is not None else fallback_g_per_kwh
    if fallback is not None:
        fallback = _finite("fallback_g_per_kwh", fallback, 0.0)
    energy = covered = 0.0
    grams = [0.0, 0.0, 0.0]  # central, low, high gCO2e at the hardware (before PUE)
    timed = (0.0, 0.0)  # series value x covered seconds, and the seconds
    for start, end, energy_kwh in segments:
        energy_kwh = _finite("energy_kwh", energy_kwh, 0.0)
        if end < start:
            raise WattprintInputError("segments", f"interval ends ({end.isoformat()}) before it starts")
        found = intensity.mean_over(start, end) if is_series else None  # type: ignore[union-attr]
        share = 0.0 if found is None else 1.0 if found[1] > 1.0 - COVERED_TOLERANCE else max(0.0, found[1])
        in_series = energy_kwh * share
        rest = energy_kwh - in_series
        parts = [(in_series, found[0], series_band)] if found is not None and in_series > 0 else []
        if found is not None and share > 0:  # the series over time: the intensity of a run that drew no energy
            seconds = (end - start).total_seconds() * share
            timed = (timed[0] + found[0] * seconds, timed[1] + seconds)
        if rest > 0:
            if fallback is None:
                span = f"{start.isoformat()} to {end.isoformat()}"
                raise WattprintInputError("fallback_g_per_kwh", f"the intensity series does not cover {span}")
            parts.append((rest, fallback, fallback_band))
        for part_kwh, g_per_kwh, band in parts:
            low, high = band.apply(g_per_kwh)
            grams = [grams[0] + part_kwh * g_per_kwh, grams[1] + part_kwh * low, grams[2] + part_kwh * high]
        energy += energy_kwh
        covered += in_series
    if energy > 0 and constant is None:
        eff, eff_low, eff_high = (g / energy for g in grams)
    elif constant is None and timed[1] > 0:  # no energy to weigh by: the series' mean over the covered time
        eff = timed[0] / timed[1]
        eff_low, eff_high = series_band.apply(eff)
    else:  # a constant is its own mean: exact, where grams / energy rounds (subnormal energies)
        eff = fallback if fallback is not None else 0.0
        eff_low, eff_high = fallback_band.apply(eff)
    return OperationalResult(
        energy_kwh=energy,
        facility_energy_kwh=facility_energy_kwh(energy, pue),
        co2e_kg=g_to_kg(grams[0] * pue),
        pue=pue,
        intensity_g_per_kwh=eff,
        intensity_low_g_per_kwh=eff_low,
        intensity_high_g_per_kwh=eff_high,
        covered_fraction=1.0 if constant is not None else (covered / energy if energy > 0 else 0.0),
    )


def segments_from_cumulative(times: Sequence[datetime], cumulative_kwh: Sequence[float]) -> list[Segment]:
    """Checkpoint intervals from cumulative energy readings: (t[i], t[i+1], e[i+1] - e[i])."""
    if len(times) != len(cumulative_kwh):
        raise WattprintInputError("cumulative_kwh", "needs one reading per time")
    return [(times[i], times[i + 1], cumulative_kwh[i + 1] - cumulative_kwh[i]) for i in range(len(times) - 1)]
