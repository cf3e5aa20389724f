"""Software Carbon Intensity (Green Software Foundation SCI 1.1, ISO/IEC 21031:2024).

SCI = (O + M) per R: operational plus embodied emissions divided by the number of functional units
R the software delivered. O is location-based (grid intensity where the energy was used); offsets
and renewable certificates never lower it. The user chooses R: a run, an epoch, a sample, an
inference, 1,000 inferences, a token or 1,000 tokens; `quantity` counts the base items (epochs,
samples, inferences, tokens), and a "1,000 ..." unit divides it by 1,000.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from wattprint.errors import WattprintInputError

#: functional unit -> how many base items make one unit
FUNCTIONAL_UNITS: dict[str, int] = {
    "run": 1,
    "epoch": 1,
    "sample": 1,
    "inference": 1,
    "1000 inferences": 1000,
    "token": 1,
    "1000 tokens": 1000,
}


def _key(unit: str) -> str:
    """Unit spelling without case, separators, thousands commas, "1k" or a plural "s"."""
    text = re.sub(r"[\s_,.\-]+", "", unit.lower()).replace("1k", "1000")
    return text[:-1] if text.endswith("s") else text


_UNITS = {_key(name): name for name in FUNCTIONAL_UNITS}


def functional_unit(unit: str, field: str = "unit") -> str:
    """Canonical name of a functional unit ("1k-inferences" -> "1000 inferences"); unknown raises."""
    found = _UNITS.get(_key(unit))
    if found is None:
        raise WattprintInputError(
            field, f"unknown functional unit {unit!r}; expected one of {', '.join(FUNCTIONAL_UNITS)}"
        )
    return found


@dataclass(frozen=True)
class SciScore:
    """gCO2e per functional unit, with the inputs that produced it."""

    g_per_unit: float
    unit: str
    units: float
    operational_kg: float
    embodied_kg: float

    @property
    def kg_per_unit(self) -> float:
        return self.g_per_unit / 1000.0

    def label(self) -> str:
        """e.g. '12.3 gCO2e per 1000 inferences'."""
        return f"{self.g_per_unit:.3g} gCO2e per {self.unit}"


def sci(operational_kg: float, embodied_kg: float, unit: str = "run", quantity: float = 1.0) -> SciScore:
    """SCI = (O + M) / R, in gCO2e per `unit`; `quantity` counts base items (R = quantity / unit size)."""
    for name, value in (("operational_kg", operational_kg), ("embodied_kg", embodied_kg)):
        if not math.isfinite(value) or value < 0:
            raise WattprintInputError(name, f"got {value!r}; expected a finite number >= 0")
    if not math.isfinite(quantity) or quantity <= 0:
        raise WattprintInputError("quantity", f"got {quantity!r}; expected a positive number of {unit}s")
    canonical = functional_unit(unit)
    units = quantity / FUNCTIONAL_UNITS[canonical]
    return SciScore((operational_kg + embodied_kg) * 1000.0 / units, canonical, units, operational_kg, embodied_kg)
