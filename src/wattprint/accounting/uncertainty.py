"""Low/high ranges for every carbon figure: how far off the central value could reasonably be.

Method (deliberately simple, so a reader can redo it by hand):

- Each input carries a relative band (`Band`): energy from how it was obtained (counter, model, TDP,
  a given average power), intensity from what kind of figure it is (yearly average, time series),
  embodied from the figure's method (published, modelled) or its published range.
- CO2e = energy x PUE x intensity is a product of non-negative factors, so its range is the product
  of the ends: low = E_low x PUE x I_low, high = E_high x PUE x I_high. This is a worst-case
  (interval) combination, wider than a root-sum-square one; we prefer a range that holds.
- Operational and embodied ranges add: total_low = O_low + M_low, total_high = O_high + M_high.
- PUE is taken as given (configured or a provider's documented default), without a band.

The bands and their grounds (each "assumption" is ours, stated so it can be challenged):

- measured power (RAPL, NVML counters): +-5%. NVML documents power readings "accurate to within
  +/- 5% of current power draw" (nvmlDeviceGetPowerUsage); RAPL is taken to be as good.
- modelled power (CPU utilisation x TDP, RAM per GiB): +-35%. Newkirk et al. 2025 (arXiv 2506.14551)
  report 27-37% error for TDP-based estimates of training energy; we use the upper end.
- TDP x time (no utilisation, ahead-of-time estimates): -50%/+10%. TDP is a ceiling: Newkirk et
  al. measured compute-bound H100 training at 76% of rated power, lighter loads draw less
  (assumption: down to half); +10% covers brief excursions above the rated power (assumption).
- given average power (`--power-w`): +-10% (assumption: an average measured elsewhere, reused).
- yearly average intensity applied to one run: +-20% (assumption: hour-to-hour and seasonal
  variation of most grids around their yearly mean; replaced by a series' own min/max when a series
  of the same region is available, see `series_band`).
- intensity from a time series (covered part of a run): +-5% (assumption: revisions and estimation
  error of published grid series).
- embodied, published product carbon footprint: +-30% (assumption: usual spread of product LCAs).
- embodied, modelled (BoaviztAPI): -25%/+50%, the relative width of BoaviztAPI's own range for the
  p4d.24xlarge (4,233-8,481 around 5,600 kgCO2e); a row's own range is used when it has one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wattprint.errors import WattprintInputError

if TYPE_CHECKING:
    from wattprint.accounting.embodied import EmbodiedFigure


@dataclass(frozen=True)
class Band:
    """Relative range around a central value: [value x (1 + low), value x (1 + high)]."""

    low: float
    high: float
    source: str

    def __post_init__(self) -> None:
        finite = math.isfinite(self.low) and math.isfinite(self.high)
        if not finite or not -1.0 <= self.low <= 0.0 <= self.high:
            raise ValueError(f"band ({self.low}, {self.high}) must satisfy -1 <= low <= 0 <= high")

    def apply(self, value: float) -> tuple[float, float]:
        """(low, high) of a non-negative `value`."""
        return value * (1.0 + self.low), value * (1.0 + self.high)


NO_BAND = Band(0.0, 0.0, "taken as exact (user input)")
MEASURED_POWER = Band(-0.05, 0.05, "NVML: power accurate to +/-5% of draw (nvmlDeviceGetPowerUsage docs)")
MODEL_POWER = Band(-0.35, 0.35, "TDP-based models err by 27-37% (Newkirk et al. 2025, arXiv 2506.14551)")
TDP_POWER = Band(-0.50, 0.10, "TDP is a ceiling; compute-bound training drew 76% of it (Newkirk et al. 2025)")
GIVEN_POWER = Band(-0.10, 0.10, "assumption: a measured average power reused ahead of time")
YEARLY_INTENSITY = Band(-0.20, 0.20, "assumption: a run's grid mix vs the yearly average")
SERIES_INTENSITY = Band(-0.05, 0.05, "assumption: revisions of published grid intensity series")
PUBLISHED_EMBODIED = Band(-0.30, 0.30, "assumption: usual spread of product carbon footprints")
MODELLED_EMBODIED = Band(-0.25, 0.50, "BoaviztAPI's own range for p4d.24xlarge, 4,233-8,481 around 5,600 kg")

POWER_BANDS: dict[str, Band] = {
    "measured": MEASURED_POWER,
    "estimated": MODEL_POWER,
    "model": MODEL_POWER,
    "tdp": TDP_POWER,
    "given": GIVEN_POWER,
}


def power_band(method: str | None) -> Band:
    """Band of an energy figure from how it was obtained: measured|estimated|model|tdp|given.

    None (unknown) gets the model band: an unlabelled figure is never treated as a measurement.
    """
    if method is None:
        return MODEL_POWER
    try:
        return POWER_BANDS[method]
    except KeyError:
        accepted = ", ".join(POWER_BANDS)
        raise WattprintInputError("method", f"got {method!r}; expected one of {accepted}") from None


def series_band(values: Sequence[float]) -> Band:
    """Band of a yearly average from a series of the same region: its min and max around its mean."""
    finite = [v for v in values if math.isfinite(v) and v >= 0]
    if not finite or sum(finite) == 0:
        return YEARLY_INTENSITY
    mean = sum(finite) / len(finite)
    return Band(min(finite) / mean - 1.0, max(finite) / mean - 1.0, "min and max of the intensity series")


def energy_range_kwh(parts: Iterable[tuple[float, Band]]) -> tuple[float, float]:
    """(low, high) of a total energy made of parts, each (energy_kwh, band)."""
    low = high = 0.0
    for energy_kwh, band in parts:
        part_low, part_high = band.apply(energy_kwh)
        low, high = low + part_low, high + part_high
    return low, high


def operational_range_kg(
    energy_range: tuple[float, float], intensity_range_g_per_kwh: tuple[float, float], pue: float = 1.0
) -> tuple[float, float]:
    """(low, high) kgCO2e = energy x PUE x intensity, ends multiplied together (worst case)."""
    return (
        energy_range[0] * pue * intensity_range_g_per_kwh[0] / 1000.0,
        energy_range[1] * pue * intensity_range_g_per_kwh[1] / 1000.0,
    )


def embodied_range_kg(co2e_kg: float, figure: EmbodiedFigure | None = None) -> tuple[float, float]:
    """(low, high) of an embodied share: the row's own range when it has one, else its method's band."""
    if figure is None:
        return NO_BAND.apply(co2e_kg)
    if figure.kgco2e_low is not None and figure.kgco2e_high is not None and figure.kgco2e > 0:
        return co2e_kg * figure.kgco2e_low / figure.kgco2e, co2e_kg * figure.kgco2e_high / figure.kgco2e
    band = PUBLISHED_EMBODIED if figure.method == "published" else MODELLED_EMBODIED
    return band.apply(co2e_kg)


def total_range_kg(operational: tuple[float, float], embodied: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    """(low, high) of operational + embodied."""
    return operational[0] + embodied[0], operational[1] + embodied[1]


def record_range(
    energy_kwh: Mapping[str, float],
    methods: Mapping[str, str | None],
    intensity_g_per_kwh: float,
    pue: float = 1.0,
    embodied_kg: tuple[float, float] = (0.0, 0.0),
    intensity_band: Band = YEARLY_INTENSITY,
    intensity_range_g_per_kwh: tuple[float, float] | None = None,
) -> dict[str, float]:
    """{"co2e_kg_low", "co2e_kg_high"} of a run from its energy per component and how each was obtained.

    `energy_kwh` and `methods` are keyed by component ("cpu", "gpu", "ram"); `methods` values are
    "measured"/"estimated" as on the run record. `intensity_range_g_per_kwh` (e.g. the effective
    low/high of `integrate_operational`) replaces `intensity_band` when given.
    """
    energy = energy_range_kwh([(kwh, power_band(methods.get(name))) for name, kwh in energy_kwh.items()])
    intensity = intensity_range_g_per_kwh or intensity_band.apply(intensity_g_per_kwh)
    low, high = total_range_kg(operational_range_kg(energy, intensity, pue), embodied_kg)
    return {"co2e_kg_low": low, "co2e_kg_high": high}
