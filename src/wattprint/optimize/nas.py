"""Energy-aware architecture and hyperparameter search: a model factory over a search space, trained per trial.

    def factory(width: int, depth: int, lr: float) -> nn.Module: ...
    result = wo.search_architectures(
        factory, {"width": [16, 32, 64], "depth": (1, 3), "lr": (1e-3, 1e-2)},
        train_epoch=lambda model, params, epoch: ...,   # one epoch of the user's training
        eval_fn=accuracy, example_inputs=x[:64], epochs=10, max_train_energy_j=500,
    )
    result.pareto          # metric up, energy to train down, energy per inference down

Each trial builds a model from the sampled parameters, trains it epoch by epoch inside a window of wattprint's
EnergyMonitor, and after every epoch from the second on predicts the trial's whole training energy from the
epochs so far (`accounting.predict`, the same prediction as a tracked run's). A trial whose prediction's lower
bound exceeds `max_train_energy_j` is stopped there (Optuna's TrialPruned): it could only end over budget. The
joules it used are kept on the result. Finished trials are measured with the recipe search's harness (metric,
latency, energy per inference, MACs), so both searches' figures compare.

A space maps each factory argument to a list of choices (categorical), or to a (low, high) pair: integers
give an integer range, floats a log-uniform range when both are > 0 and high / low >= 100, else a uniform one.
Trials live in an Optuna storage: in memory, or a database URL shared by several machines (as `search`).
"""

from __future__ import annotations

import math
import socket
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from wattprint.errors import WattprintInputError
from wattprint.optimize.harness import EnergyMeter, check_measure_inputs, measure
from wattprint.optimize.search import HEARTBEAT_S, open_study, pareto_front, run_study

DEFAULT_STUDY = "wattprint-nas"
LOG_SPAN = 100.0  # a float range this wide (high / low) is searched on a log scale


@dataclass
class NasResult:
    """Every trial (finished, stopped over budget, failed), the Pareto front of the finished ones, the best."""

    trials: list[dict[str, Any]]
    pareto: list[dict[str, Any]]
    best: dict[str, Any] | None
    stopped: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    max_train_energy_j: float | None
    energy_method: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "pareto": self.pareto,
            "best": self.best,
            "stopped": self.stopped,
            "failed": self.failed,
            "max_train_energy_j": self.max_train_energy_j,
            "energy_method": self.energy_method,
            "notes": self.notes,
        }


def _suggest(trial: Any, name: str, choice: Any) -> Any:
    if isinstance(choice, tuple):
        low, high = choice
        if isinstance(low, int) and isinstance(high, int):
            return trial.suggest_int(name, low, high)
        log = low > 0 and high / low >= LOG_SPAN
        return trial.suggest_float(name, float(low), float(high), log=log)
    return trial.suggest_categorical(name, list(choice))


def check_space(space: Mapping[str, Any]) -> None:
    """A non-empty mapping of names to a non-empty list of choices or a (low, high) pair with low < high."""
    accepted = "a list of choices or a (low, high) pair of numbers with low < high"
    if not isinstance(space, Mapping) or not space:
        raise WattprintInputError("space", f"{space!r}; accepted: a dict of factory arguments to {accepted}")
    for name, choice in space.items():
        if isinstance(choice, tuple):
            ok = (
                len(choice) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in choice)
                and choice[0] < choice[1]
            )
        else:
            ok = isinstance(choice, list) and len(choice) > 0
        if not ok:
            raise WattprintInputError(f"space[{name!r}]", f"{choice!r}; accepted: {accepted}")


def _check(epochs: int, n_trials: int, max_train_energy_j: float | None, min_epochs: int) -> None:
    for name, value, low in (("epochs", epochs, 1), ("n_trials", n_trials, 1), ("min_epochs", min_epochs, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise WattprintInputError(name, f"{value!r}; accepted: an integer >= {low}")
    if max_train_energy_j is not None and not (
        isinstance(max_train_energy_j, (int, float)) and math.isfinite(max_train_energy_j) and max_train_energy_j > 0
    ):
        raise WattprintInputError("max_train_energy_j", f"{max_train_energy_j!r}; accepted: joules > 0, or None")


class _OverBudget(Exception):
    """Raised inside a trial to stop it; turned into Optuna's TrialPruned."""


def search_architectures(
    factory: Callable[..., Any],
    space: Mapping[str, Any],
    *,
    train_epoch: Callable[[Any, dict[str, Any], int], Any],
    eval_fn: Callable[[Any], float],
    example_inputs: Any,
    epochs: int,
    n_trials: int = 20,
    max_train_energy_j: float | None = None,
    min_epochs: int = 2,
    higher_is_better: bool = True,
    storage: str | None = None,
    study_name: str | None = None,
    batch_sizes: Sequence[int] = (1,),
    repeats: int = 20,
    energy_min_s: float = 0.5,
    seed: int = 0,
    progress: bool = True,
    heartbeat_s: int = HEARTBEAT_S,
) -> NasResult:
    """Search `space` for the factory arguments that trade the metric against training and inference energy.

    Args:
        factory: ``factory(**params) -> torch.nn.Module``, a fresh untrained model for the sampled parameters.
        space: factory argument -> list of choices, or a (low, high) range (see the module docs).
        train_epoch: ``train_epoch(model, params, epoch)``, one epoch of training (params include everything
            sampled, so a learning rate or batch size in the space reaches the training).
        eval_fn: ``eval_fn(model) -> float``, the metric after training.
        example_inputs: a batch the model accepts, for latency, energy per inference and MACs.
        epochs: epochs each trial trains for.
        max_train_energy_j: a trial whose predicted training energy is sure to exceed this (the prediction
            interval's low end, from `min_epochs` epochs on) is stopped; None never stops one.
        storage, study_name: an Optuna database URL shared by workers, and the study to create or continue.
    """
    from wattprint._extras import require

    check_space(space)
    _check(epochs, n_trials, max_train_energy_j, min_epochs)
    check_measure_inputs(batch_sizes, 0, repeats, energy_min_s)
    if not callable(factory):
        raise WattprintInputError("factory", f"{factory!r}; accepted: a callable returning a torch.nn.Module")
    optuna = require("optuna", extra="optuna", feature="wattprint.optimize.search_architectures")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = _study(optuna, storage, study_name, higher_is_better, seed, heartbeat_s)
            meter = EnergyMeter()
            try:
                objective = _objective(
                    optuna,
                    meter,
                    factory,
                    space,
                    train_epoch,
                    eval_fn,
                    example_inputs,
                    epochs=epochs,
                    max_train_energy_j=max_train_energy_j,
                    min_epochs=min_epochs,
                    measure_kwargs={"batch_sizes": batch_sizes, "repeats": repeats, "energy_min_s": energy_min_s},
                )
                run_study(  # a trial whose factory or training fails is recorded as failed; the search goes on
                    study,
                    objective,
                    n_trials,
                    progress=progress,
                    what="architectures",
                    label=lambda trial: _label(trial.params),
                    catch=(Exception,),
                )
                method = meter.method
            finally:
                meter.close()
    finally:
        optuna.logging.set_verbosity(verbosity)
    return _collect(study, max_train_energy_j, higher_is_better, method)


def _study(optuna: Any, storage: str | None, name: str | None, higher: bool, seed: int, heartbeat_s: int) -> Any:
    study, _name = open_study(
        optuna,
        storage,
        name,
        default_name=DEFAULT_STUDY,
        sampler=optuna.samplers.NSGAIISampler(seed=seed),
        higher_is_better=higher,
        heartbeat_s=heartbeat_s,
        field="study_name",
    )
    if storage is not None:
        optuna.storages.fail_stale_trials(study)
    return study


def _objective(
    optuna: Any,
    meter: EnergyMeter,
    factory: Callable[..., Any],
    space: Mapping[str, Any],
    train_epoch: Callable[[Any, dict[str, Any], int], Any],
    eval_fn: Callable[[Any], float],
    example_inputs: Any,
    *,
    epochs: int,
    max_train_energy_j: float | None,
    min_epochs: int,
    measure_kwargs: dict[str, Any],
) -> Callable[[Any], tuple[float, float, float]]:
    from wattprint.accounting.predict import predict_total

    host, session = socket.gethostname(), datetime.now(timezone.utc).isoformat()
    monitor = meter.monitor

    def objective(trial: Any) -> tuple[float, float, float]:
        params = {name: _suggest(trial, name, choice) for name, choice in space.items()}
        trial.set_user_attr("host", host)
        trial.set_user_attr("session", session)
        epoch_j: list[float] = []
        model = factory(**params)
        model.train()
        for epoch in range(epochs):
            window = f"wattprint-nas-{trial.number}-{epoch}"
            monitor.begin_window(window)
            try:
                train_epoch(model, params, epoch)
            finally:
                epoch_j.append(monitor.end_window(window).total_j)
            trial.set_user_attr("train_energy_j", sum(epoch_j))
            trial.set_user_attr("epochs_done", epoch + 1)
            if max_train_energy_j is not None and len(epoch_j) >= min_epochs and epoch + 1 < epochs:
                predicted = predict_total(epoch_j, epochs - epoch - 1)
                trial.set_user_attr("predicted_train_energy_j", [predicted.low, predicted.value, predicted.high])
                if predicted.low > max_train_energy_j:
                    raise optuna.TrialPruned(
                        f"predicted training energy {predicted.value:.3g} J (at least {predicted.low:.3g} J) "
                        f"> budget {max_train_energy_j:.3g} J after {epoch + 1} of {epochs} epochs"
                    )
        model.eval()
        result = measure(model, eval_fn, example_inputs, recipe=_label(params), meter=meter, **measure_kwargs)
        candidate = result.to_dict()
        candidate["train_energy_j"] = sum(epoch_j)
        trial.set_user_attr("candidate", candidate)
        return candidate["metric"], candidate["train_energy_j"], candidate["energy_per_inference_j"]

    return objective


def _label(params: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _collect(study: Any, budget_j: float | None, higher_is_better: bool, method: str) -> NasResult:
    from optuna.trial import TrialState

    trials, stopped, failed = [], [], []
    for t in study.get_trials(deepcopy=False):
        base = {"trial": t.number, "params": dict(t.params), "host": t.user_attrs.get("host")}
        if t.state == TrialState.COMPLETE and "candidate" in t.user_attrs:
            c = dict(t.user_attrs["candidate"])
            c.update(base, within_budget=budget_j is None or c["train_energy_j"] <= budget_j)
            trials.append(c)
        elif t.state == TrialState.PRUNED:
            stopped.append(
                {
                    **base,
                    "train_energy_j": t.user_attrs.get("train_energy_j"),
                    "epochs_done": t.user_attrs.get("epochs_done"),
                    "predicted_train_energy_j": t.user_attrs.get("predicted_train_energy_j"),
                }
            )
        elif t.state == TrialState.FAIL:
            failed.append(base)
    pareto = pareto_front(trials, higher_is_better, costs=("train_energy_j", "energy_per_inference_j"))
    sign = 1.0 if higher_is_better else -1.0
    within = [c for c in trials if c["within_budget"]]
    best = max(within, key=lambda c: (sign * c["metric"], -c["energy_per_inference_j"])) if within else None
    notes = []
    if stopped:
        spent = sum(s["train_energy_j"] or 0.0 for s in stopped)
        notes.append(f"{len(stopped)} trial(s) stopped over the training-energy budget after using {spent:.3g} J")
    if trials and best is None:
        notes.append("no finished trial trained within the budget")
    return NasResult(trials, pareto, best, stopped, failed, budget_j, method, notes)
