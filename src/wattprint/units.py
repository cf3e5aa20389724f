"""Energy, power and carbon units.

Internally wattprint integrates energy in joules and stores kWh and kg in records; every public
name carries its unit. These helpers are the only place where conversion factors live.
"""

from __future__ import annotations

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6
KWH_PER_MWH = 1000.0
G_PER_KG = 1000.0
KG_PER_T = 1000.0
G_PER_LB = 453.59237  # international avoirdupois pound, exact
UJ_PER_J = 1e6  # RAPL counts microjoules
MJ_PER_J = 1e3  # NVML counts millijoules


def joules_to_kwh(energy_j: float) -> float:
    return energy_j / J_PER_KWH


def kwh_to_joules(energy_kwh: float) -> float:
    return energy_kwh * J_PER_KWH


def joules_to_wh(energy_j: float) -> float:
    return energy_j / J_PER_WH


def wh_to_joules(energy_wh: float) -> float:
    return energy_wh * J_PER_WH


def kwh_to_mwh(energy_kwh: float) -> float:
    return energy_kwh / KWH_PER_MWH


def g_to_kg(mass_g: float) -> float:
    return mass_g / G_PER_KG


def kg_to_g(mass_kg: float) -> float:
    return mass_kg * G_PER_KG


def kg_to_t(mass_kg: float) -> float:
    return mass_kg / KG_PER_T


def t_to_kg(mass_t: float) -> float:
    return mass_t * KG_PER_T


def kg_to_lbs(mass_kg: float) -> float:
    return mass_kg * G_PER_KG / G_PER_LB


def lbs_to_kg(mass_lbs: float) -> float:
    return mass_lbs * G_PER_LB / G_PER_KG


def lbs_per_mwh_to_g_per_kwh(rate_lbs_per_mwh: float) -> float:
    """eGRID and WattTime publish lbs/MWh; wattprint works in gCO2e/kWh (1 lb/MWh = 0.4536 g/kWh)."""
    return rate_lbs_per_mwh * G_PER_LB / KWH_PER_MWH


def co2e_kg(energy_kwh: float, intensity_g_per_kwh: float) -> float:
    """Mass of CO2e in kg for an energy in kWh at an intensity in gCO2e/kWh."""
    return g_to_kg(energy_kwh * intensity_g_per_kwh)
