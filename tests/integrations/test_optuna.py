"""The Optuna energy objective on real studies with tiny real objectives."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.integrations.optuna import energy_objective  # noqa: E402
from wattprint.store import open_store  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def work(n: int) -> int:
    """CPU work proportional to n."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def objective(trial: optuna.Trial) -> float:
    n = trial.suggest_int("n", 100_000, 4_000_000, log=True)  # 5-200 ms here: CPU time counts in 10 ms ticks
    work(n)
    return float(n)  # "accuracy" grows with the work done


def test_energy_is_a_second_objective(wattprint_env: Path) -> None:
    study = optuna.create_study(
        directions=["maximize", "minimize"], study_name="tiny", sampler=optuna.samplers.RandomSampler(seed=1)
    )
    with energy_objective(objective, interval=0.05) as wrapped:
        study.optimize(wrapped, n_trials=5)
    trials = study.trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for t in trials:
        value, energy_kwh = t.values
        assert value == t.params["n"] and energy_kwh > 0
        assert t.user_attrs["wattprint_energy_kwh"] == energy_kwh
        assert t.user_attrs["wattprint_co2e_kg.operational"] > 0 and t.user_attrs["wattprint_duration_s"] > 0
        assert "cpu: " in t.user_attrs["wattprint_energy_method"]
        assert "wattprint_energy_shared" not in t.user_attrs
    # more work costs more energy: the biggest trial against the smallest (n differs by > 10x)
    small = min(trials, key=lambda t: t.params["n"])
    big = max(trials, key=lambda t: t.params["n"])
    assert big.params["n"] > 10 * small.params["n"] and big.values[1] > small.values[1]
    assert study.best_trials  # a Pareto front over (value, energy)
    # the study is one stored run with a window per trial, the same figures
    rec = wrapped.tracker.record
    assert rec.name == "optuna:tiny" and rec.status == "finished"
    assert [w["name"] for w in rec.windows] == [f"trial {t.number}" for t in trials]
    assert [w["energy_kwh"]["total"] for w in rec.windows] == pytest.approx([t.values[1] for t in trials])
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        assert store.get(rec.run_id).status == "finished"
    assert {t.user_attrs["wattprint_run_id"] for t in trials} == {rec.run_id}


def test_several_user_values_and_failed_and_pruned_trials() -> None:
    def multi(trial: optuna.Trial) -> tuple[float, float]:
        if trial.number == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            raise ValueError("user bug")
        work(20_000)
        return 0.5, 2.0

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    with energy_objective(multi, name="multi", interval=0.05) as wrapped:
        study.optimize(wrapped, n_trials=3, catch=(ValueError,))
    ok, pruned, failed = study.trials
    assert ok.values[:2] == [0.5, 2.0] and ok.values[2] > 0
    assert pruned.state == optuna.trial.TrialState.PRUNED and pruned.user_attrs["wattprint_energy_kwh"] > 0
    assert failed.state == optuna.trial.TrialState.FAIL and failed.user_attrs["wattprint_energy_kwh"] > 0
    assert wrapped.tracker.record.name == "multi"


def test_concurrent_trials_are_marked_shared(caplog: pytest.LogCaptureFixture) -> None:
    def slow(trial: optuna.Trial) -> float:
        time.sleep(0.2)  # threads overlap for sure
        return 1.0

    study = optuna.create_study(directions=["maximize", "minimize"])
    with caplog.at_level(logging.WARNING, logger="wattprint"), energy_objective(slow, interval=0.05) as wrapped:
        study.optimize(wrapped, n_trials=4, n_jobs=2)
    assert all(t.user_attrs.get("wattprint_energy_shared") for t in study.trials)
    assert sum("ran at the same time" in r.getMessage() for r in caplog.records) == 1


def test_single_direction_study_is_refused_before_the_trial_runs() -> None:
    ran = []

    def obj(trial: optuna.Trial) -> float:
        ran.append(trial.number)
        return 1.0

    study = optuna.create_study(direction="maximize")
    with (
        pytest.raises(WattprintInputError, match="^directions: the study has 1 objective"),
        energy_objective(obj, interval=0.05) as wrapped,
    ):
        study.optimize(wrapped, n_trials=1)
    assert ran == []
    two = optuna.create_study(directions=["maximize", "minimize"])
    with (
        pytest.raises(WattprintInputError, match="^directions: the study has 2 objective.*returns 3"),
        energy_objective(lambda t: (1.0, 2.0), interval=0.05) as wrapped,
    ):
        two.optimize(wrapped, n_trials=1)


def test_wattprint_fault_gives_nan_energy_not_an_exception() -> None:
    wrapped = energy_objective(objective, interval=0.05)

    def broken(name: str) -> None:
        raise OSError("sensor gone")

    wrapped.tracker.end_window = broken  # type: ignore[method-assign]
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(wrapped, n_trials=1)  # no exception reaches the study
    [trial] = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL  # NaN is not ranked as if measured
    assert "sensor gone" in trial.user_attrs["wattprint_fault"]
    assert trial.user_attrs["wattprint_user_values"] == [float(trial.params["n"])]
    rec = wrapped.close()
    assert "sensor gone" in rec.degraded["optuna"] and math.isfinite(rec.energy_kwh.total)


def test_bad_objective_is_refused() -> None:
    with pytest.raises(WattprintInputError, match="^objective:"):
        energy_objective(42)  # type: ignore[arg-type]
    with pytest.raises(WattprintInputError, match="region"):
        energy_objective(objective, region="Atlantis")


def test_missing_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['optuna'] = None\n"
        "try:\n    import wattprint.integrations.optuna\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingExtraError") and "pip install 'wattprint[optuna]'" in out
