"""CodeCarbon's emissions.csv into the store (issue 15, item 6): a real file written by the installed
CodeCarbon, one run per row, marked as imported, operational CO2e kept, importing twice adds nothing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

CODECARBON_RUN = (
    "import logging, sys, time\n"
    "logging.getLogger('codecarbon').setLevel(logging.ERROR)\n"
    "from codecarbon import OfflineEmissionsTracker\n"
    "t = OfflineEmissionsTracker(country_iso_code='FRA', output_dir=sys.argv[1], log_level='error',\n"
    "                            project_name='cc-demo', measure_power_secs=1)\n"
    "t.start(); time.sleep(1.2); t.stop()\n"
)


def _cmd(wattprint_cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*wattprint_cmd, *args], capture_output=True, text=True, timeout=120)


def test_a_codecarbon_file_becomes_imported_runs_once(wattprint_cmd: list[str], tmp_path: Path) -> None:
    pytest.importorskip("codecarbon")
    subprocess.run([sys.executable, "-c", CODECARBON_RUN, str(tmp_path)], check=True, timeout=120)
    emissions = tmp_path / "emissions.csv"
    [row] = list(csv.DictReader(emissions.open()))
    first = _cmd(wattprint_cmd, "import", "codecarbon", str(emissions))
    assert first.returncode == 0 and "imported 1 run(s)" in first.stdout, first.stderr
    again = _cmd(wattprint_cmd, "import", "codecarbon", str(emissions))
    assert "imported 0 run(s)" in again.stdout and "1 already in the store" in again.stdout
    [record] = json.loads(_cmd(wattprint_cmd, "runs", "list", "--json").stdout)
    assert record["name"] == "cc-demo" and record["status"] == "finished" and record["region"] == "FR"
    assert record["co2e_kg"]["operational"] == pytest.approx(float(row["emissions"]))
    assert record["co2e_kg"]["embodied"] == 0 and "CodeCarbon" in record["embodied_note"]
    assert record["facility_energy_kwh"] == pytest.approx(float(row["energy_consumed"]))
    assert record["energy_kwh"]["total"] * record["pue"] == pytest.approx(float(row["energy_consumed"]), rel=1e-6)
    assert record["attribution"]["mode"] == "imported" and record["measurement"]["cpu"] == "codecarbon"
    assert {m["method"] for m in record["methods"].values()} == {"imported"}
    assert "imported" in _cmd(wattprint_cmd, "runs", "list").stdout  # never shown as measured
    # and back out in CodeCarbon's own columns: the same emissions and energy
    out = _cmd(wattprint_cmd, "runs", "export", "--format", "codecarbon").stdout
    [back] = list(csv.DictReader(out.splitlines()))
    assert float(back["emissions"]) == pytest.approx(float(row["emissions"]))
    assert float(back["energy_consumed"]) == pytest.approx(float(row["energy_consumed"]))


def test_a_file_that_is_not_codecarbons_is_one_line_and_stores_nothing(
    wattprint_cmd: list[str], tmp_path: Path
) -> None:
    bad = tmp_path / "notes.csv"
    bad.write_text("date,amount\n2026-01-01,3\n")
    proc = _cmd(wattprint_cmd, "import", "codecarbon", str(bad))
    assert proc.returncode == 2 and proc.stderr.startswith("wattprint: error: FILE: not a CodeCarbon emissions.csv")
    broken = tmp_path / "emissions.csv"
    broken.write_text(
        "timestamp,project_name,run_id,duration,emissions,energy_consumed\n"
        "2026-12-07T10:00:00,a,r1,10,0.001,0.01\n"
        "2026-12-07T11:00:00,b,r2,ten,0.001,0.01\n"
    )
    proc = _cmd(wattprint_cmd, "import", "codecarbon", str(broken))
    assert proc.returncode == 2 and "emissions.csv line 3: duration 'ten' is not a number" in proc.stderr
    assert json.loads(_cmd(wattprint_cmd, "runs", "list", "--json").stdout) == []  # all or nothing
