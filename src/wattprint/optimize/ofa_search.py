"""Sub-networks of a once-for-all supernet under a measured energy or latency budget (Optuna, multi-objective).

    result = search_subnets(net, accuracy, x_test[:64], calibration_data=x_train, max_energy_j=2e-5, n_trials=30)
    result.best            # the most accurate sub-network whose measured energy and latency are within budget
    result.reason          # None, or why no sub-network fits
    model = recalibrate_bn(extract(net, result.best_config), x_train)

Each trial samples one choice per position of the supernet's space (a depth per stage, a kernel size per
elastic convolution, a width per elastic layer), extracts that sub-network as a plain model, recalibrates its
batch norms on `calibration_data`, and measures it with the recipe search's harness: the metric, latency
(median ms per batch at ``batch_sizes[0]``), energy per inference (joules of this process over a window of at
least `energy_min_s` at that batch size, from wattprint's EnergyMonitor: measured by a hardware counter or
estimated by the CPU/RAM model, as the result says) and MACs of one forward of `example_inputs`. The
objectives are metric up, energy per inference down, MACs down. A new study starts with the smallest and
the largest sub-network, so that the first trial already says whether anything can fit.

Budgets decide by measurement only: a candidate is feasible when its measured energy per inference is at
most `max_energy_j` and its measured latency at most `max_latency_ms`. They also reach the sampler (TPE's
constraints), which then samples near the boundary, but nothing is predicted. With a budget, the most accurate
feasible candidate is extracted and measured a second time and kept only if that measurement is within budget
too (one measurement just under the line may be noise); otherwise the next one, up to `confirm_tries`. If none
fits, `best` is None and `reason` says how close the least costly candidate came: no exception.

The sampler is seeded, but it sees measured energies: two runs can take different paths after a few trials.
"""

from __future__ import annotations

import math
import socket
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from wattprint.errors import WattprintInputError
from wattprint.optimize.harness import EnergyMeter, check_measure_inputs, measure
from wattprint.optimize.search import HEARTBEAT_S, open_study, pareto_front, run_study

DEFAULT_STUDY = "wattprint-ofa"


@dataclass
class SubnetSearchResult:
    """Every architecture measured (dicts: the harness's `Measurement.to_dict()` plus `config`, `feasible`,
    `over_budget`, `trial`), the Pareto front of the feasible ones, and the best feasible one, or None."""

    candidates: list[dict[str, Any]]
    pareto: list[dict[str, Any]]
    best: dict[str, Any] | None
    max_energy_j: float | None
    max_latency_ms: float | None
    energy_method: str
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.best is not None

    @property
    def best_config(self) -> Any:
        """The best candidate's `SubnetConfig`, or None when none fits."""
        from wattprint.optimize.ofa import SubnetConfig

        return SubnetConfig.from_dict(self.best["config"]) if self.best is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": self.candidates,
            "pareto": [c["recipe"] for c in self.pareto],
            "best": self.best,
            "fits": self.fits,
            "reason": self.reason,
            "max_energy_j": self.max_energy_j,
            "max_latency_ms": self.max_latency_ms,
            "energy_method": self.energy_method,
            "notes": self.notes,
        }


def _check_budget(name: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0
    ):
        unit = "joules per inference" if name == "max_energy_j" else "milliseconds per batch"
        raise WattprintInputError(name, f"{value!r}; accepted: {unit} > 0, or None")


def _check_int(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise WattprintInputError(name, f"{value!r}; accepted: an integer >= {low}")


def _over(c: dict[str, Any], max_energy_j: float | None, max_latency_ms: float | None) -> list[str]:
    over = []
    if max_energy_j is not None and c["energy_per_inference_j"] > max_energy_j:
        over.append("energy")
    if max_latency_ms is not None and c["latency_ms"] > max_latency_ms:
        over.append("latency")
    return over


def search_subnets(
    supernet: Any,
    eval_fn: Callable[[Any], float],
    example_inputs: Any,
    *,
    calibration_data: Any = None,
    max_energy_j: float | None = None,
    max_latency_ms: float | None = None,
    n_trials: int = 20,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 0,
    higher_is_better: bool = True,
    batch_sizes: Sequence[int] = (1,),
    repeats: int = 20,
    energy_min_s: float = 0.5,
    confirm_tries: int = 3,
    progress: bool = True,
    heartbeat_s: int = HEARTBEAT_S,
) -> SubnetSearchResult:
    """Search the sub-networks of a trained `supernet` for the metric against energy per inference and MACs.

    Args:
        supernet: a trained `wattprint.optimize.ofa.Supernet` (left as it was).
        eval_fn: ``eval_fn(model) -> float``, the metric of an extracted sub-network (e.g. test accuracy).
        example_inputs: a batch the model accepts, for latency, energy per inference and MACs.
        calibration_data: training inputs (a tensor, or an iterable of batches) to recalibrate each sub-network's
            batch norms on; needed when the supernet has batch norms.
        max_energy_j: joules per inference at ``batch_sizes[0]`` a candidate may use, measured; None: no limit.
        max_latency_ms: milliseconds per batch of ``batch_sizes[0]`` a candidate may take, measured; None: no limit.
        n_trials: trials in this call (an architecture sampled twice is measured once).
        storage, study_name: an Optuna database URL shared by workers, and the study to create or continue.
        confirm_tries: with a budget, how many of the most accurate feasible candidates may be measured again
            before the search says none fits.
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    from wattprint._extras import require
    from wattprint.optimize.ofa import check_supernet

    check_supernet(supernet)
    if not callable(eval_fn):
        raise WattprintInputError("eval_fn", f"{eval_fn!r}; accepted: a callable eval_fn(model) -> float")
    if example_inputs is None:
        raise WattprintInputError("example_inputs", "missing; accepted: a tensor or tuple of tensors the model accepts")
    _check_budget("max_energy_j", max_energy_j)
    _check_budget("max_latency_ms", max_latency_ms)
    _check_int("n_trials", n_trials, 1)
    _check_int("confirm_tries", confirm_tries, 1)
    _check_int("seed", seed, 0)
    check_measure_inputs(batch_sizes, 0, repeats, energy_min_s)
    if calibration_data is None and any(isinstance(m, _BatchNorm) for m in supernet.modules()):
        raise WattprintInputError(
            "calibration_data",
            "missing; the supernet has batch norms, recalibrated per sub-network; accepted: a tensor of training "
            "inputs or an iterable of batches",
        )
    optuna = require("optuna", extra="optuna", feature="wattprint.optimize.search_subnets")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = _study(optuna, supernet, storage, study_name, higher_is_better, seed, heartbeat_s)
            meter = EnergyMeter()
            try:
                kwargs = {"batch_sizes": batch_sizes, "repeats": repeats, "energy_min_s": energy_min_s}

                def measure_config(config: Any) -> dict[str, Any]:
                    return _measure(supernet, config, eval_fn, example_inputs, calibration_data, meter, kwargs)

                objective = _objective(supernet, measure_config, max_energy_j, max_latency_ms)
                run_study(
                    study,
                    objective,
                    n_trials,
                    progress=progress,
                    what="sub-networks",
                    label=lambda trial: trial.user_attrs.get("candidate", {}).get("recipe", "?"),
                )
                return _collect(
                    study, measure_config, max_energy_j, max_latency_ms, higher_is_better, confirm_tries, meter.method
                )
            finally:
                meter.close()
    finally:
        optuna.logging.set_verbosity(verbosity)


def _study(
    optuna: Any, supernet: Any, storage: str | None, name: str | None, higher: bool, seed: int, heartbeat_s: int
) -> Any:
    def constraints(trial: Any) -> Sequence[float]:
        return trial.user_attrs.get("constraints", (0.0, 0.0))

    # Optuna 5 reads constraints set on the trial (Trial.set_constraint); older ones need constraints_func
    sampler_kwargs = {} if hasattr(optuna.trial.Trial, "set_constraint") else {"constraints_func": constraints}
    study, name = open_study(
        optuna,
        storage,
        name,
        default_name=DEFAULT_STUDY,
        sampler=optuna.samplers.TPESampler(seed=seed, **sampler_kwargs),
        higher_is_better=higher,
        heartbeat_s=heartbeat_s,
        field="study_name",
    )
    space = supernet.space.to_dict()
    known = study.user_attrs.get("wattprint_ofa_space")
    if known is None:
        study.set_user_attr("wattprint_ofa_space", space)
    elif known != space:
        raise WattprintInputError(
            "study_name", f"{name!r} was made for another supernet space; accepted: the same space, or a new name"
        )
    if storage is not None:
        optuna.storages.fail_stale_trials(study)
    if not study.trials:  # the extremes first: the smallest says at once whether anything can fit
        for config in (supernet.space.smallest(), supernet.space.largest()):
            study.enqueue_trial(_params(config))
    return study


def _params(config: Any) -> dict[str, int]:
    params = {f"depth[{i}]": v for i, v in enumerate(config.depths)}
    params.update({f"kernel[{i}]": v for i, v in enumerate(config.kernels)})
    params.update({f"width[{i}]": v for i, v in enumerate(config.widths)})
    return params


def _measure(
    supernet: Any,
    config: Any,
    eval_fn: Callable[[Any], float],
    example_inputs: Any,
    calibration_data: Any,
    meter: EnergyMeter,
    measure_kwargs: dict[str, Any],
) -> dict[str, Any]:
    """Extract, recalibrate and measure one sub-network with the recipe search's harness."""
    from wattprint.optimize.ofa import extract, recalibrate_bn

    model = extract(supernet, config)
    if calibration_data is not None:
        recalibrate_bn(model, calibration_data)
    result = measure(model, eval_fn, example_inputs, recipe=config.label, meter=meter, **measure_kwargs).to_dict()
    result["config"] = config.to_dict()
    return result


def _objective(
    supernet: Any,
    measure_config: Callable[[Any], dict[str, Any]],
    max_energy_j: float | None,
    max_latency_ms: float | None,
) -> Callable[[Any], tuple[float, float, float]]:
    from wattprint.optimize.ofa import SubnetConfig

    space = supernet.space
    host, session = socket.gethostname(), datetime.now(timezone.utc).isoformat()
    measured: dict[Any, dict[str, Any]] = {}  # one measurement per architecture in this call

    def objective(trial: Any) -> tuple[float, float, float]:
        config = space.canonical(
            SubnetConfig(
                tuple(trial.suggest_categorical(f"depth[{i}]", list(c)) for i, c in enumerate(space.depths)),
                tuple(trial.suggest_categorical(f"kernel[{i}]", list(c)) for i, c in enumerate(space.kernels)),
                tuple(trial.suggest_categorical(f"width[{i}]", list(c)) for i, c in enumerate(space.widths)),
            )
        )
        if config not in measured:
            measured[config] = {**measure_config(config), "host": host, "session": session, "trial": trial.number}
        c = measured[config]
        trial.set_user_attr("candidate", c)
        over = {  # > 0: over budget, by so much
            "energy": c["energy_per_inference_j"] - max_energy_j if max_energy_j is not None else 0.0,
            "latency": c["latency_ms"] - max_latency_ms if max_latency_ms is not None else 0.0,
        }
        trial.set_user_attr("constraints", list(over.values()))
        if hasattr(trial, "set_constraint"):
            for key, value in over.items():
                trial.set_constraint(key, value)
        return c["metric"], c["energy_per_inference_j"], c["macs"]

    return objective


def _collect(
    study: Any,
    measure_config: Callable[[Any], dict[str, Any]],
    max_energy_j: float | None,
    max_latency_ms: float | None,
    higher_is_better: bool,
    confirm_tries: int,
    method: str,
) -> SubnetSearchResult:
    from optuna.trial import TrialState

    from wattprint.optimize.ofa import SubnetConfig

    candidates: dict[str, dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        c = t.user_attrs.get("candidate")
        if c is not None and c["recipe"] not in candidates:
            over = _over(c, max_energy_j, max_latency_ms)
            candidates[c["recipe"]] = {**c, "feasible": not over, "over_budget": over}
    ordered = list(candidates.values())
    sign = 1.0 if higher_is_better else -1.0
    ranked = sorted(
        (c for c in ordered if c["feasible"]), key=lambda c: (-sign * c["metric"], c["energy_per_inference_j"])
    )
    budgeted = max_energy_j is not None or max_latency_ms is not None
    best, notes = None, []
    for c in ranked[:confirm_tries] if budgeted else ranked[:1]:
        if budgeted:  # a second, independent measurement of a fresh extraction must be within budget too
            again = measure_config(SubnetConfig.from_dict(c["config"]))
            c["second_measurement"] = {k: again[k] for k in ("metric", "energy_per_inference_j", "latency_ms")}
            over = _over(again, max_energy_j, max_latency_ms)
            if over:
                c.update(feasible=False, over_budget=[f"{o} (second measurement)" for o in over])
                notes.append(f"{c['recipe']}: within budget once, over it ({', '.join(over)}) when measured again")
                continue
        best = c
        break
    feasible = [c for c in ordered if c["feasible"]]
    pareto = pareto_front(feasible, higher_is_better, costs=("energy_per_inference_j", "macs"))
    reason = None if best is not None else _reason(ordered, ranked, confirm_tries, max_energy_j, max_latency_ms)
    if method != "measured":
        notes.append(f"energy per inference is {method} (no hardware counter for every component here)")
    return SubnetSearchResult(ordered, pareto, best, max_energy_j, max_latency_ms, method, reason, notes)


def _reason(
    ordered: list[dict[str, Any]],
    ranked: list[dict[str, Any]],
    confirm_tries: int,
    max_energy_j: float | None,
    max_latency_ms: float | None,
) -> str:
    if not ordered:
        return "none fits: no sub-network was measured"
    if ranked:
        return (
            f"none fits: the {min(confirm_tries, len(ranked))} most accurate candidates within budget were over it "
            "when measured again"
        )
    parts = []
    if max_energy_j is not None:
        lowest = min(ordered, key=lambda c: c["energy_per_inference_j"])
        parts.append(
            f"least energy per inference {lowest['energy_per_inference_j']:.3g} J "
            f"({lowest.get('energy_method', '?')}), max_energy_j {max_energy_j:.3g} J"
        )
    if max_latency_ms is not None:
        least = min(c["latency_ms"] for c in ordered)
        parts.append(f"least latency measured {least:.3g} ms, max_latency_ms {max_latency_ms:.3g} ms")
    return f"none fits among {len(ordered)} sub-networks measured: " + "; ".join(parts)
