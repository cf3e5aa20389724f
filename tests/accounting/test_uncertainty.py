"""Low/high ranges, by hand."""

from __future__ import annotations

import math

import pytest

from wattprint.accounting import uncertainty as unc
from wattprint.accounting.embodied import EmbodiedFigure
from wattprint.errors import WattprintInputError


def close(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return math.isclose(a[0], b[0], rel_tol=1e-12) and math.isclose(a[1], b[1], rel_tol=1e-12)


def test_band_apply_and_validation() -> None:
    assert close(unc.Band(-0.2, 0.1, "x").apply(10.0), (8.0, 11.0))
    with pytest.raises(ValueError):
        unc.Band(0.1, 0.2, "low above zero")
    with pytest.raises(ValueError):
        unc.Band(-1.5, 0.2, "below -100%")


def test_power_bands() -> None:
    assert unc.power_band("measured") is unc.MEASURED_POWER
    assert unc.power_band("estimated") is unc.MODEL_POWER
    assert unc.power_band(None) is unc.MODEL_POWER  # an unlabelled figure is never a measurement
    assert (unc.TDP_POWER.low, unc.TDP_POWER.high) == (-0.5, 0.1)
    with pytest.raises(WattprintInputError):
        unc.power_band("guessed")


def test_series_band_from_min_max() -> None:
    band = unc.series_band([100.0, 200.0, 300.0])  # mean 200
    assert (band.low, band.high) == (-0.5, 0.5)
    assert unc.series_band([]) is unc.YEARLY_INTENSITY


def test_record_range_by_hand() -> None:
    energy = {"cpu": 1.0, "gpu": 2.0, "ram": 0.5}
    methods = {"cpu": "estimated", "gpu": "measured", "ram": "estimated"}
    # energy: low 0.65 + 1.9 + 0.325 = 2.875, high 1.35 + 2.1 + 0.675 = 4.125 kWh
    # intensity 400 +-20% -> 320..480; PUE 1.2; embodied 0.1..0.2 kg
    out = unc.record_range(energy, methods, 400.0, pue=1.2, embodied_kg=(0.1, 0.2))
    assert math.isclose(out["co2e_kg_low"], 2.875 * 1.2 * 320 / 1000 + 0.1)  # 1.204
    assert math.isclose(out["co2e_kg_high"], 4.125 * 1.2 * 480 / 1000 + 0.2)  # 2.576
    given = unc.record_range(energy, methods, 400.0, intensity_range_g_per_kwh=(350.0, 450.0))
    assert math.isclose(given["co2e_kg_low"], 2.875 * 350 / 1000)


def test_embodied_range() -> None:
    published = EmbodiedFigure("H100 SXM", 164, 3, "published", "s")
    modelled = EmbodiedFigure("server", 900, 4, "modelled", "s")
    ranged = EmbodiedFigure("AWS p4d.24xlarge", 5600, 4, "modelled", "s", 4233, 8481)
    assert close(unc.embodied_range_kg(1.0, published), (0.7, 1.3))
    assert close(unc.embodied_range_kg(1.0, modelled), (0.75, 1.5))
    assert close(unc.embodied_range_kg(56.0, ranged), (42.33, 84.81))
    assert unc.embodied_range_kg(2.0) == (2.0, 2.0)  # a user-given figure is taken as exact
