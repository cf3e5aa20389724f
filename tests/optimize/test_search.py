"""The accuracy-aware search: feasibility, Pareto front, refusals, and Optuna storage (SQLite resume, PostgreSQL)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("optuna")
nn = torch.nn

from tests.optimize import accuracy, digits, trained  # noqa: E402
from tests.postgres_server import create_database, postgres_url  # noqa: E402, F401  (fixture)
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize import candidate_space, search  # noqa: E402
from wattprint.optimize.search import pareto_front  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FAST = {"repeats": 3, "energy_min_s": 0.05, "progress": False}


def test_candidate_space_combines_pruning_with_precision() -> None:
    space = candidate_space(["prune:0.5", "prune-channels:0.5", "int8-dynamic", "bf16", "prune:0.3+fp16"])
    assert space == [
        "prune:0.5",
        "prune-channels:0.5",
        "int8-dynamic",
        "bf16",
        "prune:0.3+fp16",
        "prune:0.5+int8-dynamic",
        "prune:0.5+bf16",
        "prune-channels:0.5+int8-dynamic",
        "prune-channels:0.5+bf16",
    ]
    assert candidate_space(["prune:0.5", "bf16"], combine=False) == ["prune:0.5", "bf16"]
    with pytest.raises(WattprintInputError):
        candidate_space(["prune:2"])
    with pytest.raises(WattprintInputError):
        candidate_space([])


def test_search_keeps_feasible_candidates_and_reports_refusals() -> None:
    model = trained("mlp")
    x = digits()[2][:16]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = search(
        model,
        accuracy,
        x,
        max_metric_drop=0.02,
        recipes=["prune:0.3", "prune:0.97", "prune-channels:0.25", "sdpa"],
        combine=False,
        **FAST,
    )
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # caller's model untouched
    by_recipe = {c["recipe"]: c for c in result.candidates}
    assert set(by_recipe) == {"prune:0.3", "prune:0.97", "prune-channels:0.25"}
    assert [r["recipe"] for r in result.refused] == ["sdpa"]  # an MLP has no attention: a clear failure, no crash
    assert "no manual attention" in result.refused[0]["error"]
    import io

    from wattprint.optimize.search import print_report

    printed = io.StringIO()
    print_report(result, file=printed)
    expected = " ".join(f"refused: sdpa: {result.refused[0]['error']}".split())
    assert expected in " ".join(printed.getvalue().split())  # in full, not cut to fit a cell
    heavy = by_recipe["prune:0.97"]
    assert heavy["metric_drop"] > 0.02 and not heavy["feasible"]  # 97% of weights gone without fine-tuning
    assert by_recipe["prune:0.3"]["feasible"]
    assert all(c["feasible"] for c in result.pareto)
    assert result.best is not None and result.best["feasible"]
    # best: measurably cheaper than the baseline in the paired rounds, or the baseline itself, saying why
    if result.best is result.baseline:
        assert any("measurably below the baseline's" in n for n in result.notes), result.notes
    else:
        assert result.best["paired"]["ratios"]["energy"]["verdict"] == "lower"
    for c in result.candidates:  # every candidate's energy and latency carry their range over the rounds
        energy = c["paired"]["ratios"]["energy"]
        assert (
            len(energy["rounds"]) == 3 and energy["low"] <= c["ratios"]["energy"] == energy["median"] <= energy["high"]
        )
    slim = by_recipe["prune-channels:0.25"]
    assert slim["ratios"]["macs"] == pytest.approx(slim["macs"] / result.baseline["macs"])
    assert slim["ratios"]["macs"] < 0.8
    assert result.baseline["ratios"]["energy"] == 1.0
    doc = result.to_json_dict()
    assert doc["energy"]["cpu"]["method"] in ("measured", "estimated")
    assert doc["pareto"] == [c["recipe"] for c in result.pareto]
    if result.baseline["energy_method"] == "estimated":
        assert any("estimated" in n for n in result.notes)
    from wattprint.measure.cpu_caps import cpu_capabilities

    assert any(n.startswith(f"CPU: {cpu_capabilities().isa}") for n in result.notes), result.notes
    assert not any("int8 kernel" in n for n in result.notes)  # no int8 candidate here


def test_train_fn_fine_tunes_pruned_candidates() -> None:
    from tests.optimize import train

    model = trained("mlp")
    x = digits()[2][:8]
    calls: list[str] = []

    def fine_tune(m: nn.Module) -> None:
        calls.append("tune")
        train(m, epochs=3)

    result = search(model, accuracy, x, max_metric_drop=0.02, recipes=["prune:0.8"], train_fn=fine_tune, **FAST)
    assert calls == ["tune"]
    assert result.candidates[0]["metric_drop"] < 0.03  # 80% sparse and still close to the baseline after tuning


def test_pareto_front_is_non_dominated() -> None:
    pts = [
        {"metric": 0.9, "energy_per_inference_j": 1.0, "latency_ms": 1.0},
        {"metric": 0.95, "energy_per_inference_j": 2.0, "latency_ms": 1.0},
        {"metric": 0.9, "energy_per_inference_j": 1.5, "latency_ms": 1.5},  # dominated by the first
        {"metric": 0.8, "energy_per_inference_j": 0.5, "latency_ms": 3.0},
    ]
    assert pareto_front(pts, higher_is_better=True) == [pts[0], pts[1], pts[3]]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_metric_drop": -0.1}, "max_metric_drop"),
        ({"max_metric_drop": float("nan")}, "max_metric_drop"),
        ({"prefer": "accuracy"}, "prefer"),
        ({"n_trials": 0}, "n_trials"),
        ({"storage": "not a url"}, "storage"),
        ({"storage": "nosuchdriver://x/y"}, "storage"),
        ({"recipes": ["prune:1.5"]}, "recipe"),
        ({"batch_sizes": (0,)}, "batch_sizes"),
    ],
)
def test_bad_inputs_are_refused_before_any_work(kwargs: dict[str, object], field: str, tmp_path: Path) -> None:
    with pytest.raises(WattprintInputError) as info:
        search(nn.Sequential(nn.Linear(4, 2)), lambda m: 1.0, torch.randn(2, 4), **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert "accepted" in str(info.value)
    with pytest.raises(WattprintInputError) as info:
        search(nn.ReLU(), lambda m: 1.0, torch.randn(2, 4))
    assert info.value.field == "model"


def _trial_rows(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT number, state FROM trials ORDER BY number").fetchall()


def _params(db: Path) -> list[tuple[int, str, float]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT t.number, t.state, p.param_value FROM trials t JOIN trial_params p "
            "ON p.trial_id = t.trial_id ORDER BY t.number"
        ).fetchall()


def test_sqlite_study_resumes_where_it_stopped(tmp_path: Path) -> None:
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    model = trained("mlp")
    x = digits()[2][:8]
    recipes = ["prune:0.3", "prune:0.5", "prune-channels:0.25", "prune-channels:0.5"]
    first = search(model, accuracy, x, recipes=recipes, storage=url, study_name="s1", n_trials=2, **FAST)
    assert len(first.candidates) == 2
    assert len(_trial_rows(db)) == 2  # really in the file
    second = search(model, accuracy, x, recipes=recipes, storage=url, study_name="s1", **FAST)
    assert sorted(c["recipe"] for c in second.candidates) == sorted(recipes)
    assert len(_trial_rows(db)) == 4  # the two done trials were not run again
    earlier = {c["recipe"] for c in first.candidates}
    for c in second.candidates:
        assert c["measured_in_this_run"] == (c["recipe"] not in earlier)
    assert any("earlier runs" in n for n in second.notes)
    third = search(model, accuracy, x, recipes=recipes, storage=url, study_name="s1", **FAST)
    assert len(_trial_rows(db)) == 4 and len(third.candidates) == 4  # nothing left to do
    with pytest.raises(WattprintInputError) as info:
        search(model, accuracy, x, recipes=["prune:0.3"], storage=url, study_name="s1", **FAST)
    assert info.value.field == "study"


CRASHING_WORKER = """
import os, sys, time
sys.path.insert(0, {repo!r})
from tests.optimize import accuracy, digits, trained
from wattprint.optimize import search

def eval_fn(model):
    if os.path.exists({flag!r}) and getattr(model, "_is_candidate", True) and model[1].weight.eq(0).any():
        print("HANG", flush=True)
        time.sleep(600)  # killed here, mid-trial
    return accuracy(model)

search(trained("mlp"), eval_fn, digits()[2][:8], recipes={recipes!r}, storage={url!r}, study_name="crash",
       heartbeat_s=1, repeats=3, energy_min_s=0.05, progress=False)
"""


@pytest.mark.slow
def test_study_continues_after_a_worker_is_killed(tmp_path: Path) -> None:
    db, flag = tmp_path / "crash.db", tmp_path / "hang"
    url = f"sqlite:///{db}"
    recipes = ["prune:0.3", "prune-channels:0.25"]
    flag.write_text("1")
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(CRASHING_WORKER.format(repo=str(REPO), flag=str(flag), recipes=recipes, url=url)))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "HANG"
        time.sleep(1.5)  # let the trial record a heartbeat (Optuna can only fail trials that have one)
        os.kill(proc.pid, signal.SIGKILL)  # a crash: no clean-up, the trial stays RUNNING in the database
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [state for _, state in _trial_rows(db)].count("RUNNING") == 1
    flag.unlink()
    time.sleep(2.5)  # longer than the grace period (2 heartbeats): the dead worker's trial is stale
    result = search(
        trained("mlp"),
        accuracy,
        digits()[2][:8],
        recipes=recipes,
        storage=url,
        study_name="crash",
        heartbeat_s=1,
        **FAST,
    )
    assert sorted(c["recipe"] for c in result.candidates) == sorted(recipes), _params(db)
    states = [state for _, state in _trial_rows(db)]
    # the killed trial failed (stale heartbeat) and was retried once; the other recipe ran once in all
    assert states.count("FAIL") == 1 and states.count("COMPLETE") == 2 and len(states) == 3


@pytest.mark.postgres
def test_postgres_storage_shared_by_two_searches(postgres_url: str) -> None:  # noqa: F811
    url = create_database(postgres_url)
    model = trained("mlp")
    x = digits()[2][:8]
    recipes = ["prune:0.3", "prune-channels:0.25", "prune-channels:0.5"]
    first = search(model, accuracy, x, recipes=recipes, storage=url, study_name="pg", n_trials=1, **FAST)
    second = search(model, accuracy, x, recipes=recipes, storage=url, study_name="pg", **FAST)
    assert len(first.candidates) == 1
    assert sorted(c["recipe"] for c in second.candidates) == sorted(recipes)
    # a user name without a password is hidden too (it could be a token); the database is shown
    assert second.storage == "postgresql+psycopg://***@" + url.split("@", 1)[1]


def test_storage_password_is_hidden() -> None:
    with pytest.raises(WattprintInputError) as err:
        search(
            trained("mlp"),
            accuracy,
            digits()[2][:8],
            recipes=["prune:0.3"],
            n_trials=1,
            storage="postgresql+psycopg://alice:s3cret@127.0.0.1:1/studies",
            **FAST,
        )
    assert "s3cret" not in str(err.value) and "alice:***@127.0.0.1:1/studies" in str(err.value)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")
def test_quantized_candidates_keep_their_mac_count() -> None:
    """int8 changes the precision of the MACs, not their number (the counter cannot see quantized kernels)."""
    model = trained("cnn")
    x = digits()[2][:32]
    result = search(
        model,
        accuracy,
        x,
        recipes=["int8-static", "prune-channels:0.5", "int8"],
        max_metric_drop=0.05,
        combine=False,
        **FAST,
    )
    by_recipe = {c["recipe"]: c for c in result.candidates}
    assert set(by_recipe) == {"int8-static", "prune-channels:0.5", "int8"}
    # the int8 candidate names the kernel this CPU ran, on the result and in the notes
    kernel = by_recipe["int8"]["compute"]["int8_kernel"]
    assert kernel["exact"][kernel["kernel"]] is True
    assert any(n.startswith(f"int8 kernel on this CPU: {kernel['kernel']} (") for n in result.notes), result.notes
    assert by_recipe["int8"]["macs"] == result.baseline["macs"]
    result = search(model, accuracy, x, recipes=["int8-static", "prune-channels:0.5"], max_metric_drop=0.05, **FAST)
    by_recipe = {c["recipe"]: c for c in result.candidates}
    assert set(by_recipe) == {"int8-static", "prune-channels:0.5", "prune-channels:0.5+int8-static"}
    assert by_recipe["int8-static"]["macs"] == result.baseline["macs"]
    assert "counted before int8-static" in by_recipe["int8-static"]["macs_note"]
    combo = by_recipe["prune-channels:0.5+int8-static"]
    assert combo["macs"] == by_recipe["prune-channels:0.5"]["macs"] < result.baseline["macs"] / 3
    assert combo["size_bytes"] < by_recipe["prune-channels:0.5"]["size_bytes"]  # int8 weights are smaller


def test_classifier_search_for_tensors() -> None:
    """The convenience the demo uses: accuracy on the test tensors, cross-entropy fine-tuning of pruned models."""
    from wattprint.optimize import accuracy_eval, classifier_search

    model = trained("mlp")
    x_train, y_train, x_test, y_test = digits()
    assert accuracy_eval(x_test, y_test, batch_size=100)(model) == pytest.approx(accuracy(model))
    result = classifier_search(
        model,
        x_train,
        y_train,
        x_test,
        y_test,
        recipes=["prune-channels:0.5"],
        fine_tune_epochs=3,
        example_batch=16,
        **FAST,
    )
    (candidate,) = result.candidates
    assert candidate["feasible"] and candidate["ratios"]["macs"] < 0.6
    assert result.baseline["metric"] == pytest.approx(accuracy(model))
    with pytest.raises(WattprintInputError):
        classifier_search(model, x_train, y_train, x_test, y_test, fine_tune_epochs=0)
