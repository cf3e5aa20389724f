"""Energy-aware architecture search on digits: real training per trial, stops over budget, a shared SQLite study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("optuna")
nn = torch.nn

from tests.optimize import accuracy, digits, mlp  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize.nas import search_architectures  # noqa: E402

FAST: dict[str, Any] = {"repeats": 3, "energy_min_s": 0.05, "progress": False}


def factory(hidden: int, lr: float) -> Any:
    torch.manual_seed(0)
    return mlp(hidden)


def train_epoch(model: Any, params: dict[str, Any], epoch: int) -> None:
    x, y, _, _ = digits()
    optimizer = getattr(model, "_optimizer", None) or torch.optim.Adam(model.parameters(), lr=params["lr"])
    model._optimizer = optimizer
    generator = torch.Generator().manual_seed(epoch)
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), 64):
        batch = order[start : start + 64]
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()


def run(**kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "train_epoch": train_epoch,
        "eval_fn": accuracy,
        "example_inputs": digits()[2][:16],
        "epochs": 3,
        "n_trials": 4,
        **FAST,
    }
    args.update(kwargs)
    return search_architectures(factory, {"hidden": [8, 64], "lr": (1e-3, 1e-2)}, **args)


def test_every_trial_is_trained_measured_and_ranked() -> None:
    result = run()
    assert len(result.trials) == 4 and not result.stopped and not result.failed
    for trial in result.trials:
        hidden = trial["params"]["hidden"]
        assert trial["macs"] == 16 * (64 * hidden + hidden * 10)  # the factory's architecture, a batch of 16
        assert trial["train_energy_j"] > 0 and trial["energy_per_inference_j"] > 0
        assert trial["energy_method"] in ("measured", "estimated", "mixed")
        assert 1e-3 <= trial["params"]["lr"] <= 1e-2
        assert trial["metric"] > 0.5  # three epochs of Adam on digits beat chance (0.1) by far
    assert result.pareto and all(p in result.trials for p in result.pareto)
    for point in result.pareto:  # no trial beats a front point on all three objectives
        for other in result.trials:
            assert not (
                other["metric"] > point["metric"]
                and other["train_energy_j"] < point["train_energy_j"]
                and other["energy_per_inference_j"] < point["energy_per_inference_j"]
            )
    assert result.best is not None and result.best["metric"] == max(t["metric"] for t in result.trials)


@pytest.mark.parametrize("min_epochs", [2, 3])
def test_a_trial_predicted_over_budget_stops_once_the_prediction_has_its_epochs(min_epochs: int) -> None:
    result = run(epochs=5, n_trials=2, max_train_energy_j=1e-9, min_epochs=min_epochs)
    assert not result.trials and len(result.stopped) == 2
    for stopped in result.stopped:
        assert stopped["epochs_done"] == min_epochs  # not before the prediction has min_epochs epochs
        low, value, high = stopped["predicted_train_energy_j"]
        assert low > 1e-9 and low <= value <= high
        assert stopped["train_energy_j"] > 0  # the joules it used are kept
    assert result.best is None and any("stopped over the training-energy budget" in n for n in result.notes)


def test_a_budget_that_fits_stops_nothing() -> None:
    result = run(n_trials=2, max_train_energy_j=1e9)
    assert len(result.trials) == 2 and not result.stopped
    assert all(t["within_budget"] for t in result.trials)


def test_a_study_in_sqlite_is_continued_by_the_next_call(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    first = run(n_trials=2, storage=url, study_name="digits")
    second = run(n_trials=2, storage=url, study_name="digits")
    assert len(first.trials) == 2 and len(second.trials) == 4
    assert {t["trial"] for t in first.trials} < {t["trial"] for t in second.trials}


def test_a_failing_factory_is_recorded_and_the_search_goes_on() -> None:
    def picky(hidden: int, lr: float) -> Any:
        if hidden == 8:
            raise ValueError("no 8 here")
        return factory(hidden, lr)

    result = search_architectures(
        picky,
        {"hidden": [8, 64], "lr": [3e-3]},
        train_epoch=train_epoch,
        eval_fn=accuracy,
        example_inputs=digits()[2][:16],
        epochs=1,
        n_trials=4,
        **FAST,
    )
    assert result.failed and all(f["params"]["hidden"] == 8 for f in result.failed)
    assert result.trials and all(t["params"]["hidden"] == 64 for t in result.trials)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"space": {}}, "space"),
        ({"space": {"hidden": (64, 8)}}, "space['hidden']"),
        ({"space": {"hidden": []}}, "space['hidden']"),
        ({"epochs": 0}, "epochs"),
        ({"n_trials": 0}, "n_trials"),
        ({"max_train_energy_j": -1.0}, "max_train_energy_j"),
        ({"min_epochs": 1}, "min_epochs"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {
        "space": {"hidden": [8]},
        "train_epoch": train_epoch,
        "eval_fn": accuracy,
        "example_inputs": digits()[2][:4],
        "epochs": 1,
        **FAST,
    }
    args.update(kwargs)
    space = args.pop("space")
    with pytest.raises(WattprintInputError) as raised:
        search_architectures(factory, space, **args)
    assert raised.value.field == field
