"""`wattprint schedule` and `wattprint schedule backtest` as real subprocesses (the contract in DESIGN.md)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import SHARED

TRACES = SHARED / "data" / "carbon-traces"
DE = TRACES / "de-2020.csv"
needs_traces = pytest.mark.skipif(not DE.exists(), reason="shared carbon traces not available")


def _run(cmd: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd, "schedule", *args], capture_output=True, text=True, timeout=120)


def _small_trace(path: Path) -> Path:
    """2020-03-01 00:00 .. 12:00 UTC, hourly: dirty, then clean from 03:00 to 05:00, then dirty."""
    values = [400, 380, 350, 120, 100, 300, 320, 330, 340, 350, 360, 370]
    rows = [f"2020-03-01 {h:02d}:00:00,{v}" for h, v in enumerate(values)]
    path.write_text("Time,Carbon Intensity\n" + "\n".join(rows) + "\n")
    return path


def test_contract_invocation(wattprint_cmd: list[str], tmp_path: Path) -> None:
    trace = _small_trace(tmp_path / "t.csv")
    proc = _run(
        wattprint_cmd,
        "--json",
        "--trace",
        str(trace),
        "--duration",
        "2h",
        "--deadline",
        "2020-03-01T10:00",
        "--earliest",
        "2020-03-01T00:00",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document
    assert list(doc) == ["start", "end", "slots", "mean_intensity", "baseline_intensity", "savings_pct"]
    assert doc["start"] == "2020-03-01T03:00:00Z" and doc["end"] == "2020-03-01T05:00:00Z"
    assert doc["slots"] == [["2020-03-01T03:00:00Z", "2020-03-01T05:00:00Z"]]
    assert doc["mean_intensity"] == pytest.approx(110.0) and doc["baseline_intensity"] == pytest.approx(390.0)
    assert doc["savings_pct"] == pytest.approx(100 * (390 - 110) / 390)
    assert proc.stderr == ""


def test_interruptible_with_min_chunk_and_window(wattprint_cmd: list[str], tmp_path: Path) -> None:
    trace = _small_trace(tmp_path / "t.csv")
    args = [
        "--json",
        "--trace",
        str(trace),
        "--duration",
        "3h",
        "--window",
        "PT10H",
        "--earliest",
        "2020-03-01T00:00Z",
    ]
    flat = json.loads(_run(wattprint_cmd, *args).stdout)
    inter = json.loads(_run(wattprint_cmd, *args, "--interruptible").stdout)
    chunked = json.loads(_run(wattprint_cmd, *args, "--interruptible", "--min-chunk", "2h").stdout)
    assert inter["mean_intensity"] <= chunked["mean_intensity"] <= flat["mean_intensity"]
    assert inter["slots"] == [["2020-03-01T03:00:00Z", "2020-03-01T06:00:00Z"]]  # 120, 100, 300: one block here
    assert all(
        datetime.fromisoformat(b.replace("Z", "+00:00")) - datetime.fromisoformat(a.replace("Z", "+00:00"))
        >= timedelta(hours=2)
        for a, b in chunked["slots"]
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--duration", "20h", "--window", "10h", "--earliest", "2020-03-01T00:00"], "--duration"),
        (
            ["--duration", "1h", "--deadline", "2020-03-01T10:00"],
            "--deadline",
        ),  # in the past (earliest = now)
        (["--duration", "1h", "--deadline", "2020-03-02T10:00", "--earliest", "2020-03-01T00:00"], "--trace"),
        (["--duration", "1 hour", "--window", "10h", "--earliest", "2020-03-01T00:00"], "--duration"),
        (["--duration", "1h", "--window", "10h", "--earliest", "March 1st"], "--earliest"),
        (["--duration", "1h", "--earliest", "2020-03-01T00:00"], "--deadline"),
        (
            ["--duration", "1h", "--window", "10h", "--earliest", "2020-03-01T00:00", "--min-chunk", "1h"],
            "--min-chunk",
        ),
        (["--window", "10h", "--earliest", "2020-03-01T00:00"], "--duration"),
    ],
)
def test_bad_input_one_line_exit_2(wattprint_cmd: list[str], tmp_path: Path, args: list[str], field: str) -> None:
    trace = _small_trace(tmp_path / "t.csv")
    proc = _run(wattprint_cmd, "--json", "--trace", str(trace), *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.count("\n") == 1 and field in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_trace_file(wattprint_cmd: list[str], tmp_path: Path) -> None:
    proc = _run(wattprint_cmd, "--json", "--trace", str(tmp_path / "none.csv"), "--duration", "1h", "--window", "2h")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--trace" in proc.stderr


def test_text_output_with_slurm_and_cron(wattprint_cmd: list[str], tmp_path: Path) -> None:
    trace = _small_trace(tmp_path / "t.csv")
    base = ["--trace", str(trace), "--duration", "2h", "--window", "10h", "--earliest", "2020-03-01T00:00"]
    text = _run(wattprint_cmd, *base, "--cluster-tz", "UTC")
    assert text.returncode == 0 and "sbatch --begin=2020-03-01T03:00:00" in text.stdout and "0 3 1 3 *" in text.stdout
    sbatch = _run(wattprint_cmd, *base, "--format", "sbatch", "--command", "train.sh", "--cluster-tz", "Europe/Paris")
    assert sbatch.stdout == "sbatch --begin=2020-03-01T04:00:00 --deadline=2020-03-01T11:00:00 train.sh\n"
    cron = _run(wattprint_cmd, *base, "--format", "cron", "--command", "cd /w && ./train.sh", "--cluster-tz", "UTC")
    assert cron.stdout == "0 3 1 3 * cd /w && ./train.sh\n"


def test_location_shifting(wattprint_cmd: list[str], tmp_path: Path) -> None:
    dirty = _small_trace(tmp_path / "a.csv")
    clean = tmp_path / "b.csv"
    clean.write_text("Time,Carbon Intensity\n" + "\n".join(f"2020-03-01 {h:02d}:00:00,50" for h in range(12)) + "\n")
    proc = _run(
        wattprint_cmd,
        "--json",
        "--trace",
        f"AA={dirty}",
        "--trace",
        f"BB={clean}",
        "--duration",
        "2h",
        "--window",
        "10h",
        "--earliest",
        "2020-03-01T00:00",
    )
    doc = json.loads(proc.stdout)
    assert doc["region"] == "BB" and doc["start"] == "2020-03-01T00:00:00Z" and doc["mean_intensity"] == 50.0
    assert doc["baseline_intensity"] == pytest.approx(390.0)  # the first trace is home


@needs_traces
def test_contract_on_the_2020_trace(wattprint_cmd: list[str]) -> None:
    proc = _run(
        wattprint_cmd,
        "--json",
        "--trace",
        str(DE),
        "--duration",
        "90m",
        "--window",
        "1d",
        "--earliest",
        "2020-06-01T08:00",
        "--interruptible",
        "--min-chunk",
        "30m",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["savings_pct"] > 0 and doc["end"] <= "2020-06-02T08:00:00Z"


@needs_traces
def test_backtest_json(wattprint_cmd: list[str]) -> None:
    proc = _run(
        wattprint_cmd,
        "backtest",
        "--trace",
        str(DE),
        "--jobs",
        "adhoc:1h/8h:200",
        "--jobs",
        "nightly:2h@22:00-06:00",
        "--forecast-error",
        "5%",
        "--interruptible",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    rows = {r["jobs"]: r for r in doc["rows"]}
    assert rows["adhoc:1h/8h:200"]["n"] == 200 and rows["nightly:2h@22:00-06:00"]["n"] > 365
    for r in doc["rows"]:
        assert r["deadline_misses"] == 0 and r["interruptible"] is True
        assert r["optimal_savings_pct"] >= r["savings_pct"] and r["optimal_savings_pct"] > 0
    assert doc["forecast_error_pct"] == 5.0
    table = _run(wattprint_cmd, "backtest", "--trace", str(DE), "--jobs", "adhoc:1h/8h:50")
    assert table.returncode == 0 and "adhoc:1h/8h:50" in table.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--jobs", "sometimes"], "--jobs"),
        (["--jobs", "adhoc:9h/8h"], "--jobs"),
        (["--forecast-error", "lots"], "--forecast-error"),
        (["--tz", "Nowhere/Land"], "--tz"),
    ],
)
def test_backtest_bad_input(wattprint_cmd: list[str], tmp_path: Path, args: list[str], field: str) -> None:
    trace = _small_trace(tmp_path / "t.csv")
    proc = _run(wattprint_cmd, "backtest", "--trace", str(trace), *args)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and field in proc.stderr, proc.stderr


def test_naive_times_are_utc(wattprint_cmd: list[str], tmp_path: Path) -> None:
    trace = _small_trace(tmp_path / "t.csv")
    a = _run(
        wattprint_cmd,
        "--json",
        "--trace",
        str(trace),
        "--duration",
        "1h",
        "--window",
        "6h",
        "--earliest",
        "2020-03-01T00:00",
    )
    b = _run(
        wattprint_cmd,
        "--json",
        "--trace",
        str(trace),
        "--duration",
        "1h",
        "--window",
        "6h",
        "--earliest",
        "2020-03-01T01:00+01:00",
    )
    assert json.loads(a.stdout) == json.loads(b.stdout)
    now = datetime.now(timezone.utc)
    assert now.year > 2020  # --earliest defaults to now: a 2020 trace then does not cover the window
    c = _run(wattprint_cmd, "--json", "--trace", str(trace), "--duration", "1h", "--window", "6h")
    assert c.returncode == 2 and "--trace" in c.stderr


def test_learning_the_duration_tells_a_store_fault_from_no_history(tmp_path: Path) -> None:
    """A store that cannot be read is said to be unreadable, not taken for "no earlier runs"."""
    from wattprint.cli.schedule import learned_duration_s
    from wattprint.errors import WattprintInputError
    from wattprint.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    assert learned_duration_s(store, "train") is None  # no history: None, and the caller asks for --duration
    store.close()  # a store that can no longer be read
    with pytest.raises(WattprintInputError, match=r"^--duration: .*the run store could not be read"):
        learned_duration_s(store, "train")
