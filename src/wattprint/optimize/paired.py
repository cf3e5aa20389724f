"""A candidate against its baseline in alternating windows, so that a difference is called only when it beats the noise.

One energy window per model, minutes apart, compares the machine's moods as much as the models: on a shared
machine a 10 % swing between two windows of the same model is common. Here both models run in turn, round after
round (baseline then candidate, then the other way round, so that a drift favours neither), each window long
enough for the sampler, and each round gives one ratio per figure. The median ratio is reported with its range over
the rounds, and a difference is called only when every round agrees on its sign and the median is further from 1
than both half the range and `MIN_EFFECT`; otherwise the verdict is "no measurable difference".
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wattprint.optimize.harness import EnergyMeter

MIN_EFFECT = 0.03  # a median ratio within 3 % of 1 is not called a difference, however steady
LOWER, HIGHER, SAME = "lower", "higher", "no measurable difference"


@dataclass(frozen=True)
class Ratio:
    """Candidate / baseline over paired rounds: the median, the range and each round's value."""

    median: float
    low: float
    high: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: list[float]) -> Ratio:
        return cls(statistics.median(values), min(values), max(values), tuple(values))

    @property
    def verdict(self) -> str:
        """ "lower" or "higher" when every round agrees and the median clears the noise, else no difference."""
        away = abs(self.median - 1.0)
        if away <= max(MIN_EFFECT, (self.high - self.low) / 2):
            return SAME
        if self.high < 1.0:
            return LOWER
        if self.low > 1.0:
            return HIGHER
        return SAME

    def overlaps(self, other: Ratio) -> bool:
        return self.low <= other.high and other.low <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "low": self.low,
            "high": self.high,
            "rounds": list(self.values),
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Window:
    """One timed, metered window of one model: per inference joules, wall seconds and process CPU seconds."""

    energy_j: float
    wall_s: float
    cpu_s: float
    inferences: int


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
    cpu = time.process_time() - cpu0
    return Window(joules / count, spent["wall"] / count, cpu / count, count)


def paired_rounds(
    meter: EnergyMeter,
    baseline: Callable[[], int],
    candidate: Callable[[], int],
    *,
    rounds: int = 3,
    window_s: float = 1.0,
) -> dict[str, Any]:
    """Alternate `baseline` and `candidate` (each one batch, returning its inferences) in `rounds` pairs of windows of
    at least `window_s`; the energy, latency and CPU-time ratios with their ranges and verdicts, and both models'
    median per-inference figures."""
    base: list[Window] = []
    cand: list[Window] = []
    for i in range(rounds):
        order = ((base, baseline), (cand, candidate)) if i % 2 == 0 else ((cand, candidate), (base, baseline))
        for into, step in order:
            into.append(_window(meter, step, window_s))
    ratios = {
        "energy": Ratio.of(
            [c.energy_j / b.energy_j for b, c in zip(base, cand, strict=True) if b.energy_j > 0] or [float("nan")]
        ),
        "latency": Ratio.of([c.wall_s / b.wall_s for b, c in zip(base, cand, strict=True)]),
        "cpu_time": Ratio.of(
            [c.cpu_s / b.cpu_s for b, c in zip(base, cand, strict=True) if b.cpu_s > 0] or [float("nan")]
        ),
    }
    return {
        "rounds": rounds,
        "window_s": window_s,
        "ratios": {k: r.to_dict() for k, r in ratios.items()},
        "candidate": _medians(cand),
        "baseline": _medians(base),
        "candidate_inferences": sum(w.inferences for w in cand),
    }


def _medians(windows: list[Window]) -> dict[str, float]:
    return {
        "energy_per_inference_j": statistics.median(w.energy_j for w in windows),
        "latency_per_inference_ms": statistics.median(w.wall_s for w in windows) * 1000.0,
        "cpu_per_inference_ms": statistics.median(w.cpu_s for w in windows) * 1000.0,
    }
