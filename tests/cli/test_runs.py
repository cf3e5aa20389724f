from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def two_runs(wattprint_cmd: list[str]) -> list[dict]:
    records = []
    for name, code in (("alpha", 0), ("beta", 1)):
        subprocess.run(
            [*wattprint_cmd, "run", "-q", "--name", name, "--", "sh", "-c", f"exit {code}"], check=False, timeout=60
        )
    listed = subprocess.run([*wattprint_cmd, "runs", "list", "--json"], capture_output=True, text=True, check=True)
    records = json.loads(listed.stdout)
    assert [r["name"] for r in records] == ["beta", "alpha"]  # newest first
    return records


def test_list_filters(wattprint_cmd: list[str], two_runs: list[dict]) -> None:
    out = subprocess.run(
        [*wattprint_cmd, "runs", "list", "--json", "--status", "failed"], capture_output=True, text=True, check=True
    )
    assert [r["name"] for r in json.loads(out.stdout)] == ["beta"]
    table = subprocess.run([*wattprint_cmd, "runs", "list"], capture_output=True, text=True, check=True).stdout
    assert "alpha" in table and "beta" in table and ("estimated" in table or "measured" in table)


def test_show_by_prefix(wattprint_cmd: list[str], two_runs: list[dict]) -> None:
    run_id = two_runs[1]["run_id"]
    out = subprocess.run(
        [*wattprint_cmd, "runs", "show", run_id[:10], "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == two_runs[1]
    human = subprocess.run([*wattprint_cmd, "runs", "show", run_id[:10]], capture_output=True, text=True, check=True)
    assert "alpha" in human.stdout and "CO2e" in human.stdout


def test_show_unknown_run(wattprint_cmd: list[str], two_runs: list[dict]) -> None:
    proc = subprocess.run([*wattprint_cmd, "runs", "show", "zzzz"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_export_csv_and_json(wattprint_cmd: list[str], two_runs: list[dict], tmp_path: Path) -> None:
    out = tmp_path / "runs.csv"
    subprocess.run([*wattprint_cmd, "runs", "export", "--format", "csv", "-o", str(out)], check=True)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["name"] for r in rows} == {"alpha", "beta"}
    assert float(rows[0]["energy_kwh_total"]) >= 0
    js = subprocess.run([*wattprint_cmd, "runs", "export"], capture_output=True, text=True, check=True).stdout
    assert {r["run_id"] for r in json.loads(js)} == {r["run_id"] for r in two_runs}


def test_export_codecarbon_writes_its_columns_with_its_conventions(
    wattprint_cmd: list[str], two_runs: list[dict], tmp_path: Path
) -> None:
    """CodeCarbon's emissions.csv: its columns in its order (compared with the installed CodeCarbon where it
    is there), energies with the PUE in, emissions operational (CodeCarbon has no embodied figure)."""
    out = tmp_path / "emissions.csv"
    for _ in range(2):  # the second export replaces the first without --force: recognised as ours
        subprocess.run([*wattprint_cmd, "runs", "export", "--format", "codecarbon", "-o", str(out)], check=True)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    try:
        import dataclasses

        from codecarbon.output_methods.emissions_data import EmissionsData

        assert list(rows[0]) == [f.name for f in dataclasses.fields(EmissionsData)]
    except ImportError:
        pass
    by_id = {r["run_id"]: r for r in rows}
    for record in two_runs:
        row, pue = by_id[record["run_id"]], record["pue"]
        assert row["project_name"] == record["name"]
        assert float(row["emissions"]) == pytest.approx(record["co2e_kg"]["operational"])
        assert float(row["energy_consumed"]) == pytest.approx(record["facility_energy_kwh"])
        assert float(row["cpu_energy"]) == pytest.approx(record["energy_kwh"]["cpu"] * pue)
        assert float(row["duration"]) == pytest.approx(record["duration_s"])
        assert row["water_consumed"] == "" and row["codecarbon_version"] == ""  # unknown: left empty


def test_export_bad_format(wattprint_cmd: list[str]) -> None:
    proc = subprocess.run([*wattprint_cmd, "runs", "export", "--format", "xml"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--format" in proc.stderr


def test_export_to_a_path_that_cannot_be_written_is_one_line(wattprint_cmd: list[str]) -> None:
    """/proc passes the early checks (a writable-looking folder) and fails at the write itself."""
    proc = subprocess.run([*wattprint_cmd, "runs", "export", "-o", "/proc/x"], capture_output=True, text=True)
    assert (
        proc.returncode == 2
        and proc.stderr == "wattprint: error: -o: cannot write '/proc/x' (No such file or directory)\n"
    )


def test_many_runs_table_shows_the_newest_and_json_all(wattprint_cmd: list[str], wattprint_env: Path) -> None:
    """The table stops at the 50 newest and says how many there are; --json gives every stored document,
    the same documents the record objects give (passed on as stored)."""
    from tests.report.records import make_record
    from wattprint.store import open_store

    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        for i in range(55):
            store.save(make_record(f"run{i:03d}", f"job{i:03d}", energy_kwh=0.001, co2e_kg=0.0001, minutes=i))
        assert store.count() == 55 and store.count(name="job007") == 1
        docs = [json.loads(text) for text in store.list_json(limit=55)]
        assert docs == [r.to_json_dict() for r in store.list(limit=55)]
    table = subprocess.run([*wattprint_cmd, "runs", "list"], capture_output=True, text=True, check=True).stdout
    assert "job054" in table and "job005" in table and "job004" not in table
    assert table.rstrip().endswith("50 newest of 55 runs shown; --limit N for more, --json for all")
    listed = json.loads(
        subprocess.run([*wattprint_cmd, "runs", "list", "--json"], capture_output=True, text=True, check=True).stdout
    )
    assert len(listed) == 55 and listed[0]["name"] == "job054"
