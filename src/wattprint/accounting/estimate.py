"""Ahead-of-time calculator: hardware x count x time x power x PUE x grid intensity (+ embodied).

Used by `wattprint estimate` and `wattprint.estimate()`; both return the same document:

    {"energy_kwh": f, "facility_energy_kwh": f, "co2e_kg": {"operational", "embodied", "total"},
     "inputs": {...}, "range": {"co2e_kg_low", "co2e_kg_high"}}   (+ "co2e_lbs" for strubell)

`energy_kwh` is at the hardware (before PUE), `facility_energy_kwh` = `energy_kwh` x PUE. Methods,
each the published convention it is named after:

- patterson (default; Patterson et al. 2021): kWh = count x power x hours / 1000, with power the
  given average (`power_w`) or else the board TDP; facility kWh = kWh x PUE. PUE: the given one,
  else the provider's documented default for a cloud region (GCP: 1.10), else 1.0 (a local
  machine, as for `wattprint run`). Reproduces the paper's GPT-3 row (10,000 V100, 14.8 days,
  330 W, PUE 1.10, 429 g/kWh -> 1,289 MWh, 553 tCO2e; the paper rounds to 1,287 and 552).
- mlco2 (Lacoste et al. 2019, ML CO2 Impact): kWh = count x TDP x hours / 1000 and no PUE (PUE 1);
  `power_w` and `pue` are refused rather than silently ignored.
- strubell (Strubell et al. 2019): PUE fixed at 1.58; without a region or intensity the US average
  0.954 lbs/kWh; CO2e is also reported in pounds (`co2e_lbs`).

Embodied (optional): count x SCI's TE x (TiR / EL) with the given kg per device and lifetime, or
the bundled figure of the hardware (`embodied_from_table`). The range follows
`wattprint.accounting.uncertainty`: TDP -50%/+10% or given power +-10%, intensity +-20%.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from wattprint.accounting import uncertainty as unc
from wattprint.accounting.embodied import embodied_co2e_kg, lookup_embodied, years_to_seconds
from wattprint.accounting.footprint import facility_energy_kwh, operational_co2e_kg
from wattprint.accounting.hardware import lookup_hardware, match_note
from wattprint.errors import WattprintInputError
from wattprint.record import Co2eKg
from wattprint.units import G_PER_LB, kg_to_lbs

METHODS = ("patterson", "mlco2", "strubell")
STRUBELL_PUE = 1.58
STRUBELL_LBS_PER_KWH = 0.954
STRUBELL_G_PER_KWH = STRUBELL_LBS_PER_KWH * G_PER_LB  # 432.73 gCO2e/kWh
STRUBELL_INTENSITY_SOURCE = "Strubell et al. 2019: US average 0.954 lbs/kWh (EPA figure used in the paper)"
FORMULAS = {
    "patterson": "kWh = count x power x hours / 1000 (Patterson et al. 2021); facility kWh = kWh x PUE",
    "mlco2": "kWh = count x TDP x hours / 1000; no PUE (ML CO2 Impact, Lacoste et al. 2019)",
    "strubell": "kWh = 1.58 x count x power x hours / 1000; CO2e = 0.954 lbs/kWh x kWh "
    "(US average; Strubell et al. 2019)",
}
# Strubell's formula with another intensity than the paper's US average (--region or --intensity given)
STRUBELL_OTHER_INTENSITY = (
    "kWh = 1.58 x count x power x hours / 1000; CO2e = intensity x kWh (Strubell et al. 2019, with the "
    "given grid intensity instead of the paper's US average of 0.954 lbs/kWh)"
)
WORLD_DEFAULT_SOURCE = "no region or intensity given: world average"


class CarbonRange(BaseModel):
    """Low and high total CO2e (see `wattprint.accounting.uncertainty`)."""

    model_config = ConfigDict(extra="forbid")
    co2e_kg_low: float
    co2e_kg_high: float


class EstimateResult(BaseModel):
    """The `wattprint estimate --json` document; `to_dict()` is exactly what the CLI prints."""

    model_config = ConfigDict(extra="forbid")
    energy_kwh: float
    facility_energy_kwh: float
    co2e_kg: Co2eKg
    inputs: dict[str, Any]
    range: CarbonRange
    co2e_lbs: Co2eKg | None = None

    def to_dict(self) -> dict[str, Any]:
        document = self.model_dump(mode="json")
        if self.co2e_lbs is None:
            del document["co2e_lbs"]
        return document


def check_number(field: str, value: float | None, minimum: float = 0.0, strict: bool = True) -> float | None:
    """`value` as a float, None kept; NaN, infinities and values below the minimum are refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WattprintInputError(field, f"got {value!r}; expected a number")
    ok = math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        expected = "a positive number" if strict and minimum == 0 else f"a finite number >= {minimum:g}"
        raise WattprintInputError(field, f"got {value!r}; expected {expected}")
    return float(value)


def _one_of(first: tuple[str, Any], second: tuple[str, Any], required: bool) -> None:
    """Two mutually exclusive parameters: not both; one of them when `required`."""
    (flag_a, a), (flag_b, b) = first, second
    if a is not None and b is not None:
        raise WattprintInputError(flag_b, f"give either `{flag_a}` or `{flag_b}`, not both")
    if required and a is None and b is None:
        raise WattprintInputError(flag_a, f"missing; give `{flag_a}` or `{flag_b}`")


def _duration_hours(hours: float | None, days: float | None) -> float:
    _one_of(("hours", hours), ("days", days), required=True)
    h, d = check_number("hours", hours), check_number("days", days)
    return h if h is not None else d * 24.0  # type: ignore[operator]


def _intensity(method: str, intensity: float | None, region: str | None) -> tuple[float, str, str | None, float | None]:
    """(g/kWh, source, region, provider default PUE) from --intensity, --region or the method's default (the
    paper's US average for strubell, the world average otherwise, as a tracked run without a region gets)."""
    _one_of(("intensity", intensity), ("region", region), required=False)
    value = check_number("intensity", intensity, strict=False)
    if value is not None:
        return value, "given (--intensity, gCO2e/kWh)", None, None
    if region is not None:
        from wattprint.intensity.static import StaticProvider

        if not region.strip():
            raise WattprintInputError("region", "empty region; expected a code such as FR, US-CA, gcp:europe-west9")
        found = StaticProvider().intensity(region, field="region")
        return found.g_per_kwh, found.source, found.region, found.default_pue
    if method == "strubell":
        return STRUBELL_G_PER_KWH, STRUBELL_INTENSITY_SOURCE, None, None
    from wattprint.intensity.static import WORLD_G_PER_KWH, WORLD_REGION, WORLD_SOURCE

    return WORLD_G_PER_KWH, f"{WORLD_DEFAULT_SOURCE} ({WORLD_SOURCE})", WORLD_REGION, None


def _pue(method: str, pue: float | None, provider_pue: float | None, region: str | None) -> tuple[float, str]:
    value = check_number("pue", pue, minimum=1.0, strict=False)
    if method == "mlco2":
        if value is not None:
            raise WattprintInputError(
                "pue", "the mlco2 method uses no PUE; leave `pue` out or use the patterson `method`"
            )
        return 1.0, "mlco2 method: no PUE (ML CO2 Impact calculator), PUE forced to 1.0"
    if method == "strubell":
        if value is not None:
            raise WattprintInputError(
                "pue", "the strubell method fixes PUE at 1.58; leave `pue` out or use the patterson `method`"
            )
        return STRUBELL_PUE, "strubell method: PUE 1.58 (Strubell et al. 2019, 2018 data-centre average)"
    if value is not None:
        return value, "given (--pue)"
    if provider_pue is not None:
        return provider_pue, f"default for {(region or '').split(':')[0]} data centres"
    return 1.0, "default 1.0 (no --pue given; a local machine; pass --pue for a data centre)"


def grid_factor(intensity: float | None, region: str | None, pue: float | None) -> tuple[float, str]:
    """(gCO2e per kWh at the hardware, PUE included; where it comes from) from `intensity` or `region` and
    `pue`, resolved as the patterson estimate resolves them (one of intensity or region is required)."""
    g_per_kwh, source, found_region, provider_pue = _intensity("patterson", intensity, region)
    pue_value, pue_source = _pue("patterson", pue, provider_pue, found_region or region)
    return g_per_kwh * pue_value, f"{source}; PUE {pue_value:g} ({pue_source})"


def _embodied(
    hardware_name: str, count: int, hours: float, kg: float | None, years: float | None, from_table: bool
) -> tuple[float, tuple[float, float], dict[str, Any]]:
    """(kgCO2e, (low, high), inputs) of the embodied share over the reservation."""
    kg = check_number("embodied_kg_per_device", kg, strict=False)
    years = check_number("lifetime_years", years)
    if (kg is None) != (years is None):
        missing = "lifetime_years" if years is None else "embodied_kg_per_device"
        raise WattprintInputError(missing, "embodied needs both `embodied_kg_per_device` and `lifetime_years`")
    if from_table and kg is not None:
        raise WattprintInputError(
            "embodied_from_table", "give either `embodied_from_table` or the two embodied figures"
        )
    figure = None
    if from_table:
        figure = lookup_embodied(hardware_name)
        if figure is None:
            raise WattprintInputError(
                "embodied_from_table",
                f"no embodied figure for {hardware_name!r} in wattprint/data/embodied.csv; "
                "give `embodied_kg_per_device` and `lifetime_years`",
            )
        kg, years = figure.kgco2e, figure.lifetime_years
    if kg is None or years is None:
        return (
            0.0,
            (0.0, 0.0),
            {"embodied": "not included (give --embodied-kg-per-device and --lifetime-years)"},
        )
    total = count * embodied_co2e_kg(kg, hours * 3600.0, years_to_seconds(years))
    source = f"{figure.method}: {figure.source}" if figure else "given (--embodied-kg-per-device, --lifetime-years)"
    return (
        total,
        unc.embodied_range_kg(total, figure),
        {
            "embodied_kg_per_device": kg,
            "lifetime_years": years,
            "embodied_source": source,
            "embodied_formula": "count x kg per device x (hours reserved / lifetime) (SCI: TE x TiR/EL)",
        },
    )


def estimate(
    hardware: str,
    *,
    count: int = 1,
    hours: float | None = None,
    days: float | None = None,
    power_w: float | None = None,
    pue: float | None = None,
    intensity: float | None = None,
    region: str | None = None,
    embodied_kg_per_device: float | None = None,
    lifetime_years: float | None = None,
    embodied_from_table: bool = False,
    method: str = "patterson",
) -> EstimateResult:
    """Energy and CO2e of `count` devices of `hardware` over `hours` (or `days`), before running.

    `intensity` is in gCO2e/kWh (0.429 kg/kWh = 429); `region` is looked up in the bundled yearly
    averages; with neither, the world average is used (the strubell method: the paper's US average), and
    the result says so. Bad input raises `WattprintInputError` naming the parameter (the CLI shows its flag).
    """
    if method not in METHODS:
        raise WattprintInputError("method", f"got {method!r}; expected one of {', '.join(METHODS)}")
    device = lookup_hardware(hardware, field="hardware")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise WattprintInputError("count", f"got {count!r}; expected a whole number >= 1")
    duration_h = _duration_hours(hours, days)
    given_power = check_number("power_w", power_w)
    if method == "mlco2" and given_power is not None:
        raise WattprintInputError(
            "power_w", "the mlco2 method uses the TDP; leave `power_w` out or use the patterson `method`"
        )
    g_per_kwh, intensity_source, region_code, provider_pue = _intensity(method, intensity, region)
    pue_value, pue_source = _pue(method, pue, provider_pue, region_code)
    embodied_kg, embodied_range, embodied_inputs = _embodied(
        device.name, count, duration_h, embodied_kg_per_device, lifetime_years, embodied_from_table
    )

    power = given_power if given_power is not None else device.tdp_w
    energy = count * power * duration_h / 1000.0
    operational = operational_co2e_kg(energy, g_per_kwh, pue_value)
    power_band = unc.GIVEN_POWER if given_power is not None else unc.TDP_POWER
    op_range = unc.operational_range_kg(power_band.apply(energy), unc.YEARLY_INTENSITY.apply(g_per_kwh), pue_value)
    low, high = unc.total_range_kg(op_range, embodied_range)
    co2e = Co2eKg(operational=operational, embodied=embodied_kg, total=operational + embodied_kg)
    inputs: dict[str, Any] = {
        "method": method,
        "formula": STRUBELL_OTHER_INTENSITY
        if method == "strubell" and (intensity is not None or region is not None)
        else FORMULAS[method],
        "hardware": device.name,
        "hardware_query": hardware,
        "hardware_kind": device.kind,
        "tdp_w": device.tdp_w,
        "hardware_source": device.source,
        **({"hardware_note": note} if (note := match_note(hardware, device)) else {}),
        "count": count,
        "hours": duration_h,
        **({"days": float(days)} if days is not None else {}),
        "power_w": power,
        "power_source": "given (--power-w, average per device)" if given_power is not None else "TDP",
        "pue": pue_value,
        "pue_source": pue_source,
        "region": region_code,
        "intensity_g_per_kwh": g_per_kwh,
        "intensity_source": intensity_source,
        **embodied_inputs,
        "uncertainty": {
            "power": f"{power_band.low:+.0%}/{power_band.high:+.0%}: {power_band.source}",
            "intensity": f"{unc.YEARLY_INTENSITY.low:+.0%}/{unc.YEARLY_INTENSITY.high:+.0%}: "
            f"{unc.YEARLY_INTENSITY.source}",
            "combination": "worst case: low = E_low x PUE x I_low (+ embodied low), high likewise",
        },
    }
    lbs = None
    if method == "strubell":
        lbs = Co2eKg(operational=kg_to_lbs(operational), embodied=kg_to_lbs(embodied_kg), total=kg_to_lbs(co2e.total))
    return EstimateResult(
        energy_kwh=energy,
        facility_energy_kwh=facility_energy_kwh(energy, pue_value),
        co2e_kg=co2e,
        inputs=inputs,
        range=CarbonRange(co2e_kg_low=low, co2e_kg_high=high),
        co2e_lbs=lbs,
    )
