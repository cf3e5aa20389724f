"""Operational carbon: energy at the hardware x PUE x grid intensity. Pure functions."""

from __future__ import annotations

from wattprint.units import co2e_kg


def facility_energy_kwh(energy_kwh: float, pue: float) -> float:
    """Energy drawn by the facility: IT energy x power usage effectiveness."""
    return energy_kwh * pue


def operational_co2e_kg(energy_kwh: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """kgCO2e of `energy_kwh` at the hardware, in a facility of `pue`, on a grid of the given intensity."""
    return co2e_kg(facility_energy_kwh(energy_kwh, pue), intensity_g_per_kwh)
