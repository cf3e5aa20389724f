"""Predict a whole training run's energy, duration and carbon from its first epochs.

Method: epochs are treated as independent draws of the same per-epoch cost. With k observed epochs
(mean m, sample standard deviation s) and r = n - k epochs left, the prediction is

    total = observed + r x m,   half-width = t(1 - a/2, k - 1) x s x sqrt(r^2 / k + r)

a prediction interval for the sum of the r future epochs (r^2/k: error of the mean carried over r
epochs; r: the epochs' own scatter). Unlike carbontracker, which multiplies the first epoch by the
epoch count and gives no interval, this states how sure it is, can skip warm-up epochs
(`warmup_epochs`: counted in the total, left out of the mean), and never predicts less than what
has already been used. Two documented assumptions:

- one epoch (k = 1): there is no scatter to measure, so the interval is +-50% of the remaining
  epochs' prediction (assumption: first epochs often differ by that much, through warm-up,
  compilation and caches);
- a floor of +-5% of the remaining prediction, since identical epochs (s = 0) still vary a little.

CO2e = energy x PUE x intensity, at a constant intensity; grid-intensity uncertainty is separate
(`wattprint.accounting.uncertainty`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from wattprint.errors import WattprintInputError

ONE_EPOCH_BAND = 0.50
FLOOR_BAND = 0.05


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for num in (even, odd):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Cumulative distribution of Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t (bisection on `t_cdf`); t_quantile(0.975, 1) = 12.706."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise WattprintInputError("confidence", f"got p={p!r}, df={df!r}; expected 0 < p < 1 and df > 0")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2.0


@dataclass(frozen=True)
class Estimate:
    """A predicted quantity: central value and interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class RunPrediction:
    """Predicted totals of a whole run after `epochs_done` of `epochs_total` epochs."""

    epochs_done: int
    epochs_total: int
    energy_kwh: Estimate
    duration_s: Estimate
    co2e_kg: Estimate
    confidence: float
    method: str


def predict_total(observed: Sequence[float], remaining: int, confidence: float = 0.95) -> Estimate:
    """Total of `observed` per-epoch values plus `remaining` future epochs, with its interval."""
    done = sum(observed)
    k = len(observed)
    if k == 0:
        raise WattprintInputError("epochs", "needs at least one observed epoch")
    mean = done / k
    future = remaining * mean
    if k == 1:
        half = ONE_EPOCH_BAND * future
    else:
        sd = math.sqrt(sum((x - mean) ** 2 for x in observed) / (k - 1))
        half = t_quantile(0.5 + confidence / 2.0, k - 1) * sd * math.sqrt(remaining**2 / k + remaining)
    half = max(half, FLOOR_BAND * future)
    return Estimate(done + future, max(done, done + future - half), done + future + half)


def predict_run(
    epochs: Sequence[tuple[float, float]],
    total_epochs: int,
    intensity_g_per_kwh: float,
    pue: float = 1.0,
    confidence: float = 0.95,
    warmup_epochs: int = 0,
) -> RunPrediction:
    """Whole-run energy, duration and CO2e from the first epochs' (duration_s, energy_kwh).

    `warmup_epochs` first epochs count in the totals but not in the per-epoch statistics (kept
    when fewer than two epochs would remain).
    """
    k = len(epochs)
    if k == 0:
        raise WattprintInputError("epochs", "needs at least one finished epoch")
    if isinstance(total_epochs, bool) or not isinstance(total_epochs, int) or total_epochs < k:
        raise WattprintInputError("total_epochs", f"got {total_epochs!r}; expected an integer >= {k} (epochs done)")
    for name, value, minimum in (("intensity_g_per_kwh", intensity_g_per_kwh, 0.0), ("pue", pue, 1.0)):
        if not math.isfinite(value) or value < minimum:
            raise WattprintInputError(name, f"got {value!r}; expected a finite number >= {minimum:g}")
    if not 0.0 < confidence < 1.0:
        raise WattprintInputError("confidence", f"got {confidence!r}; expected a number between 0 and 1")
    for i, (duration_s, energy_kwh) in enumerate(epochs):
        if not (math.isfinite(duration_s) and math.isfinite(energy_kwh)) or duration_s < 0 or energy_kwh < 0:
            raise WattprintInputError(
                "epochs", f"epoch {i + 1}: got ({duration_s!r}, {energy_kwh!r}); expected finite >= 0"
            )
    skip = warmup_epochs if 0 <= warmup_epochs <= k - 2 else 0
    remaining = total_epochs - k

    def total(values: list[float]) -> Estimate:
        stats = predict_total(values[skip:], remaining, confidence)
        head = sum(values[:skip])
        return Estimate(stats.value + head, stats.low + head, stats.high + head)

    energy = total([e for _, e in epochs])
    duration = total([d for d, _ in epochs])
    factor = pue * intensity_g_per_kwh / 1000.0
    co2e = Estimate(energy.value * factor, energy.low * factor, energy.high * factor)
    used = k - skip
    how = "t-interval" if used > 1 else "+-50% (one epoch)"
    method = f"mean of {used} epoch(s) x {total_epochs} epochs, {confidence:.0%} {how}"
    return RunPrediction(k, total_epochs, energy, duration, co2e, confidence, method)


def _fmt(value: float) -> str:
    """Two significant figures, no exponent: 1.2, 0.50, 1,300."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, 1 - math.floor(math.log10(abs(value))))
    return f"{round(value, decimals):,.{decimals}f}"


def _scaled(est: Estimate, unit: str, small_unit: str, threshold: float) -> tuple[Estimate, str]:
    if est.value >= threshold:
        return est, unit
    return Estimate(est.value * 1000, est.low * 1000, est.high * 1000), small_unit


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{_fmt(seconds / 3600)} h"
    if seconds >= 60:
        return f"{_fmt(seconds / 60)} min"
    return f"{_fmt(seconds)} s"


def progress_line(prediction: RunPrediction) -> str:
    """e.g. 'epoch 2/50: predicted total 1.2 kWh (1.0-1.4), 0.50 kgCO2e (0.40-0.60), 3.1 h'."""
    energy, e_unit = _scaled(prediction.energy_kwh, "kWh", "Wh", 0.1)
    co2e, c_unit = _scaled(prediction.co2e_kg, "kgCO2e", "gCO2e", 0.1)
    return (
        f"epoch {prediction.epochs_done}/{prediction.epochs_total}: predicted total "
        f"{_fmt(energy.value)} {e_unit} ({_fmt(energy.low)}-{_fmt(energy.high)}), "
        f"{_fmt(co2e.value)} {c_unit} ({_fmt(co2e.low)}-{_fmt(co2e.high)}), "
        f"{_duration(prediction.duration_s.value)}"
    )
