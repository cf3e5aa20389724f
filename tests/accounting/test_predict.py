"""Whole-run prediction from the first epochs, by hand."""

from __future__ import annotations

import math

import pytest

from wattprint.accounting.predict import predict_run, predict_total, progress_line, t_cdf, t_quantile
from wattprint.errors import WattprintInputError


@pytest.mark.parametrize(("df", "q"), [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (1000, 1.9623)])
def test_t_quantiles_match_tables(df: int, q: float) -> None:
    assert math.isclose(t_quantile(0.975, df), q, abs_tol=1e-4)
    assert math.isclose(t_cdf(q, df), 0.975, abs_tol=1e-5)
    assert t_cdf(0.0, df) == 0.5


def test_t_interval_by_hand() -> None:
    # epochs 1, 2, 3 (mean 2, sd 1), 3 left: 6 + 3 x 2 = 12; half-width t(0.975, 2) x 1 x sqrt(9/3 + 3)
    out = predict_total([1.0, 2.0, 3.0], 3)
    half = 4.302653 * math.sqrt(6)
    assert math.isclose(out.value, 12.0)
    assert math.isclose(out.high, 12.0 + half, rel_tol=1e-6)
    assert out.low == 6.0  # never below what has been used


def test_one_epoch_band_and_floor() -> None:
    one = predict_total([2.0], 4)  # 2 + 4 x 2 = 10, +-50% of the remaining 8
    assert (one.value, one.low, one.high) == (10.0, 6.0, 14.0)
    same = predict_total([1.0, 1.0, 1.0], 7)  # sd 0: floor +-5% of the remaining 7
    assert math.isclose(same.low, 9.65) and math.isclose(same.high, 10.35)


def test_predict_run_and_progress_line() -> None:
    pred = predict_run([(1800.0, 0.1), (1800.0, 0.1)], total_epochs=20, intensity_g_per_kwh=400.0)
    assert math.isclose(pred.energy_kwh.value, 2.0)
    assert math.isclose(pred.energy_kwh.low, 1.91) and math.isclose(pred.energy_kwh.high, 2.09)
    assert math.isclose(pred.duration_s.value, 36_000.0)
    assert math.isclose(pred.co2e_kg.value, 0.8) and math.isclose(pred.co2e_kg.high, 0.836)
    assert progress_line(pred) == "epoch 2/20: predicted total 2.0 kWh (1.9-2.1), 0.80 kgCO2e (0.76-0.84), 10 h"


def test_small_run_uses_small_units() -> None:
    pred = predict_run([(30.0, 0.001)], total_epochs=3, intensity_g_per_kwh=50.0, pue=1.2)
    # 3 Wh (2-4 Wh); 3 Wh x 1.2 x 50 g/kWh = 0.18 g; 90 s
    assert progress_line(pred) == "epoch 1/3: predicted total 3.0 Wh (2.0-4.0), 0.18 gCO2e (0.12-0.24), 1.5 min"


def test_warmup_epochs_count_but_do_not_set_the_mean() -> None:
    epochs = [(100.0, 5.0), (10.0, 1.0), (10.0, 1.0), (10.0, 1.0)]
    pred = predict_run(epochs, total_epochs=10, intensity_g_per_kwh=0.0, warmup_epochs=1)
    # 5 (warm-up) + 3 observed + 6 x 1 = 14, floor +-5% of 6 = 0.3
    assert math.isclose(pred.energy_kwh.value, 14.0)
    assert math.isclose(pred.energy_kwh.low, 13.7) and math.isclose(pred.energy_kwh.high, 14.3)


@pytest.mark.parametrize(
    ("epochs", "total", "field"),
    [
        ([], 10, "epochs"),
        ([(1.0, 1.0), (1.0, 1.0)], 1, "total_epochs"),
        ([(1.0, float("nan"))], 10, "epochs"),
        ([(-1.0, 1.0)], 10, "epochs"),
    ],
)
def test_bad_input(epochs: list, total: int, field: str) -> None:
    with pytest.raises(WattprintInputError) as err:
        predict_run(epochs, total, 100.0)
    assert err.value.field == field
