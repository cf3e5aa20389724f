"""Pareto front against brute force, ties, minimizing, and runs that cannot be placed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.report.records import make_record
from wattprint.report.pareto import Point, dominates, front_of, pareto_front

small = st.integers(min_value=0, max_value=6).map(float)  # few distinct values: many ties


def brute_force(points: list[Point], maximize: bool) -> set[int]:
    return {p.index for p in points if not any(dominates(q, p, maximize=maximize) for q in points if q is not p)}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(small, small), max_size=25), st.booleans())
def test_front_matches_brute_force(pairs: list[tuple[float, float]], maximize: bool) -> None:
    points = [Point(i, cost, metric) for i, (cost, metric) in enumerate(pairs)]
    front = front_of(points, maximize=maximize)
    assert {p.index for p in front} == brute_force(points, maximize)
    assert [p.cost for p in front] == sorted(p.cost for p in front)


def test_dominates_by_hand() -> None:
    cheap_good, dear_good, cheap_bad = Point(0, 1.0, 0.9), Point(1, 2.0, 0.9), Point(2, 1.0, 0.8)
    assert dominates(cheap_good, dear_good) and dominates(cheap_good, cheap_bad)
    assert not dominates(cheap_good, cheap_good)  # equal points do not dominate each other
    assert dominates(cheap_bad, cheap_good, maximize=False)  # lower metric wins when minimizing


def test_runs_without_metric_or_flops_are_set_apart() -> None:
    runs = [
        make_record("a1", "a", energy_kwh=1.0, co2e_kg=0.1, metrics={"accuracy": 0.9, "flops": 4e9}),
        make_record("b2", "b", energy_kwh=2.0, co2e_kg=0.1, metrics={"accuracy": 0.95}),
        make_record("c3", "c", energy_kwh=3.0, co2e_kg=0.1, metrics={"accuracy": 0.92, "macs": 1e9}),
        make_record("d4", "d", energy_kwh=0.5, co2e_kg=0.1, metrics={}),
    ]
    energy = pareto_front(runs, cost="energy")
    assert energy.on_front == [0, 1] and energy.dominated == [2] and energy.missing == [3]
    flops = pareto_front(runs, cost="flops")
    # c: 2e9 FLOPs from macs, cheaper than a's 4e9 and more accurate: a is dominated
    assert flops.on_front == [2] and flops.dominated == [0] and flops.missing == [1, 3]
    loss = pareto_front(runs, metric="accuracy", cost="energy", maximize=False)
    assert loss.on_front == [0]


def test_front_neighbours_with_overlapping_ranges_are_named() -> None:
    from wattprint.report.pareto import front_overlaps

    def run(run_id: str, name: str, kwh: float, accuracy: float, low: float, high: float):
        rec = make_record(run_id, name, energy_kwh=kwh, co2e_kg=(low + high) / 2, metrics={"accuracy": accuracy})
        rec.co2e_kg_range = {"low": low, "high": high}
        return rec

    runs = [
        run("a1", "a", 1.0, 0.90, 0.40, 0.60),
        run("b2", "b", 1.1, 0.92, 0.55, 0.70),
        run("c3", "c", 3.0, 0.95, 1.5, 2.0),
    ]
    front = pareto_front(runs, cost="energy").on_front
    assert front == [0, 1, 2]
    [note] = front_overlaps(runs, front)
    assert note.startswith("On the energy front, a and b: their CO2e ranges overlap")  # b and c do not
    runs[1].co2e_kg_range = {"low": 0.65, "high": 0.70}
    assert front_overlaps(runs, front) == []
