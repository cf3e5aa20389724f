"""Accuracy-aware search over recipes and their combinations, backed by an Optuna multi-objective study.

Every candidate (a recipe or a combination) is applied to a copy of the model and measured with the same
harness as the fp32 baseline measured at the start of the call. Candidates whose metric falls by more than
`max_metric_drop` below the baseline are kept in the results but marked infeasible; the Pareto front (metric
up, energy per inference down, latency down) and the best candidate are taken among the feasible ones. Energy and
latency of a candidate are measured against the baseline in alternating windows (`paired.py`): a candidate is
called better only when it is measurably so (every round agrees, beyond the rounds' spread); candidates within the
noise of each other are ranked by the stable figures, nonzero MACs and then CPU time.

The study lives in an Optuna storage: in memory by default, or a database URL (SQLite file, PostgreSQL) shared
by several machines at once. Trials already in the storage are not repeated: a search that crashed or was
stopped continues where it was when started again with the same `study_name` (trials that were running when a
worker died are failed by Optuna's heartbeat and retried once).
"""

from __future__ import annotations

import copy
import logging
import math
import socket
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from wattprint.errors import WattprintInputError
from wattprint.optimize.harness import EnergyMeter, aa_control, measure
from wattprint.optimize.paired import MIN_EFFECT, SAME, Ratio, control_floor, with_floors
from wattprint.optimize.recipes import format_recipe, parse_recipe
from wattprint.redact import redact_url

log = logging.getLogger("wattprint")

DEFAULT_RECIPES: tuple[str, ...] = (
    "int8-dynamic",
    "int8",
    "bf16",
    "fp16",
    "prune:0.5",
    "prune:0.8",
    "prune-channels:0.3",
    "prune-channels:0.5",
    "prune-channels:0.7",
)
PREFER = ("energy", "latency", "macs", "size")
_PREFER_KEY = {"energy": "energy_per_inference_j", "latency": "latency_ms", "macs": "macs", "size": "size_bytes"}
DEFAULT_STUDY = "wattprint-optimize"
HEARTBEAT_S = 30


@dataclass
class SearchResult:
    """The baseline, every candidate (dicts, see `Measurement.to_dict` plus ratios), the Pareto front, the best."""

    baseline: dict[str, Any]
    candidates: list[dict[str, Any]]
    refused: list[dict[str, Any]]
    pareto: list[dict[str, Any]]
    best: dict[str, Any] | None
    max_metric_drop: float
    prefer: str
    energy: dict[str, Any]
    study_name: str | None = None
    storage: str | None = None
    notes: list[str] = field(default_factory=list)
    control: dict[str, Any] | None = None  # the A/A control's paired ratios and the floors taken from it

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidates": self.candidates,
            "refused": self.refused,
            "pareto": [c["recipe"] for c in self.pareto],
            "best": self.best,
            "max_metric_drop": self.max_metric_drop,
            "prefer": self.prefer,
            "energy": self.energy,
            "study_name": self.study_name,
            "storage": self.storage,
            "notes": self.notes,
            "control": self.control,
        }

    def table(self) -> Any:
        """A rich Table: the baseline in absolute units, each candidate as ratios to it (same run)."""
        from rich.table import Table

        b = self.baseline
        method = b.get("energy_method", "?")
        table = Table(
            title=f"Candidates vs the fp32 baseline (allowed metric drop {self.max_metric_drop:g})",
            caption=f"ratios to the baseline measured in this run; energy {method} "
            f"({', '.join(f'{k}: {v}' for k, v in b.get('energy_sources', {}).items())}); * best, ● Pareto front",
        )
        for col in ("recipe", "metric", "latency", "energy/inf", "MACs", "nz MACs", "size", "ok"):
            table.add_column(col, justify="left" if col == "recipe" else "right", overflow="fold")
        front = {c["recipe"] for c in self.pareto}
        best = self.best["recipe"] if self.best else None

        def mark(recipe: str) -> str:
            return recipe + (" *" if recipe == best else "") + (" ●" if recipe in front else "")

        table.add_row(
            mark("baseline"),
            f"{b['metric']:.4f}",
            f"{b['latency_ms']:.3f} ms",
            f"{b['energy_per_inference_j'] * 1e3:.3g} mJ",
            f"{b['macs']:,}",
            f"{b['macs_nonzero']:,}",
            f"{b['size_bytes'] / 1024:.1f} KiB",
            "yes",
        )
        for c in self.candidates:
            r = c["ratios"]
            table.add_row(
                mark(c["recipe"]),
                f"{c['metric']:.4f} ({-c['metric_drop']:+.4f})",
                _ranged(c, "latency"),
                _ranged(c, "energy"),
                _x(r["macs"]),
                _x(r["macs_nonzero"]),
                _x(r["size"]),
                "yes" if c["feasible"] else "no",
            )
        for c in self.refused:  # the reason, often long, is printed in full under the table
            table.add_row(c["recipe"], "refused", "", "", "", "", "", "no (see below)")
        return table


def print_report(result: SearchResult, file: Any = None) -> None:
    """Print the candidates table, the best candidate and the notes (for scripts and the demo)."""
    from rich.console import Console

    console = Console(file=file)
    if not console.is_terminal:  # piped or captured: do not wrap cells at 80 columns
        console = Console(file=file, width=160)
    console.print(result.table())
    best = result.best
    if best is not None:
        r = best["ratios"]
        console.print(
            f"best ({result.prefer}): {best['recipe']}  metric {best['metric']:.4f}  "
            f"energy x{r['energy']:.2f}  latency x{r['latency']:.2f}  MACs x{r['macs']:.3f}  "
            f"size x{r['size']:.3f}"
        )
    for c in result.refused:
        console.print(f"refused: {c['recipe']}: {c['error']}", markup=False)
    for note in result.notes:
        console.print(f"note: {note}")


def _ranged(c: dict[str, Any], what: str) -> str:
    """A ratio with its paired range, "0.48x (0.45-0.52)", and ≈ where it is no measurable difference."""
    r = _paired_ratio(c, what)
    if r is None:
        return _x(c["ratios"][what])
    return f"{_x(r.median)} ({r.low:.2f}-{r.high:.2f})" + (" ≈" if r.verdict == SAME else "")


def _x(ratio: float | None) -> str:
    return "-" if ratio is None or not math.isfinite(ratio) else f"{ratio:.2f}x"


def candidate_space(recipes: Sequence[str] | None = None, *, combine: bool = True) -> list[str]:
    """Canonical recipe strings to try: each recipe, plus (with `combine`) each pruning step followed by each
    precision/quantization step. Given combinations ("a+b") are kept as they are."""
    base = [format_recipe(parse_recipe(r)) for r in (recipes if recipes is not None else DEFAULT_RECIPES)]
    if not base:
        raise WattprintInputError("recipes", "empty list; accepted: one or more recipes")
    space = list(dict.fromkeys(base))
    if combine:
        singles = [parse_recipe(r) for r in base if "+" not in r]
        pruning = [s[0] for s in singles if s[0].is_pruning]
        numeric = [s[0] for s in singles if s[0].is_numeric]
        space += [format_recipe([p, n]) for p in pruning for n in numeric]
    return list(dict.fromkeys(space))


def pareto_front(
    points: list[dict[str, Any]],
    higher_is_better: bool,
    costs: Sequence[str] = ("energy_per_inference_j", "latency_ms"),
) -> list[dict[str, Any]]:
    """The points no other point beats on the metric and every cost at once (ties kept), in their order."""

    def key(c: dict[str, Any]) -> tuple[float, ...]:
        m = c["metric"] if higher_is_better else -c["metric"]
        return (-m, *(c[name] for name in costs))

    front = []
    for c in points:
        kc = key(c)
        dominated = any(all(a <= b for a, b in zip(key(o), kc, strict=True)) and key(o) != kc for o in points)
        if not dominated:
            front.append(c)
    return front


def _ratios(c: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    """Candidate / baseline: energy, latency and CPU time from the paired rounds where there are some (medians),
    else from the two separate measurements; the counted figures (MACs, parameters, size) exactly."""

    def ratio(key: str) -> float:
        b = base[key]
        return c[key] / b if b else math.nan

    paired = (c.get("paired") or {}).get("ratios", {})
    return {
        "latency": paired["latency"]["median"] if paired else ratio("latency_ms"),
        "energy": paired["energy"]["median"] if paired else ratio("energy_per_inference_j"),
        "cpu_time": paired["cpu_time"]["median"] if paired else None,  # None: JSON has no NaN
        "macs": ratio("macs"),
        "macs_nonzero": ratio("macs_nonzero"),
        "params": ratio("params"),
        "size": ratio("size_bytes"),
    }


def _paired_ratio(c: dict[str, Any], what: str) -> Ratio | None:
    """The paired ratio `what` ("energy", "latency", "cpu_time") of a candidate, None for the baseline or unpaired."""
    r = ((c.get("paired") or {}).get("ratios") or {}).get(what)
    return Ratio.from_dict(r) if r else None


def _overlapping_front(front: list[dict[str, Any]]) -> str:
    """Pairs on the Pareto front whose energy is not measurably different ("a and b; c and baseline"), or ""."""

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        ra, rb = _paired_ratio(a, "energy"), _paired_ratio(b, "energy")
        if ra is None or rb is None:  # one is the baseline (or unpaired): the other's verdict against it
            other = ra or rb
            return other is not None and other.verdict == SAME
        return ra.overlaps(rb)

    return "; ".join(
        f"{a['recipe']} and {b['recipe']}" for i, a in enumerate(front) for b in front[i + 1 :] if same(a, b)
    )


def choose_best(base: dict[str, Any], feasible: list[dict[str, Any]], prefer: str) -> tuple[dict[str, Any], list[str]]:
    """The best feasible candidate for `prefer`, and notes on how it was called.

    MACs and size are counted, so the least wins. Energy and latency are measured: only candidates measurably below
    the baseline (paired verdict "lower") compete, and the one with the lowest median wins unless others' ranges
    overlap its own, in which case those tied are ranked by nonzero MACs, then CPU time. With no candidate
    measurably below the baseline, the baseline stays best. Without any paired candidate (`paired_rounds=0`) the
    figures alone rank them; beside paired ones, an unpaired candidate (an earlier trial) is never called better."""
    key = _PREFER_KEY[prefer]
    candidates = [c for c in feasible if c is not base]
    if prefer in ("macs", "size") or not any(c.get("paired") for c in candidates):
        return min([base, *candidates], key=lambda c: (c[key], c["latency_ms"])), []
    what = "energy" if prefer == "energy" else "latency"
    notes = []
    unpaired = [c["recipe"] for c in candidates if _paired_ratio(c, what) is None]
    if unpaired:
        notes.append(f"{', '.join(unpaired)}: measured without paired rounds, so never called measurably better")
    lower = [(c, r) for c in candidates if (r := _paired_ratio(c, what)) is not None and r.verdict == "lower"]
    if not lower:
        return base, [
            *notes,
            f"no candidate's {what} is measurably below the baseline's (its rounds straddle 1, or its median is "
            "within the floor or half its range of 1): the baseline is kept as best",
        ]
    lowest = min(lower, key=lambda cr: cr[1].median)
    tied = [cr for cr in lower if cr[1].overlaps(lowest[1])]
    if len(tied) == 1:
        return lowest[0], notes
    best = min(
        tied,
        key=lambda cr: (cr[0]["macs_nonzero"], (_paired_ratio(cr[0], "cpu_time") or cr[1]).median, cr[1].median),
    )[0]
    names = ", ".join(cr[0]["recipe"] for cr in tied)
    return best, [
        *notes,
        f"{names}: {what} ranges overlap, no measurable difference between them; ranked by nonzero MACs, then CPU time",
    ]


def check_storage_url(storage: str | None) -> None:
    """The form of a storage URL (reachability is checked when it is opened)."""
    if storage is not None and (not isinstance(storage, str) or "://" not in storage):
        raise WattprintInputError(
            "storage",
            f"{storage!r}; accepted: a database URL such as sqlite:///study.db or postgresql+psycopg://user@host/db",
        )


def _open_storage(optuna: Any, storage: str | None, heartbeat_s: float) -> Any:
    if storage is None:
        return optuna.storages.InMemoryStorage()
    check_storage_url(storage)
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    try:
        # optuna annotates these as int; it uses them as timedelta seconds, where a float works too
        timing: dict[str, Any] = {"heartbeat_interval": heartbeat_s, "grace_period": 2 * heartbeat_s}
        return RDBStorage(
            storage, heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1), **timing
        )
    except Exception as exc:  # bad driver, host, database: the user's input
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WattprintInputError(
            "storage",
            f"cannot open {redact_url(storage)}: {msg}; accepted: a reachable "
            "database URL (sqlite:///FILE, postgresql+psycopg://...)",
        ) from None


def open_study(
    optuna: Any,
    storage: str | None,
    name: str | None,
    *,
    default_name: str,
    sampler: Any,
    higher_is_better: bool,
    heartbeat_s: float,
    field: str,
) -> tuple[Any, str | None]:
    """The study to create or continue (metric up, two costs down) and its name: `name`, else `default_name` in a
    database storage (none in memory). A study that exists with other directions is bad input for `field`."""
    opened = _open_storage(optuna, storage, heartbeat_s)
    name = name or (default_name if storage is not None else None)
    directions = ["maximize" if higher_is_better else "minimize", "minimize", "minimize"]
    try:
        study = optuna.create_study(
            storage=opened, sampler=sampler, study_name=name, directions=directions, load_if_exists=True
        )
    except ValueError as exc:  # e.g. the study exists with other directions
        raise WattprintInputError(field, f"{name!r}: {exc}; accepted: a new study name") from None
    return study, name


class _Refused(Exception):
    """A candidate failed (the recipe does not apply to this model, or it broke the model)."""


def _check(max_metric_drop: float, prefer: str, n_trials: int | None) -> None:
    if not isinstance(max_metric_drop, (int, float)) or not math.isfinite(max_metric_drop) or max_metric_drop < 0:
        raise WattprintInputError(
            "max_metric_drop",
            f"{max_metric_drop!r}; accepted: a finite number >= 0, in the "
            "metric's units (0.01 = one point of accuracy in [0, 1])",
        )
    if prefer not in PREFER:
        raise WattprintInputError("prefer", f"{prefer!r}; accepted: {', '.join(PREFER)}")
    if n_trials is not None and (not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1):
        raise WattprintInputError("n_trials", f"{n_trials!r}; accepted: an integer >= 1")


def search(
    model: Any,
    eval_fn: Callable[[Any], float],
    example_inputs: Any,
    *,
    max_metric_drop: float = 0.01,
    recipes: Sequence[str] | None = None,
    combine: bool = True,
    n_trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    train_fn: Callable[[Any], Any] | None = None,
    higher_is_better: bool = True,
    prefer: str = "energy",
    batch_sizes: Sequence[int] = (1,),
    repeats: int = 20,
    energy_min_s: float = 1.0,
    progress: bool = True,
    seed: int = 0,
    heartbeat_s: int = HEARTBEAT_S,
    paired_rounds: int = 3,
    min_effect: float = MIN_EFFECT,
) -> SearchResult:
    """Try recipes and combinations on copies of `model`; keep those within `max_metric_drop`; return the front.

    Args:
        model: the fp32 ``torch.nn.Module`` (left unchanged: each candidate is made from a deep copy).
        eval_fn: ``eval_fn(model) -> float``, the user's metric (e.g. test accuracy in [0, 1]).
        example_inputs: a tensor or tuple of tensors, batched along dimension 0 (for latency, energy, MACs).
        max_metric_drop: largest allowed fall of the metric below the baseline, in the metric's units.
        recipes: recipes to try (default :data:`DEFAULT_RECIPES`); `combine` adds pruning + precision pairs.
        n_trials: trials to run in this call (default: every candidate not yet in the study).
        storage, study_name: an Optuna storage URL shared by workers, and the study to create or continue.
        train_fn: fine-tuning callback ``train_fn(model)``, used after pruning steps.
        prefer: what "best" minimises among feasible candidates: energy, latency, macs or size.
        heartbeat_s: with a database storage, how often a running trial says it is alive; a trial silent for
            twice as long (its worker died) is failed and retried once by the next worker.
        paired_rounds: rounds of alternating baseline and candidate windows (`energy_min_s` each) behind each
            candidate's energy and latency ratios and their spread (0: one window each, no spread, no verdict;
            fewer than 3: no verdict).
        min_effect: the least ratio difference called a difference (0.15: 15 %), raised to the worst round of the
            A/A control (the baseline against a copy of itself) where that is larger; see `paired.py`.
    """
    from wattprint._extras import require
    from wattprint.optimize.harness import check_measure_inputs
    from wattprint.optimize.recipes import check_model

    _check(max_metric_drop, prefer, n_trials)
    check_model(model)
    check_measure_inputs(batch_sizes, 0, repeats, energy_min_s)
    if isinstance(paired_rounds, bool) or not isinstance(paired_rounds, int) or not 0 <= paired_rounds <= 100:
        raise WattprintInputError("paired_rounds", f"got {paired_rounds!r}; accepted: an integer from 0 to 100")
    if isinstance(min_effect, bool) or not isinstance(min_effect, int | float) or not 0 <= min_effect < 1:
        raise WattprintInputError("min_effect", f"got {min_effect!r}; accepted: a fraction from 0 to below 1")
    if example_inputs is None:
        raise WattprintInputError(
            "example_inputs",
            "missing; accepted: a tensor or a tuple of tensors the model accepts, batched along dimension 0",
        )
    space = candidate_space(recipes, combine=combine)
    optuna = require("optuna", extra="optuna", feature="wattprint.optimize.search")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed candidates are reported in the result instead
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _search(
                optuna,
                model,
                eval_fn,
                example_inputs,
                max_metric_drop=max_metric_drop,
                space=space,
                n_trials=n_trials,
                storage=storage,
                study_name=study_name,
                train_fn=train_fn,
                higher_is_better=higher_is_better,
                prefer=prefer,
                batch_sizes=batch_sizes,
                repeats=repeats,
                energy_min_s=energy_min_s,
                progress=progress,
                seed=seed,
                heartbeat_s=heartbeat_s,
                paired_rounds=paired_rounds,
                min_effect=float(min_effect),
            )
    finally:
        optuna.logging.set_verbosity(verbosity)


def _search(
    optuna: Any,
    model: Any,
    eval_fn: Callable[[Any], float],
    example_inputs: Any,
    *,
    max_metric_drop: float,
    space: list[str],
    n_trials: int | None,
    storage: str | None,
    study_name: str | None,
    train_fn: Callable[[Any], Any] | None,
    higher_is_better: bool,
    prefer: str,
    batch_sizes: Sequence[int],
    repeats: int,
    energy_min_s: float,
    progress: bool,
    seed: int,
    heartbeat_s: int,
    paired_rounds: int,
    min_effect: float,
) -> SearchResult:
    study, name = open_study(
        optuna,
        storage,
        study_name,
        default_name=DEFAULT_STUDY,
        sampler=optuna.samplers.BruteForceSampler(seed=seed),
        higher_is_better=higher_is_better,
        heartbeat_s=heartbeat_s,
        field="study",
    )
    _check_study(study, space, [d.name.lower() for d in study.directions])  # "maximize", "minimize", ...

    meter = EnergyMeter()
    was_training = model.training
    try:
        base = measure(
            model,
            eval_fn,
            example_inputs,
            recipe="baseline",
            batch_sizes=batch_sizes,
            repeats=repeats,
            energy_min_s=energy_min_s,
            meter=meter,
        ).to_dict()
        control = None
        if paired_rounds:  # the noise no recipe may claim: the baseline against a copy of itself
            control = aa_control(
                model,
                example_inputs,
                batch_size=batch_sizes[0],
                meter=meter,
                rounds=paired_rounds,
                window_s=energy_min_s,
            )
        model.train(was_training)
        host, started = socket.gethostname(), datetime.now(timezone.utc).isoformat()

        def objective(trial: Any) -> tuple[float, float, float]:
            recipe = trial.suggest_categorical("recipe", space)
            try:
                candidate = apply_and_measure(
                    model,
                    recipe,
                    eval_fn,
                    example_inputs,
                    train_fn=train_fn,
                    batch_sizes=batch_sizes,
                    repeats=repeats,
                    energy_min_s=energy_min_s,
                    meter=meter,
                    baseline_model=model,
                    paired_rounds=paired_rounds,
                )
            except Exception as exc:  # a recipe may fail in any way: recorded on its trial, the search goes on
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}".splitlines()[0])
                raise _Refused(recipe) from exc
            finally:
                model.train(was_training)
            candidate.update(host=host, session=started)
            trial.set_user_attr("candidate", candidate)
            return candidate["metric"], candidate["energy_per_inference_j"], candidate["latency_ms"]

        if storage is not None:  # trials of dead workers: failed now (and re-queued once), so they count as to do
            optuna.storages.fail_stale_trials(study)
        todo = [r for r in space if r not in _tried(study)]
        count = len(todo) if n_trials is None else min(n_trials, len(todo))
        if count:
            run_study(
                study,
                objective,
                count,
                progress=progress,
                what="optimize",
                label=lambda trial: trial.params.get("recipe", "?"),
                catch=(_Refused,),
            )
    finally:
        meter.close()
    floors = control_floor(control, min_effect) if control is not None else None
    found = _collect(
        study, base, space, max_metric_drop, higher_is_better, prefer, meter, storage, name, started, floors
    )
    if control is not None and floors is not None:
        found.control = {**control, "floors": floors}
        energy = control["ratios"]["energy"]
        if energy["median"] is not None:
            found.notes.append(
                f"A/A control, the baseline against a copy of itself: energy {energy['median']:.2f}x "
                f"({energy['low']:.2f}-{energy['high']:.2f}); a difference is called beyond "
                f"{floors['energy']:.0%} for energy and {floors['latency']:.0%} for latency (the larger of "
                f"min_effect {min_effect:.0%} and the control's worst round)"
            )
    return found


def classifier_search(
    model: Any,
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    max_metric_drop: float = 0.01,
    fine_tune_epochs: int = 30,
    lr: float = 2e-3,
    example_batch: int = 64,
    **kwargs: Any,
) -> SearchResult:
    """`search` for a classifier given as tensors: test accuracy is the metric, pruned candidates are fine-tuned
    with cross-entropy for `fine_tune_epochs` on the training set, and energy/latency use a batch of
    `example_batch` test inputs. Other keyword arguments go to `search` (recipes, storage, ...)."""
    from wattprint.optimize.distill import DistillConfig, train_student
    from wattprint.optimize.harness import accuracy_eval

    config = DistillConfig(epochs=fine_tune_epochs, lr=lr)
    config.check()

    def fine_tune(candidate: Any) -> None:
        train_student(candidate, x_train, y_train, config=config)

    return search(
        model,
        accuracy_eval(x_test, y_test),
        x_test[:example_batch],
        max_metric_drop=max_metric_drop,
        train_fn=fine_tune,
        **kwargs,
    )


def apply_and_measure(
    model: Any,
    recipe: str,
    eval_fn: Callable[[Any], float],
    example_inputs: Any,
    *,
    train_fn: Callable[[Any], Any] | None = None,
    meter: EnergyMeter | None = None,
    **measure_kwargs: Any,
) -> dict[str, Any]:
    """Apply `recipe` to a copy of `model` (fine-tuning pruned ones with `train_fn`) and measure it.

    MACs of a candidate whose last step changes precision or quantizes are counted on the model just before
    that step: the number of multiply-accumulates is the same, and the FLOP counter cannot see every
    quantized kernel (it would report too few).
    """
    from wattprint.optimize.recipes import apply, parse_recipe

    steps = parse_recipe(recipe)
    if not steps[-1].is_numeric:
        candidate_model = apply(model, recipe, example_inputs, train_fn=train_fn)
        return measure(candidate_model, eval_fn, example_inputs, recipe=recipe, meter=meter, **measure_kwargs).to_dict()
    before = (
        apply(model, [str(s) for s in steps[:-1]], example_inputs, train_fn=train_fn)
        if len(steps) > 1
        else copy.deepcopy(model)
    )
    candidate_model = apply(before, str(steps[-1]), example_inputs)
    note = f"counted before {steps[-1]}: it changes the precision of the MACs, not their number"
    return measure(
        candidate_model,
        eval_fn,
        example_inputs,
        recipe=recipe,
        meter=meter,
        macs_model=before,
        macs_note=note,
        **measure_kwargs,
    ).to_dict()


def _check_study(study: Any, space: list[str], directions: list[str]) -> None:
    """A study continues only with the same candidates: otherwise its trials would not be comparable."""
    known = study.user_attrs.get("wattprint_space")
    if known is None:
        study.set_user_attr("wattprint_space", space)
        study.set_user_attr("wattprint_directions", directions)
    elif list(known) != space:
        raise WattprintInputError(
            "study",
            f"{study.study_name!r} was created for other recipes ({', '.join(known)});"
            " accepted: the same recipes, or a new study name",
        )


def _tried(study: Any) -> set[str]:
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING, TrialState.PRUNED)
    return {
        t.params["recipe"]
        for t in study.get_trials(deepcopy=False, states=states)
        if "recipe" in t.params and (t.state != TrialState.FAIL or "error" in t.user_attrs)
    }  # a crashed trial is retried


def run_study(
    study: Any,
    objective: Callable[[Any], Any],
    count: int,
    *,
    progress: bool,
    what: str,
    label: Callable[[Any], str],
    catch: tuple[type[BaseException], ...] = (),
) -> None:
    """`count` trials of `objective`, with a progress bar on stderr (`what: <label of the last trial>`) unless
    `progress` is False; trials raising one of `catch` are recorded as failed and the study goes on."""
    if not progress:
        study.optimize(objective, n_trials=count, catch=catch)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(what, total=count)

        def advance(study: Any, trial: Any) -> None:
            bar.update(task, advance=1, description=f"{what}: {label(trial)}")

        study.optimize(objective, n_trials=count, catch=catch, callbacks=[advance])


def _collect(
    study: Any,
    base: dict[str, Any],
    space: list[str],
    max_drop: float,
    higher_is_better: bool,
    prefer: str,
    meter: EnergyMeter,
    storage: str | None,
    name: str | None,
    session: str,
    floors: dict[str, float] | None = None,
) -> SearchResult:
    from optuna.trial import TrialState

    sign = 1.0 if higher_is_better else -1.0
    base = {**base, "metric_drop": 0.0, "feasible": True, "ratios": _ratios(base, base)}
    candidates: dict[str, dict[str, Any]] = {}
    refused: dict[str, dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False):
        recipe = t.params.get("recipe")
        if recipe not in space:
            continue
        if t.state == TrialState.COMPLETE and "candidate" in t.user_attrs:
            c = dict(t.user_attrs["candidate"])
            if c.get("paired") and floors is not None:  # verdicts against this run's A/A control
                c["paired"] = with_floors(c["paired"], floors)
            c["metric_drop"] = sign * (base["metric"] - c["metric"])
            c["feasible"] = c["metric_drop"] <= max_drop + 1e-12
            c["ratios"] = _ratios(c, base)
            c["trial"] = t.number
            c["measured_in_this_run"] = c.get("session") == session
            candidates[recipe] = c
            refused.pop(recipe, None)
        elif t.state == TrialState.FAIL and "error" in t.user_attrs and recipe not in candidates:
            refused[recipe] = {"recipe": recipe, "error": t.user_attrs["error"], "trial": t.number}
    ordered = [candidates[r] for r in space if r in candidates]
    feasible = [base, *(c for c in ordered if c["feasible"])]

    # on ratios to the baseline (1.0): a candidate's paired medians and the baseline are measured alike
    def rel(value: float | None) -> float:  # an unmeasured ratio sorts last
        return math.inf if value is None or math.isnan(value) else value

    relative = [{**c, "_energy": rel(c["ratios"]["energy"]), "_latency": rel(c["ratios"]["latency"])} for c in feasible]
    on_front = {c["recipe"] for c in pareto_front(relative, higher_is_better, costs=("_energy", "_latency"))}
    front = [c for c in feasible if c["recipe"] in on_front]
    best, notes = choose_best(base, feasible, prefer)
    if any(not c["measured_in_this_run"] for c in ordered):
        notes.append(
            "some candidates come from earlier runs or other workers of the study: their ratios compare "
            "with this run's baseline and are only as comparable as the machines are"
        )
    cpu = base.get("compute", {}).get("cpu")
    if cpu:
        limits = ", ".join(f"{k}={v}" for k, v in cpu["limits"].items())
        notes.append(
            f"CPU: {cpu['isa']}"
            + (f" (limited by {limits})" if limits else "")
            + f", bf16 {'native' if cpu['bf16_native'] else 'not native'}, int8 dot products: "
            f"{cpu['int8_dot'] or 'none (16-bit sums saturate)'}"
        )
    kernels = sorted(
        {
            f"{k['kernel']} ({'full range' if k['full_range'] else '7-bit activations'})"
            for c in ordered
            if (k := c.get("compute", {}).get("int8_kernel"))
        }
    )
    if kernels:
        notes.append(
            f"int8 kernel on this CPU: {', '.join(kernels)}; the rest of those models in "
            + ", ".join(
                sorted({c["compute"]["int8_rest_dtype"] for c in ordered if "int8_rest_dtype" in c.get("compute", {})})
            )
        )
    if base["energy_method"] != "measured":
        notes.append(
            "energy per inference is estimated by wattprint's CPU/RAM model from CPU time (no hardware counter here), "
            "not measured: an energy ranking here is a CPU-time ranking"
        )
    paired = [c for c in ordered if c.get("paired")]
    if paired:
        p = paired[0]["paired"]
        notes.append(
            f"energy and latency: median ratio over {p['rounds']} rounds of baseline, candidate, candidate, baseline "
            f"windows ({p['window_s']:g} s of each model per round), with its range; ≈ marks no measurable difference "
            "from the baseline"
        )
        overlap = _overlapping_front(front)
        if overlap:
            notes.append(f"on the Pareto front, {overlap}: their energy ranges overlap (no measurable difference)")
    return SearchResult(
        baseline=base,
        candidates=ordered,
        refused=[refused[r] for r in space if r in refused],
        pareto=front,
        best=best,
        max_metric_drop=max_drop,
        prefer=prefer,
        energy=meter.describe(),
        study_name=name,
        storage=redact_url(storage) if storage is not None else None,
        notes=notes,
    )
