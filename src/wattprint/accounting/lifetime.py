"""A model's lifetime footprint: training once, then serving queries every day ("deployment dominates").

    inference energy per day = J per query x queries per day / 3.6e6        (kWh at the hardware)
    inference CO2e           = inference energy x g per kWh / 1000          (g per kWh with PUE included)
    total                    = training + inference over the serving days (+ embodied, when given)
    crossover day            = the first whole day by the end of which cumulative inference has reached
                               training: ceil(training / inference per day), for energy and for CO2e

The crossover is given even past the serving period (`within_period` says whether it falls inside), and is
None when nothing is served. Pure arithmetic: the figures come from a stored run, a benchmark or an estimate,
each named in `source`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from wattprint.accounting.estimate import check_number
from wattprint.errors import WattprintInputError


@dataclass(frozen=True)
class Training:
    """What training cost: energy at the hardware, CO2e (operational, plus embodied where its source had it)."""

    energy_kwh: float
    co2e_kg: float
    source: str


def _positive(field: str, value: Any, *, allow_zero: bool = True) -> float:
    """A finite number >= 0 (> 0 unless `allow_zero`), as the estimate checks its inputs."""
    checked = check_number(field, value, strict=not allow_zero)
    if checked is None:
        raise WattprintInputError(field, "missing; expected a number")
    return checked


def _crossover(training: float, per_day: float) -> int | None:
    if per_day <= 0:
        return None
    return max(1, math.ceil(training / per_day - 1e-12))


def lifetime(
    training: Training,
    *,
    j_per_query: float,
    queries_per_day: float,
    serving_days: float,
    g_per_kwh: float,
    inference_source: str = "given",
    embodied_kg: float = 0.0,
) -> dict[str, Any]:
    """Training plus `serving_days` of serving `queries_per_day` at `j_per_query`; see the module docstring."""
    _positive("training_kwh", training.energy_kwh)
    _positive("training_co2e_kg", training.co2e_kg)
    j = _positive("j_per_query", j_per_query, allow_zero=False)
    per_day_queries = _positive("queries_per_day", queries_per_day)
    days = _positive("serving_days", serving_days, allow_zero=False)
    g = _positive("g_per_kwh", g_per_kwh)
    embodied = _positive("embodied_kg", embodied_kg)
    kwh_per_day = j * per_day_queries / 3.6e6
    co2e_per_day = kwh_per_day * g / 1000.0
    inference_kwh, inference_co2e = kwh_per_day * days, co2e_per_day * days
    crossover = _crossover(training.energy_kwh, kwh_per_day)
    crossover_co2e = _crossover(training.co2e_kg, co2e_per_day)
    total_kwh = training.energy_kwh + inference_kwh
    total_co2e = training.co2e_kg + inference_co2e + embodied
    return {
        "training": {"energy_kwh": training.energy_kwh, "co2e_kg": training.co2e_kg, "source": training.source},
        "inference": {
            "j_per_query": j,
            "queries_per_day": per_day_queries,
            "days": days,
            "queries": per_day_queries * days,
            "energy_kwh_per_day": kwh_per_day,
            "energy_kwh": inference_kwh,
            "g_co2e_per_kwh": g,
            "co2e_kg": inference_co2e,
            "source": inference_source,
        },
        "embodied_kg": embodied,
        "total": {"energy_kwh": total_kwh, "co2e_kg": total_co2e},
        "inference_share": {
            "energy": inference_kwh / total_kwh if total_kwh > 0 else 0.0,
            "co2e": inference_co2e / total_co2e if total_co2e > 0 else 0.0,
        },
        "crossover_day": crossover,
        "crossover_day_co2e": crossover_co2e,
        "within_period": crossover is not None and crossover <= days,
    }


def bench_j_per_query(bench: dict[str, Any], batch_size: int | None = None) -> tuple[float, int, float | None]:
    """(J per query, batch size, the run's gCO2e per kWh) from a benchmark run's `bench` field; the largest
    batch size measured unless one is named."""
    results = bench.get("results") or []
    if not results:
        raise WattprintInputError("bench_run", "the run holds no benchmark results; expected a `wattprint bench` run")
    if batch_size is None:
        chosen = max(results, key=lambda r: r["batch_size"])
    else:
        matches = [r for r in results if r["batch_size"] == batch_size]
        if not matches:
            sizes = ", ".join(str(r["batch_size"]) for r in results)
            raise WattprintInputError("bench_batch_size", f"got {batch_size}; the run measured {sizes}")
        chosen = matches[0]
    return float(chosen["energy_j_per_query"]), int(chosen["batch_size"]), bench.get("g_co2e_per_kwh")
