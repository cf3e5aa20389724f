"""Pareto front of quality against cost: the runs no other run beats on both.

A run is on the front when no other run has a metric at least as good *and* a cost at least as low,
with one of the two strictly better. Runs without the metric (or without the cost) cannot be placed
and are returned separately, so a report can say so instead of treating them as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from wattprint.record import RunRecord
from wattprint.report.values import flops_of, metric_value, number

COSTS = ("energy", "flops")


@dataclass(frozen=True)
class Point:
    """One run placed on the chart: `cost` (kWh or FLOPs) against `metric`."""

    index: int  # position of the run in the input
    cost: float
    metric: float


@dataclass
class Front:
    """Result of :func:`pareto_front`: positions (in the input order) on and off the front."""

    on_front: list[int] = field(default_factory=list)  # sorted by increasing cost
    dominated: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # no metric or no cost: not placed


def dominates(a: Point, b: Point, *, maximize: bool = True) -> bool:
    """Whether `a` is at least as good as `b` on both axes and strictly better on one."""
    better_metric = a.metric > b.metric if maximize else a.metric < b.metric
    same_or_better_metric = better_metric or a.metric == b.metric
    return same_or_better_metric and a.cost <= b.cost and (better_metric or a.cost < b.cost)


def front_of(points: Sequence[Point], *, maximize: bool = True) -> list[Point]:
    """The non-dominated points, by increasing cost. O(n log n): sort by cost, keep running best metric.

    Points with equal cost and metric are all kept (neither dominates the other).
    """
    sign = 1.0 if maximize else -1.0
    ordered = sorted(points, key=lambda p: (p.cost, -sign * p.metric, p.index))
    front: list[Point] = []
    best: float | None = None  # best metric (signed) among points of strictly lower cost or on front
    for p in ordered:
        m = sign * p.metric
        if best is None or m > best:
            front.append(p)
            best = m
        elif m == best and front and front[-1].cost == p.cost and sign * front[-1].metric == m:
            front.append(p)  # an exact tie with the last front point
    return front


def cost_of(record: RunRecord, cost: str) -> float | None:
    """The x-axis value of a run: hardware energy in kWh, or FLOPs (see report.values)."""
    if cost == "energy":
        return number(record.energy_kwh.total)
    if cost == "flops":
        return flops_of(record)
    raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")


def pareto_front(
    records: Sequence[RunRecord], *, metric: str = "accuracy", cost: str = "energy", maximize: bool = True
) -> Front:
    """Split runs into the front (maximize/minimize `metric`, minimize `cost`), dominated and unplaceable."""
    result = Front()
    points = []
    for i, record in enumerate(records):
        value, spent = metric_value(record, metric), cost_of(record, cost)
        if value is None or spent is None:
            result.missing.append(i)
        else:
            points.append(Point(i, spent, value))
    front = front_of(points, maximize=maximize)
    result.on_front = [p.index for p in front]
    on = set(result.on_front)
    result.dominated = [p.index for p in points if p.index not in on]
    return result


def front_overlaps(records: Sequence[RunRecord], on_front: Sequence[int]) -> list[str]:
    """A note naming neighbours on the energy front whose CO2e ranges overlap (the front is drawn through them, but
    the order between them is not established by these runs), or no note."""
    from wattprint.report.values import co2e_range_kg, model_name

    pairs = []
    for a, b in zip(on_front, on_front[1:], strict=False):
        ra, rb = co2e_range_kg(records[a]), co2e_range_kg(records[b])
        if ra is not None and rb is not None and ra[0] <= rb[1] and rb[0] <= ra[1]:
            pairs.append(f"{model_name(records[a])} and {model_name(records[b])}")
    if not pairs:
        return []
    return [
        f"On the energy front, {'; '.join(pairs)}: their CO2e ranges overlap, so the order between them is not "
        "established by these runs (the ranges hold the power method's and the grid data's uncertainty, partly "
        "shared by runs on one machine and grid; repeated runs would show their spread)."
    ]
