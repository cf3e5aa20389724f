"""Comparisons that beat the noise: alternating windows, ratios with their range, verdicts, and the best called only
on a measurable difference. Real models on a real meter; the verdict rule on its own with given rounds."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from wattprint.optimize.harness import EnergyMeter, aa_control, measure  # noqa: E402
from wattprint.optimize.paired import LOWER, MIN_EFFECT, SAME, Ratio, control_floor, with_floors  # noqa: E402
from wattprint.optimize.search import choose_best  # noqa: E402


@pytest.mark.parametrize(
    ("rounds", "verdict"),
    [
        ([0.50, 0.52, 0.48], LOWER),
        ([1.20, 1.22, 1.19], "higher"),
        ([0.97, 1.02, 0.99], SAME),  # the rounds straddle 1
        ([0.90, 0.91, 0.92], SAME),  # steady, but within the 15 % floor: a copy of a model can differ this much
        ([0.55, 0.80, 0.98], SAME),  # all below 1, but the median is closer to 1 than half the range
        ([0.80, 0.83, 0.78, 0.81, 0.82], LOWER),
        ([0.50, 0.52], SAME),  # fewer than 3 rounds: no verdict
    ],
)
def test_a_difference_is_called_only_beyond_the_spread_and_the_floor(rounds: list[float], verdict: str) -> None:
    assert MIN_EFFECT == 0.15
    assert Ratio.of(rounds).verdict == verdict


def test_the_floor_rises_to_the_controls_worst_round() -> None:
    control = {"ratios": {f: {"rounds": [0.97, 1.22, 1.05]} for f in ("energy", "latency", "cpu_time")}}
    floors = control_floor(control)
    assert floors["energy"] == pytest.approx(0.22)
    assert Ratio.of([0.80, 0.81, 0.79], floor=floors["energy"]).verdict == SAME  # 20 % is inside this machine's noise
    assert Ratio.of([0.70, 0.72, 0.69]).verdict == LOWER
    calm = {"ratios": {f: {"rounds": [0.99, 1.01, 1.0]} for f in ("energy", "latency", "cpu_time")}}
    assert control_floor(calm, min_effect=0.05)["energy"] == 0.05


def _mlp(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


def _measured(model: nn.Module, baseline: nn.Module, meter: EnergyMeter, recipe: str) -> dict:
    x = torch.randn(64, 256)
    result = measure(
        model,
        lambda m: 1.0,
        x,
        recipe=recipe,
        repeats=3,
        energy_min_s=0.25,
        meter=meter,
        baseline_model=baseline,
        paired_rounds=5,
    )
    return result.to_dict()


@pytest.fixture(scope="module")
def meter():
    m = EnergyMeter(interval_s=0.1)
    yield m
    m.close()


def test_two_identical_candidates_are_a_tie_and_the_baseline_stays_best(meter: EnergyMeter) -> None:
    torch.set_num_threads(1)
    baseline = _mlp(512)
    x = torch.randn(64, 256)
    base = measure(baseline, lambda m: 1.0, x, repeats=3, energy_min_s=0.25, meter=meter).to_dict()
    control = aa_control(baseline, x, batch_size=64, meter=meter, rounds=5, window_s=0.25)
    floors = control_floor(control)
    a = _measured(copy.deepcopy(baseline), baseline, meter, "copy-a")
    b = _measured(copy.deepcopy(baseline), baseline, meter, "copy-b")
    for c in (a, b):
        c["paired"] = with_floors(c["paired"], floors)
        energy = c["paired"]["ratios"]["energy"]
        assert len(energy["rounds"]) == 5 and energy["low"] <= energy["median"] <= energy["high"]
        assert energy["verdict"] == SAME, energy  # the same model: never a winner
        assert c["paired"]["ratios"]["cpu_time"]["verdict"] == SAME
    best, notes = choose_best(base, [base, a, b], "energy")
    assert best is base and "no candidate's energy is measurably below the baseline's" in notes[-1]


def test_a_really_cheaper_candidate_is_called_lower_and_chosen(meter: EnergyMeter) -> None:
    torch.set_num_threads(1)
    baseline, small = _mlp(1024), _mlp(128)  # about 1/20 of the multiply-adds
    x = torch.randn(64, 256)
    base = measure(baseline, lambda m: 1.0, x, repeats=3, energy_min_s=0.25, meter=meter).to_dict()
    cheap = _measured(small, baseline, meter, "small")
    same = _measured(copy.deepcopy(baseline), baseline, meter, "copy")
    ratios = cheap["paired"]["ratios"]
    assert ratios["energy"]["verdict"] == ratios["latency"]["verdict"] == ratios["cpu_time"]["verdict"] == LOWER
    assert ratios["energy"]["high"] < 0.5  # every round, not only the median
    best, notes = choose_best(base, [base, cheap, same], "energy")
    assert best is cheap and notes == []


def _candidate(recipe: str, median: float, low: float, high: float, macs: int, cpu: float) -> dict:
    def ratio(m: float, lo: float, hi: float) -> dict:
        return {"median": m, "low": lo, "high": hi, "rounds": [lo, m, hi], "verdict": Ratio.of([lo, m, hi]).verdict}

    paired = {
        "ratios": {
            "energy": ratio(median, low, high),
            "latency": ratio(median, low, high),
            "cpu_time": ratio(cpu, cpu, cpu),
        }
    }
    return {
        "recipe": recipe,
        "macs": macs,
        "macs_nonzero": macs,
        "energy_per_inference_j": median,
        "latency_ms": 1.0,
        "paired": paired,
    }


def test_candidates_within_each_others_noise_are_ranked_by_macs_then_cpu_time() -> None:
    base = {"recipe": "baseline", "macs": 100, "macs_nonzero": 100, "energy_per_inference_j": 1.0, "latency_ms": 1.0}
    a = _candidate("a", 0.50, 0.45, 0.60, macs=40, cpu=0.5)  # the lowest median ...
    b = _candidate("b", 0.55, 0.50, 0.58, macs=30, cpu=0.6)  # ... but b's range overlaps it, with fewer MACs
    c = _candidate("c", 0.80, 0.78, 0.82, macs=10, cpu=0.8)  # clearly above both: not in the tie
    best, notes = choose_best(base, [base, a, b, c], "energy")
    assert best is b and notes == [
        "a, b: energy ranges overlap, no measurable difference between them; ranked by nonzero MACs, then CPU time"
    ]
    best, notes = choose_best(base, [base, a, c], "energy")
    assert best is a and notes == []
    assert choose_best(base, [base, a, b, c], "macs")[0] is c  # counted figures need no verdict
