"""The page of a search's result, from the documents real searches wrote: fronts, table, in Chromium."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("optuna")
pytest.importorskip("matplotlib")

from tests.browser import check_page, chrome  # noqa: E402, F401  (fixture)
from tests.optimize import accuracy, digits, trained  # noqa: E402
from tests.optimize.test_nas import run as run_nas  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize import search  # noqa: E402
from wattprint.report.search_page import candidates_of, search_html  # noqa: E402


@functools.lru_cache(maxsize=1)
def nas_document() -> dict[str, Any]:
    return json.loads(json.dumps(run_nas(n_trials=3).to_dict()))  # as read back from a file


@functools.lru_cache(maxsize=1)
def recipe_document() -> dict[str, Any]:
    result = search(
        trained("mlp"),
        accuracy,
        digits()[2][:16],
        recipes=["prune:0.5", "bf16"],
        combine=False,
        repeats=3,
        energy_min_s=0.05,
        progress=False,
    )
    return json.loads(json.dumps(result.to_json_dict()))


def test_an_architecture_search_gets_both_fronts_and_every_trial_in_the_table() -> None:
    doc = nas_document()
    kind, rows = candidates_of(doc)
    assert kind == "architecture search" and len(rows) == 3
    page = search_html(doc)
    assert page.count("<svg") == 2 and 'id="training-chart"' in page
    for trial in doc["trials"]:
        assert trial["recipe"] in page  # each trial's parameters label its row
    # the inference chart's front, against one computed here by brute force
    trials = doc["trials"]

    def beaten(t: dict[str, Any]) -> bool:
        return any(
            o["metric"] >= t["metric"]
            and o["energy_per_inference_j"] <= t["energy_per_inference_j"]
            and (o["metric"] > t["metric"] or o["energy_per_inference_j"] < t["energy_per_inference_j"])
            for o in trials
        )

    expected = sorted((t for t in trials if not beaten(t)), key=lambda t: t["energy_per_inference_j"])
    caption = page.split('id="inference-chart"')[1].split("<figcaption>Pareto front: ")[1].split(".</figcaption>")[0]
    assert caption == ", ".join(t["recipe"] for t in expected)


def test_a_recipe_search_has_the_baseline_and_no_training_chart() -> None:
    doc = recipe_document()
    kind, rows = candidates_of(doc)
    assert kind == "recipe search" and [r["label"] for r in rows][0] == "baseline"
    page = search_html(doc, title="digits MLP")
    assert page.count("<svg") == 1 and 'id="training-chart"' not in page
    assert "<h1>digits MLP</h1>" in page


def test_a_document_of_no_search_is_bad_input() -> None:
    with pytest.raises(WattprintInputError, match="document: no 'candidates' or 'trials' list"):
        search_html({"runs": []})


def test_the_page_renders_in_chromium(chrome: Any, tmp_path: Path) -> None:  # noqa: F811
    page = tmp_path / "search.html"
    page.write_text(search_html(nas_document()), encoding="utf-8")
    check_page(chrome, page.as_uri(), tmp_path / "search.png", charts=2)
    assert len(chrome.find_elements("css selector", "#candidates-table tr")) == 4  # header + 3 trials


def test_with_many_candidates_only_the_front_is_named_on_the_chart() -> None:
    # eight trials where "t0".."t3" trade metric for energy and "t4".."t7" are beaten by "t3"
    trials = [
        {"recipe": f"t{i}", "metric": 0.6 + 0.1 * min(i, 3) - 0.05 * (i > 3), "energy_per_inference_j": 1e-3 * (1 + i),
         "energy_method": "estimated", "macs": 1000}
        for i in range(8)
    ]  # fmt: skip
    page = search_html({"trials": trials})
    svg = page.split('id="inference-chart"')[1].split("<figcaption>")[0]
    table = page.split('id="candidates-table"')[1]
    assert all(f">t{i}</text>" in svg for i in range(4))
    assert not any(f">t{i}</text>" in svg for i in range(4, 8))
    assert all(f"<td>t{i}</td>" in table for i in range(8))
