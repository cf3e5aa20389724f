"""Batch-size optimizer: the batch size that reaches a target metric at the lowest energy-time cost.

The cost of a training run is Zeus's (You, Chung and Chowdhury, NSDI'23):

    cost = eta x energy-to-target + (1 - eta) x MAXPOWER x time-to-target

`eta` in [0, 1] weighs energy (1) against time (0); MAXPOWER (`max_power_w`) prices a second at the power of
the hardware running flat out. By default it is the CPU's TDP times its sockets plus the GPUs' enforced power
limits, as wattprint's sources see them, fixed on the first run and kept in the state so runs stay comparable.
Energy is what wattprint's EnergyMonitor charges to this process tree over the run, measured by a counter or
estimated by the CPU/RAM model: `energy_method` says which, on every run.

Training is the user's: a function ``fit(batch_size, should_stop) -> bool`` that trains a fresh model at that
batch size and returns whether it reached the target. It calls ``should_stop()`` between epochs (or every
few steps), which takes a fresh energy reading and answers True once the run's cost so far exceeds `beta`
times the best cost to target seen (Zeus's early stop, beta = 2): such a run cannot beat the best (its cost
only grows), so fit should return False at once. `epoch_fit` builds a fit from a per-epoch function.

    opt = BatchSizeOptimizer([16, 32, 64, 128], eta=0.5, seed=0)
    result = opt.explore(epoch_fit(start, target=0.97, max_epochs=50))   # every size once, with early stop
    result.best_batch_size, result.total_cost                             # exploration's full price included
    opt.run(fit)                                                          # a recurring job: Thompson sampling
    opt.save("bs.json"); opt = BatchSizeOptimizer.load("bs.json")         # the next job continues from here

Exploration tries every candidate once, the `default_batch_size` first (where given) and the others in an
order shuffled by `seed`. A run stopped early keeps its cost in every total: early stop saves the cost it
did not spend, never hides the cost it did. After exploration each run picks a batch size by Gaussian
Thompson sampling over the sizes that reached the target (as Zeus does for recurring jobs): for each, one
draw from a normal distribution around the mean of its costs with the standard error of that mean, then the
lowest draw. The spread of one run's cost is pooled over the sizes run more than once, but never taken below
MIN_CV of the size's mean: a few runs in a quiet spell must not make the sampler sure that a size measured once
in a busy one is worse (without the floor it would never try that size again). Draws are
seeded by `seed` and the number of runs so far, so a saved state gives the same choice again.

Everything is kept in a JSON-ready state (`to_dict`, `save`, `load`): recurring jobs go on from it.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wattprint.errors import WattprintInputError
from wattprint.optimize.harness import EnergyMeter

STATE_VERSION = 1
DEFAULT_BETA = 2.0  # Zeus's early-stop factor
MIN_CV = 0.1  # least spread of one run's cost assumed by Thompson sampling, as a fraction of the mean


def energy_time_cost(energy_j: float, time_s: float, eta: float, max_power_w: float) -> float:
    """Zeus's energy-time cost: ``eta * energy_j + (1 - eta) * max_power_w * time_s`` (joules)."""
    return eta * energy_j + (1.0 - eta) * max_power_w * time_s


class Meter(Protocol):
    """What the optimizer measures with: cumulative seconds and joules, the method, a default MAXPOWER."""

    @property
    def method(self) -> str:
        """How the joules are obtained: "measured", "estimated" or "mixed"."""
        ...

    def read(self) -> tuple[float, float]:
        """(seconds, joules) now, both cumulative from any fixed origin (a monotonic clock, a counter)."""
        ...

    def max_power_w(self) -> float:
        """The power at which a second of time is priced when `max_power_w` is not given."""
        ...

    def close(self) -> None: ...


class MonitorMeter(EnergyMeter):
    """wattprint's EnergyMonitor on this process tree (the sources detect_sources picks), with the monotonic clock."""

    def read(self) -> tuple[float, float]:
        return time.monotonic(), self.monitor.attributed_total_j()

    def max_power_w(self) -> float:
        """The CPU's TDP x sockets (as the CPU model knows them) plus each GPU's enforced power limit."""
        from wattprint.measure.cpu_model import CpuModelSource, cpu_info

        models = [s for s in self.choice.sources if isinstance(s, CpuModelSource)]
        if models:  # the TDP the model uses (a WATTPRINT_CPU_TDP_W setting included)
            cpu_w = models[0].max_power_w
        else:
            info = cpu_info()
            cpu_w = info.tdp_w * info.sockets
        gpu_w = sum(g.get("power_limit_w") or 0.0 for g in self.choice.hardware.get("gpus", []))
        return float(cpu_w) + float(gpu_w)


@dataclass
class BatchSizeRun:
    """One training run at one batch size: what it cost, whether it reached the target, whether it was stopped."""

    batch_size: int
    energy_j: float
    time_s: float
    cost: float
    reached: bool
    stopped_early: bool = False
    threshold: float | None = None  # the cost at which it would have been stopped (None: no run to beat yet)
    phase: str = "explore"  # "explore" | "exploit"
    energy_method: str = "unknown"
    info: dict[str, Any] = field(default_factory=dict)  # what fit put in should_stop.info (epochs, metric)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchSizeResult:
    """The state of the optimizer after exploration (or any run): the best size and the full price paid."""

    best_batch_size: int | None
    best_cost: float | None  # mean cost to target of the best size
    runs: list[BatchSizeRun]
    total_cost: float  # every run's cost, stopped and failed runs included
    total_energy_j: float
    total_time_s: float
    stopped: list[int]  # batch sizes stopped early at least once
    failed: list[int]  # batch sizes that never reached the target
    eta: float
    beta: float
    max_power_w: float | None
    energy_method: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["runs"] = [r.to_dict() for r in self.runs]
        return d


class RunControl:
    """The `should_stop` handed to fit: call it between epochs or steps; True means stop now (return False).

    Each call takes a fresh energy reading (about a millisecond with the monitor): once per epoch is plenty.
    `info` is a dict fit may fill (epochs, metric); it is kept on the run."""

    def __init__(self, optimizer: BatchSizeOptimizer, threshold: float | None, start: tuple[float, float]) -> None:
        self._optimizer = optimizer
        self.threshold = threshold
        self.start = start  # (seconds, joules) on the meter when the run began
        self.stopped = False
        self.info: dict[str, Any] = {}

    def cost_so_far(self) -> float:
        t, e = self._optimizer.meter.read()
        return self._optimizer.cost(e - self.start[1], t - self.start[0])

    def __call__(self) -> bool:
        if self.stopped:
            return True
        if self.threshold is not None and self.cost_so_far() > self.threshold:
            self.stopped = True
        return self.stopped


FitFn = Callable[[int, RunControl], bool]


def epoch_fit(
    start: Callable[[int], Callable[[], float]],
    target: float,
    *,
    max_epochs: int,
    higher_is_better: bool = True,
) -> FitFn:
    """A fit from epochs: ``start(batch_size)`` builds a fresh model, optimizer and data order and returns
    ``train_epoch() -> metric`` (one epoch of training, then the validation metric). The run reaches the target
    when the metric gets to `target` (at or above it; at or below with ``higher_is_better=False``); it fails
    after `max_epochs` epochs without, and stops when should_stop says so after an epoch."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target):
        raise WattprintInputError("target", f"{target!r}; accepted: a finite number, in the metric's units")
    if not isinstance(max_epochs, int) or isinstance(max_epochs, bool) or max_epochs < 1:
        raise WattprintInputError("max_epochs", f"{max_epochs!r}; accepted: an integer >= 1")

    def fit(batch_size: int, should_stop: RunControl) -> bool:
        train_epoch = start(batch_size)
        for epoch in range(1, max_epochs + 1):
            metric = float(train_epoch())
            should_stop.info.update(epochs=epoch, metric=metric)
            if (metric >= target) if higher_is_better else (metric <= target):
                return True
            if should_stop():
                return False
        return False

    return fit


def _check_batch_sizes(batch_sizes: Any) -> list[int]:
    sizes = list(batch_sizes) if isinstance(batch_sizes, (list, tuple)) else None
    if (
        not sizes
        or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in sizes)
        or len(set(sizes)) != len(sizes)
    ):
        raise WattprintInputError("batch_sizes", f"{batch_sizes!r}; accepted: a list of distinct integers >= 1")
    return sizes


def _check_number(name: str, value: Any, low: float, high: float = math.inf, accepted: str = "") -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise WattprintInputError(name, f"{value!r}; accepted: {accepted}")
    return float(value)


class BatchSizeOptimizer:
    """Explores candidate batch sizes with early stop, then exploits the cheapest by Thompson sampling.

    Args:
        batch_sizes: the candidates, distinct integers >= 1.
        eta: weight of energy against time in the cost, in [0, 1].
        beta: a run stops once its cost exceeds beta x the best cost to target so far (>= 1; Zeus uses 2).
        max_power_w: MAXPOWER of the cost, in watts (default: from the meter on the first run, then kept).
        default_batch_size: explored first (the size the job used so far gives early stop a bar at once).
        seed: seeds the exploration order and the Thompson draws.
        meter: what measures (default: a MonitorMeter, started on the first run and closed by `close`).
    """

    def __init__(
        self,
        batch_sizes: Sequence[int],
        *,
        eta: float = 0.5,
        beta: float = DEFAULT_BETA,
        max_power_w: float | None = None,
        default_batch_size: int | None = None,
        seed: int = 0,
        meter: Meter | None = None,
    ) -> None:
        self.batch_sizes = _check_batch_sizes(batch_sizes)
        self.eta = _check_number("eta", eta, 0.0, 1.0, "a number in [0, 1] (1: energy only, 0: time only)")
        self.beta = _check_number("beta", beta, 1.0, accepted="a finite number >= 1 (Zeus uses 2)")
        self.max_power_w: float | None = None
        if max_power_w is not None:
            self.max_power_w = _check_number("max_power_w", max_power_w, 0.0, accepted="watts > 0")
            if self.max_power_w <= 0:
                raise WattprintInputError("max_power_w", f"{max_power_w!r}; accepted: watts > 0")
        if default_batch_size is not None and default_batch_size not in self.batch_sizes:
            raise WattprintInputError(
                "default_batch_size", f"{default_batch_size!r}; accepted: one of batch_sizes {self.batch_sizes}"
            )
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise WattprintInputError("seed", f"{seed!r}; accepted: an integer")
        self.default_batch_size = default_batch_size
        self.seed = seed
        rest = [b for b in self.batch_sizes if b != default_batch_size]
        random.Random(seed).shuffle(rest)
        self.order: list[int] = ([default_batch_size] if default_batch_size is not None else []) + rest
        self.runs: list[BatchSizeRun] = []
        self._meter: Meter | None = meter
        self._owns_meter = False

    # -- measuring -------------------------------------------------------------------------------
    @property
    def meter(self) -> Meter:
        """The meter, started now if none was given."""
        if self._meter is None:
            self._meter = MonitorMeter()
            self._owns_meter = True
        return self._meter

    def close(self) -> None:
        """Close the meter this optimizer started (one that was passed in stays open)."""
        if self._owns_meter and self._meter is not None:
            self._meter.close()
            self._meter = None
            self._owns_meter = False

    def __enter__(self) -> BatchSizeOptimizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cost(self, energy_j: float, time_s: float) -> float:
        """The energy-time cost of `energy_j` joules over `time_s` seconds, with this optimizer's eta and MAXPOWER."""
        if self.max_power_w is None:  # fixed once, from the meter, and kept in the state
            if self._meter is None:
                raise WattprintInputError(
                    "max_power_w", "missing: runs observed without a meter need it; accepted: watts > 0"
                )
            self.max_power_w = float(self._meter.max_power_w())
        return energy_time_cost(energy_j, time_s, self.eta, self.max_power_w)

    # -- choosing ----------------------------------------------------------------------------------
    def unexplored(self) -> list[int]:
        """Candidates never run yet, in exploration order."""
        tried = {r.batch_size for r in self.runs}
        return [b for b in self.order if b not in tried]

    def converged(self) -> list[int]:
        """Candidates with at least one run that reached the target, in the candidates' order."""
        reached = {r.batch_size for r in self.runs if r.reached}
        return [b for b in self.batch_sizes if b in reached]

    def mean_costs(self) -> dict[int, float]:
        """Mean cost of every run of each converged size (runs stopped later count at the cost they stopped at)."""
        return {b: statistics.fmean(r.cost for r in self.runs if r.batch_size == b) for b in self.converged()}

    @property
    def best_batch_size(self) -> int | None:
        """The converged size with the lowest mean cost (the smaller size on a tie); None before any converged."""
        means = self.mean_costs()
        return min(means, key=lambda b: (means[b], b)) if means else None

    def threshold(self) -> float | None:
        """The cost above which a run is stopped: beta x the lowest cost to target so far (None: none yet)."""
        reached = [r.cost for r in self.runs if r.reached]
        return self.beta * min(reached) if reached else None

    def next_batch_size(self) -> int:
        """The next candidate to explore; once all are explored, a Thompson draw over the converged ones."""
        todo = self.unexplored()
        if todo:
            return todo[0]
        arms = self.converged()
        if not arms:
            raise WattprintInputError(
                "fit",
                f"no batch size of {self.batch_sizes} reached the target; accepted: a target the runs can reach "
                "(lower it, or allow more epochs)",
            )
        costs = {b: [r.cost for r in self.runs if r.batch_size == b] for b in arms}
        pooled = self._pooled_sd(costs)
        rng = random.Random(self.seed * 1_000_003 + len(self.runs))
        draws = {}
        for b in arms:
            mean = statistics.fmean(costs[b])
            sd = max(pooled or 0.0, MIN_CV * abs(mean))
            draws[b] = rng.gauss(mean, sd / math.sqrt(len(costs[b])))
        return min(draws, key=lambda b: (draws[b], b))

    @staticmethod
    def _pooled_sd(costs: dict[int, list[float]]) -> float | None:
        """Standard deviation of one run's cost, pooled over the sizes run more than once (None if none was)."""
        squares = sum(sum((c - statistics.fmean(cs)) ** 2 for c in cs) for cs in costs.values() if len(cs) > 1)
        dof = sum(len(cs) - 1 for cs in costs.values() if len(cs) > 1)
        return math.sqrt(squares / dof) if dof else None

    # -- running -----------------------------------------------------------------------------------
    def observe(
        self,
        batch_size: int,
        energy_j: float,
        time_s: float,
        reached: bool,
        *,
        stopped_early: bool = False,
        energy_method: str = "unknown",
        info: dict[str, Any] | None = None,
    ) -> BatchSizeRun:
        """Record a run measured elsewhere (a job in another process, with its own tracker)."""
        if batch_size not in self.batch_sizes:
            raise WattprintInputError("batch_size", f"{batch_size!r}; accepted: one of {self.batch_sizes}")
        _check_number("energy_j", energy_j, 0.0, accepted="joules >= 0")
        _check_number("time_s", time_s, 0.0, accepted="seconds >= 0")
        phase = "explore" if batch_size in self.unexplored() else "exploit"
        run = BatchSizeRun(
            batch_size=batch_size,
            energy_j=float(energy_j),
            time_s=float(time_s),
            cost=self.cost(energy_j, time_s),
            reached=bool(reached),
            stopped_early=bool(stopped_early) and not reached,
            threshold=self.threshold(),
            phase=phase,
            energy_method=energy_method,
            info=dict(info or {}),
        )
        self.runs.append(run)
        return run

    def run(self, fit: FitFn, batch_size: int | None = None) -> BatchSizeRun:
        """Train once with fit at `batch_size` (default: `next_batch_size()`), measured, with early stop."""
        size = self.next_batch_size() if batch_size is None else batch_size
        if size not in self.batch_sizes:
            raise WattprintInputError("batch_size", f"{size!r}; accepted: one of {self.batch_sizes}")
        meter = self.meter  # started now if none was given
        self.cost(0.0, 0.0)  # MAXPOWER fixed before the run, so that should_stop can price it
        control = RunControl(self, self.threshold(), meter.read())
        reached = bool(fit(size, control))
        t, e = meter.read()
        t0, e0 = control.start
        return self.observe(
            size,
            max(0.0, e - e0),
            max(0.0, t - t0),
            reached,
            stopped_early=control.stopped,
            energy_method=meter.method,
            info=control.info,
        )

    def explore(self, fit: FitFn) -> BatchSizeResult:
        """Run every candidate not yet run (early stop on), then return the result."""
        while self.unexplored():
            self.run(fit)
        return self.result()

    def result(self) -> BatchSizeResult:
        """The best size so far and the price of every run made."""
        means = self.mean_costs()
        best = self.best_batch_size
        methods = {r.energy_method for r in self.runs}
        tried = {r.batch_size for r in self.runs}
        return BatchSizeResult(
            best_batch_size=best,
            best_cost=means[best] if best is not None else None,
            runs=list(self.runs),
            total_cost=sum(r.cost for r in self.runs),
            total_energy_j=sum(r.energy_j for r in self.runs),
            total_time_s=sum(r.time_s for r in self.runs),
            stopped=sorted({r.batch_size for r in self.runs if r.stopped_early}),
            failed=[b for b in self.batch_sizes if b in tried and b not in means],
            eta=self.eta,
            beta=self.beta,
            max_power_w=self.max_power_w,
            energy_method=methods.pop() if len(methods) == 1 else ("mixed" if methods else "unknown"),
        )

    # -- state ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The whole state, JSON-ready: settings, exploration order and every run."""
        return {
            "version": STATE_VERSION,
            "batch_sizes": list(self.batch_sizes),
            "eta": self.eta,
            "beta": self.beta,
            "max_power_w": self.max_power_w,
            "default_batch_size": self.default_batch_size,
            "seed": self.seed,
            "order": list(self.order),
            "runs": [r.to_dict() for r in self.runs],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any], *, meter: Meter | None = None) -> BatchSizeOptimizer:
        """An optimizer that goes on from a state made by `to_dict` (settings are checked as when made)."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise WattprintInputError("state", f"not a batch-size state of version {STATE_VERSION}")
        try:
            opt = cls(
                state["batch_sizes"],
                eta=state["eta"],
                beta=state["beta"],
                max_power_w=state["max_power_w"],
                default_batch_size=state["default_batch_size"],
                seed=state["seed"],
                meter=meter,
            )
            if sorted(state["order"]) != sorted(opt.batch_sizes):
                raise WattprintInputError("state", "its exploration order does not list its batch sizes")
            opt.order = [int(b) for b in state["order"]]
            runs = [BatchSizeRun(**r) for r in state["runs"]]
        except (KeyError, TypeError) as exc:
            raise WattprintInputError("state", f"malformed batch-size state: {exc}") from None
        if any(r.batch_size not in opt.batch_sizes for r in runs):
            raise WattprintInputError("state", "a run's batch size is not among its batch sizes")
        opt.runs = runs
        return opt

    def save(self, path: str | Path) -> None:
        """Write the state as JSON (a recurring job loads it next time): whole or not at all."""
        from wattprint.files import write_atomic

        write_atomic(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, *, meter: Meter | None = None) -> BatchSizeOptimizer:
        try:
            state = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WattprintInputError("path", f"cannot read a batch-size state from {path}: {exc}") from None
        return cls.from_dict(state, meter=meter)
