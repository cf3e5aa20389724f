"""Embodied emissions: the SCI amortisation and the bundled figures."""

from __future__ import annotations

import math

import pytest

from wattprint.accounting.embodied import (
    embodied_co2e_kg,
    embodied_table,
    lookup_embodied,
    run_embodied,
    years_to_seconds,
)
from wattprint.errors import WattprintInputError


def test_sci_specification_example() -> None:
    # SCI 1.1: TE 1,000 kg, EL 4 years, TiR 1 hour, whole machine -> about 28.5 g
    grams = embodied_co2e_kg(1000.0, 3600.0, years_to_seconds(4)) * 1000
    assert math.isclose(grams, 1000 * 1000 / 35040)  # 4 years = 35,040 h
    assert round(grams, 1) == 28.5


def test_share_and_time_scale_linearly() -> None:
    # 900 kg server, 2 years, 6 hours, a quarter of it: 900 x 6 / 17,520 x 0.25 = 0.0770548 kg
    assert math.isclose(embodied_co2e_kg(900, 6 * 3600, years_to_seconds(2), 0.25), 900 * 6 / 17520 * 0.25)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((-1.0, 1.0, 1.0), "embodied_kg"),
        ((1.0, float("nan"), 1.0), "reserved_s"),
        ((1.0, 1.0, 0.0), "lifetime_s"),
        ((1.0, 1.0, 1.0, 1.5), "share"),
    ],
)
def test_bad_input(args: tuple[float, ...], field: str) -> None:
    with pytest.raises(WattprintInputError) as err:
        embodied_co2e_kg(*args)
    assert err.value.field == field


def test_reference_figures_and_methods() -> None:
    rows = {(r.device, r.method): r for r in embodied_table()}
    assert rows["H100 SXM", "published"].kgco2e == 164
    assert rows["H100 SXM", "modelled"].kgco2e == 575
    assert rows["A100 SXM4", "modelled"].kgco2e == 319
    assert rows["server", "modelled"].kgco2e == 900 and rows["server", "modelled"].lifetime_years == 4
    p4d = rows["AWS p4d.24xlarge", "modelled"]
    assert (p4d.kgco2e, p4d.kgco2e_low, p4d.kgco2e_high) == (5600, 4233, 8481)
    assert all(r.method in ("published", "modelled") and r.source for r in rows.values())


def test_lookup_prefers_published_and_matches_loosely() -> None:
    assert lookup_embodied("NVIDIA H100 80GB HBM3").kgco2e == 164  # type: ignore[union-attr]
    assert lookup_embodied("h100", method="modelled").kgco2e == 575  # type: ignore[union-attr]
    assert lookup_embodied("A100-SXM4-80GB").kgco2e == 319  # type: ignore[union-attr]
    assert lookup_embodied("p4d").device == "AWS p4d.24xlarge"  # type: ignore[union-attr]
    assert lookup_embodied("T4") is None
    with pytest.raises(WattprintInputError):
        lookup_embodied("H100", method="guessed")


def test_run_embodied_by_hand() -> None:
    out = run_embodied(3600.0, ["NVIDIA H100 80GB HBM3", "Quadro X"], host="server", host_share=0.25)
    gpu = 164 / 26280  # 164 kg over 3 years = 26,280 h, for 1 h
    host = 900 / 35040 * 0.25
    assert math.isclose(out.co2e_kg, gpu + host)
    assert math.isclose(out.co2e_kg_low, gpu * 0.7 + host * 0.75)  # published -30%, modelled -25%
    assert math.isclose(out.co2e_kg_high, gpu * 1.3 + host * 1.5)
    assert out.missing == ("Quadro X",)
    assert "not counted" in out.note and "published" in out.note and "modelled" in out.note
    assert run_embodied(3600.0, host=None).co2e_kg == 0.0
