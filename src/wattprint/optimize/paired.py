"""A candidate against its baseline in alternating windows, so that a difference is called only when it beats the noise.

One energy window per model, minutes apart, compares the machine's moods as much as the models: on a shared
machine a 10 % swing between two windows of the same model is common. Here both models run in turn, round after
round, each round in the order baseline, candidate, candidate, baseline (a drift within the round favours neither),
and each round gives one ratio per figure. The median ratio is reported with its range over the rounds.

Even the same model is not the same twice: a copy of it at other memory addresses ran up to 10 % faster or slower
than the original, steadily, on this project's 2-core VMs (12 trials of 5 rounds: medians 0.91-1.05). So a
difference is called only when every round agrees on its sign and the median is further from 1 than half the range
and than a floor: `MIN_EFFECT` (15 %), raised to the worst round of an A/A control (the baseline against a copy of
itself, `paired_rounds` on the two) where that is larger. Otherwise the verdict is "no measurable difference".
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wattprint.optimize.harness import EnergyMeter

MIN_EFFECT = 0.15  # a median ratio within 15 % of 1 is not called a difference, however steady (see above)
MIN_ROUNDS = 3  # fewer rounds give no verdict
LOWER, HIGHER, SAME = "lower", "higher", "no measurable difference"
FIGURES = ("energy", "latency", "cpu_time")


@dataclass(frozen=True)
class Ratio:
    """Candidate / baseline over paired rounds: the median, the range, each round's value, and the floor below which
    a difference is not called."""

    median: float
    low: float
    high: float
    values: tuple[float, ...]
    floor: float = MIN_EFFECT

    @classmethod
    def of(cls, values: list[float], floor: float = MIN_EFFECT) -> Ratio:
        finite = [v for v in values if math.isfinite(v)]
        if not finite:  # no round could be measured (no energy, no CPU time): nothing to say
            return cls(math.nan, math.nan, math.nan, (), floor)
        return cls(statistics.median(finite), min(finite), max(finite), tuple(finite), floor)

    @property
    def verdict(self) -> str:
        """ "lower" or "higher" when every round agrees and the median clears half the range and the floor."""
        if len(self.values) < MIN_ROUNDS or not math.isfinite(self.median):
            return SAME
        if abs(self.median - 1.0) <= max(self.floor, (self.high - self.low) / 2):
            return SAME
        if self.high < 1.0:
            return LOWER
        if self.low > 1.0:
            return HIGHER
        return SAME

    def overlaps(self, other: Ratio) -> bool:
        return self.low <= other.high and other.low <= self.high

    def to_dict(self) -> dict[str, Any]:
        finite = math.isfinite(self.median)  # JSON has no NaN: None where nothing was measured
        return {
            "median": self.median if finite else None,
            "low": self.low if finite else None,
            "high": self.high if finite else None,
            "rounds": list(self.values),
            "floor": self.floor,
            "verdict": self.verdict,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ratio | None:
        if d.get("median") is None:
            return None
        return cls(d["median"], d["low"], d["high"], tuple(d["rounds"]), d.get("floor", MIN_EFFECT))


def control_floor(control: dict[str, Any], min_effect: float = MIN_EFFECT) -> dict[str, float]:
    """Per figure, the floor a difference must clear: `min_effect`, or the A/A control's worst round where larger."""
    floors = {}
    for figure in FIGURES:
        rounds = [v for v in control["ratios"][figure]["rounds"] if math.isfinite(v)]
        floors[figure] = max([min_effect, *(abs(v - 1.0) for v in rounds)])
    return floors


def with_floors(paired: dict[str, Any], floors: dict[str, float]) -> dict[str, Any]:
    """`paired` (see `paired_rounds`) with each figure's verdict taken again against `floors`."""
    ratios = {}
    for figure, d in paired["ratios"].items():
        r = Ratio.from_dict(d)
        ratios[figure] = Ratio(r.median, r.low, r.high, r.values, floors[figure]).to_dict() if r else d
    return {**paired, "ratios": ratios}


@dataclass(frozen=True)
class Window:
    """One timed, metered window of one model: joules, wall seconds, process CPU seconds and inferences."""

    energy_j: float
    wall_s: float
    cpu_s: float
    inferences: int

    def __add__(self, other: Window) -> Window:
        return Window(
            self.energy_j + other.energy_j,
            self.wall_s + other.wall_s,
            self.cpu_s + other.cpu_s,
            self.inferences + other.inferences,
        )

    def per_inference(self, field: str) -> float:
        return float(getattr(self, field)) / self.inferences


def _window(meter: EnergyMeter, step: Callable[[], int], min_s: float) -> Window:
    """Run `step` (one batch; returns its inferences) for at least `min_s` and at least one batch, metered."""
    cpu0 = time.process_time()
    spent: dict[str, float] = {}

    def run() -> int:
        count, t0 = 0, time.perf_counter()
        while count == 0 or time.perf_counter() - t0 < min_s:
            count += step()
        spent["wall"] = time.perf_counter() - t0
        return count

    joules, _seconds, count = meter.window(run)
    return Window(joules, spent["wall"], time.process_time() - cpu0, count)


def paired_rounds(
    meter: EnergyMeter,
    baseline: Callable[[], int],
    candidate: Callable[[], int],
    *,
    rounds: int = 3,
    window_s: float = 1.0,
) -> dict[str, Any]:
    """`rounds` rounds of baseline, candidate, candidate, baseline windows (`baseline` and `candidate` each run one
    batch and return its inferences), each model running `window_s` per round; the energy, latency and CPU-time
    ratios with their ranges and verdicts, and both models' median per-inference figures."""
    base: list[Window] = []
    cand: list[Window] = []
    half = window_s / 2
    for _ in range(rounds):
        b1 = _window(meter, baseline, half)
        c = _window(meter, candidate, half) + _window(meter, candidate, half)
        base.append(b1 + _window(meter, baseline, half))
        cand.append(c)

    def ratios(field: str) -> Ratio:
        values = []
        for b, c in zip(base, cand, strict=True):
            denominator = b.per_inference(field)
            values.append(c.per_inference(field) / denominator if denominator > 0 else math.nan)
        return Ratio.of(values)

    return {
        "rounds": rounds,
        "window_s": window_s,
        "ratios": {
            "energy": ratios("energy_j").to_dict(),
            "latency": ratios("wall_s").to_dict(),
            "cpu_time": ratios("cpu_s").to_dict(),
        },
        "candidate": _medians(cand),
        "baseline": _medians(base),
        "candidate_inferences": sum(w.inferences for w in cand),
        "candidate_seconds": sum(w.wall_s for w in cand),
    }


def _medians(windows: list[Window]) -> dict[str, float]:
    return {
        "energy_per_inference_j": statistics.median(w.per_inference("energy_j") for w in windows),
        "latency_per_inference_ms": statistics.median(w.per_inference("wall_s") for w in windows) * 1000.0,
        "cpu_per_inference_ms": statistics.median(w.per_inference("cpu_s") for w in windows) * 1000.0,
    }
