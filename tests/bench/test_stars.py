"""Star ratings: the bins, the edges, reference tables from the store and from CSV."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from wattprint.bench.stars import MIN_MODELS, Reference, rate, references_from_csv, references_from_records, star_bins
from wattprint.errors import WattprintInputError
from wattprint.record import RunRecord


def refs(*pairs: tuple[str, float], batch_size: int = 8) -> list[Reference]:
    return [Reference(model, "fill-mask", "suite-v1:fill-mask:1000", batch_size, kwh) for model, kwh in pairs]


def test_five_equal_bins_least_energy_gets_five_stars() -> None:
    bins = star_bins([1.0, 6.0, 3.0])
    assert [b["stars"] for b in bins] == [5, 4, 3, 2, 1]
    assert [b["from_kwh_per_1k"] for b in bins] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert bins[-1]["to_kwh_per_1k"] == 6.0
    table = refs(("a", 1.0), ("b", 6.0), ("c", 3.5))
    key = ("fill-mask", "suite-v1:fill-mask:1000", 8)
    assert rate("mine", *key, 1.0, table)["stars"] == 5
    assert rate("mine", *key, 1.9, table)["stars"] == 5
    assert rate("mine", *key, 2.1, table)["stars"] == 4
    assert rate("mine", *key, 6.0, table)["stars"] == 1  # the top edge: the most energy still gets 1 star
    rated = rate("mine", *key, 4.5, table)
    assert rated["stars"] == 2 and rated["models"] == 4 and len(rated["bins"]) == 5


def test_own_row_is_replaced_and_only_the_same_task_inputs_and_batch_size_count() -> None:
    table = refs(("a", 1.0), ("b", 5.0)) + refs(("c", 9.0), batch_size=32)
    table.append(Reference("d", "fill-mask", "user", 8, 0.1))
    key = ("fill-mask", "suite-v1:fill-mask:1000", 8)
    assert rate("a", *key, 2.0, table)["stars"] is None  # a, b: two models, fewer than MIN_MODELS
    rated = rate("mine", *key, 5.0, table + refs(("mine", 0.5)))  # its old figure is replaced by this run's
    assert rated["models"] == MIN_MODELS and rated["stars"] == 1


def test_not_rated_says_why() -> None:
    rated = rate("mine", "fill-mask", "suite-v1:fill-mask:1000", 8, 2.0, refs(("a", 2.0), ("b", 2.0)))
    assert rated["stars"] is None and "needs 3 models" in rated["reason"] and rated["bins"] == []


def _record(model: str, kwh: float, started: datetime, status: str = "finished") -> RunRecord:
    bench = {
        "task": "fill-mask",
        "model": model,
        "inputs": {"id": "suite-v1:fill-mask:1000", "queries": 1000},
        "results": [{"batch_size": 8, "kwh_per_1k_queries": kwh}],
    }
    return RunRecord(run_id=f"{model}-{kwh}", name="bench fill-mask", started_at=started, status=status, bench=bench)


def test_references_from_records_take_the_newest_finished_run_per_model() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    records = [
        _record("a", 3.0, t0),
        _record("a", 2.0, t0 + timedelta(days=1)),  # newer: wins
        _record("b", 7.0, t0, status="failed"),  # not finished: ignored
        RunRecord(run_id="plain", name="bench fill-mask", started_at=t0, status="finished"),  # no bench
    ]
    assert references_from_records(records) == refs(("a", 2.0))


def test_references_from_csv_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "ref.csv"
    good.write_text(
        "model,task,inputs_id,batch_size,kwh_per_1k_queries,note\na,fill-mask,suite-v1:fill-mask:1000,8,1.5,x\n"
    )
    assert references_from_csv(good) == refs(("a", 1.5))
    missing = tmp_path / "missing.csv"
    missing.write_text("model,task,batch_size\na,fill-mask,8\n")
    with pytest.raises(WattprintInputError, match="lacks the column.*inputs_id"):
        references_from_csv(missing)
    bad = tmp_path / "bad.csv"
    bad.write_text("model,task,inputs_id,batch_size,kwh_per_1k_queries\na,fill-mask,x,eight,1\n")
    with pytest.raises(WattprintInputError, match="line 2"):
        references_from_csv(bad)
    negative = tmp_path / "neg.csv"
    negative.write_text("model,task,inputs_id,batch_size,kwh_per_1k_queries\na,fill-mask,x,8,-1\n")
    with pytest.raises(WattprintInputError, match="finite number >= 0"):
        references_from_csv(negative)
    empty = tmp_path / "empty.csv"
    empty.write_text("model,task,inputs_id,batch_size,kwh_per_1k_queries\n")
    assert references_from_csv(empty) == []
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    with pytest.raises(WattprintInputError, match="lacks the column"):
        references_from_csv(blank)
    with pytest.raises(WattprintInputError, match="cannot read"):
        references_from_csv(tmp_path / "nope.csv")
