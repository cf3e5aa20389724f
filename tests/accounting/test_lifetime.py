"""Lifetime footprint arithmetic: training plus serving, and the day inference overtakes training."""

from __future__ import annotations

import pytest

from wattprint.accounting.lifetime import Training, bench_j_per_query, lifetime
from wattprint.errors import WattprintInputError


def test_totals_and_crossover_by_hand() -> None:
    # 1,000 kWh of training; 3.6 J x 1e6 queries/day = 1 kWh/day of serving at 400 g/kWh
    doc = lifetime(
        Training(1000.0, 300.0, "given"), j_per_query=3.6, queries_per_day=1e6, serving_days=2000, g_per_kwh=400
    )
    serve = doc["inference"]
    assert serve["energy_kwh_per_day"] == pytest.approx(1.0)
    assert serve["energy_kwh"] == pytest.approx(2000.0) and serve["co2e_kg"] == pytest.approx(800.0)
    assert doc["total"] == {"energy_kwh": pytest.approx(3000.0), "co2e_kg": pytest.approx(1100.0)}
    assert doc["crossover_day"] == 1000  # 1,000 kWh / 1 kWh per day: reached at the end of day 1,000
    assert doc["crossover_day_co2e"] == 750  # 300 kg / 0.4 kg per day
    assert doc["within_period"] is True
    assert doc["inference_share"]["energy"] == pytest.approx(2 / 3)


def test_crossover_past_the_period_and_partial_days() -> None:
    doc = lifetime(
        Training(10.0, 1.0, "run"), j_per_query=1.0, queries_per_day=3.6e6 / 3, serving_days=10, g_per_kwh=100
    )
    assert doc["inference"]["energy_kwh_per_day"] == pytest.approx(1 / 3)
    assert doc["crossover_day"] == 30 and doc["within_period"] is False
    nothing = lifetime(Training(10.0, 1.0, "run"), j_per_query=1.0, queries_per_day=0, serving_days=10, g_per_kwh=100)
    assert nothing["crossover_day"] is None and nothing["within_period"] is False


def test_embodied_adds_to_the_total_only() -> None:
    doc = lifetime(
        Training(1.0, 1.0, "x"), j_per_query=1, queries_per_day=1, serving_days=1, g_per_kwh=0, embodied_kg=5
    )
    assert doc["total"]["co2e_kg"] == pytest.approx(6.0) and doc["embodied_kg"] == 5.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"j_per_query": 0}, "j_per_query"),
        ({"j_per_query": float("nan")}, "j_per_query"),
        ({"queries_per_day": -1}, "queries_per_day"),
        ({"serving_days": 0}, "serving_days"),
        ({"g_per_kwh": True}, "g_per_kwh"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict, field: str) -> None:
    args = {"j_per_query": 1.0, "queries_per_day": 10.0, "serving_days": 5.0, "g_per_kwh": 100.0} | kwargs
    with pytest.raises(WattprintInputError) as info:
        lifetime(Training(1.0, 1.0, "x"), **args)
    assert info.value.field == field


def test_bench_j_per_query_picks_the_largest_batch_unless_told() -> None:
    bench = {
        "results": [{"batch_size": 1, "energy_j_per_query": 0.9}, {"batch_size": 32, "energy_j_per_query": 0.3}],
        "g_co2e_per_kwh": 480.0,
    }
    assert bench_j_per_query(bench) == (0.3, 32, 480.0)
    assert bench_j_per_query(bench, 1) == (0.9, 1, 480.0)
    with pytest.raises(WattprintInputError, match="measured 1, 32"):
        bench_j_per_query(bench, 8)
    with pytest.raises(WattprintInputError, match="no benchmark results"):
        bench_j_per_query({})
