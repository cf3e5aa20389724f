"""`wattprint estimate` as a real subprocess: the DESIGN.md contract, conventions, bad input."""

from __future__ import annotations

import json
import subprocess

import pytest


def run(cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, "estimate", *args], capture_output=True, text=True, timeout=60)


def test_gpt3_row_patterson(wattprint_cmd: list[str]) -> None:
    args = "--json --hardware V100 --count 10000 --days 14.8 --power-w 330 --pue 1.10 --intensity 429"
    proc = run(wattprint_cmd, *args.split())
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document
    assert {"energy_kwh", "facility_energy_kwh", "co2e_kg", "inputs"} <= set(doc)
    assert abs(doc["facility_energy_kwh"] / 1000 / 1287 - 1) < 0.005  # MWh
    assert abs(doc["co2e_kg"]["total"] / 1000 / 552 - 1) < 0.005  # tCO2e
    assert doc["co2e_kg"]["total"] == doc["co2e_kg"]["operational"] + doc["co2e_kg"]["embodied"]
    assert abs(doc["facility_energy_kwh"] - doc["energy_kwh"] * 1.10) < 1e-6
    assert doc["range"]["co2e_kg_low"] < doc["co2e_kg"]["total"] < doc["range"]["co2e_kg_high"]
    assert doc["inputs"]["method"] == "patterson" and doc["inputs"]["hardware"] == "V100 SXM2"


def test_strubell_and_mlco2(wattprint_cmd: list[str]) -> None:
    args = "--json --hardware v100 --count 8 --hours 10 --method strubell"
    strubell = json.loads(run(wattprint_cmd, *args.split()).stdout)
    assert abs(strubell["facility_energy_kwh"] - 37.92) < 1e-9
    assert abs(strubell["co2e_lbs"]["total"] - 37.92 * 0.954) < 1e-9
    args = "--json --hardware T4 --hours 10 --intensity 500 --method mlco2"
    mlco2 = json.loads(run(wattprint_cmd, *args.split()).stdout)
    assert mlco2["facility_energy_kwh"] == mlco2["energy_kwh"]
    assert abs(mlco2["co2e_kg"]["total"] - 0.35) < 1e-12
    assert mlco2["inputs"]["pue"] == 1.0 and "no PUE" in mlco2["inputs"]["pue_source"]
    assert "co2e_lbs" not in mlco2


def test_embodied_flags(wattprint_cmd: list[str]) -> None:
    args = "--count 8 --hours 24 --region FR --embodied-kg-per-device 164 --lifetime-years 3"
    proc = run(wattprint_cmd, "--json", "--hardware", "h100 sxm", *args.split())
    doc = json.loads(proc.stdout)
    assert abs(doc["co2e_kg"]["embodied"] - 8 * 164 * 24 / 26280) < 1e-12


def test_readable_table(wattprint_cmd: list[str]) -> None:
    proc = run(wattprint_cmd, "--hardware", "TPUv3", "--count", "4", "--hours", "2", "--region", "US-CA")
    assert proc.returncode == 0, proc.stderr
    assert "TPU v3" in proc.stdout and "CO2e total" in proc.stdout and "range" in proc.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            "--hardware V1000 --hours 1 --intensity 100",
            "--hardware: unknown hardware 'V1000' (did you mean V100 SXM2",
        ),
        ("--hardware V100 --hours -1 --intensity 100", "--hours: got -1.0; expected a positive number"),
        ("--hardware V100 --hours nan --intensity 100", "--hours: got nan"),
        ("--hardware V100 --hours 1 --region Atlantis", "--region: unknown region 'Atlantis'"),
        ("--hardware V100 --hours 1 --days 1 --intensity 1", "--days: give either --hours or --days"),
        ("--hardware V100 --hours 1 --intensity 1 --region FR", "--region: give either"),
        ("--hardware V100 --hours 1 --intensity 1 --lifetime-years 4", "--embodied-kg-per-device"),
        ("--hardware V100 --hours 1 --intensity 1 --method guess", "--method: got 'guess'"),
        ("--hardware V100 --hours 1 --intensity 1 --count 0", "--count: got 0"),
    ],
)
def test_bad_input_exit_2_one_line(wattprint_cmd: list[str], args: str, expected: str) -> None:
    proc = run(wattprint_cmd, "--json", *args.split())
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr


def test_lifetime_from_an_estimate(wattprint_cmd: list[str]) -> None:
    args = "--json --hardware V100 --count 8 --days 10 --region FR --queries-per-day 1000000 --serving-days 365"
    proc = run(wattprint_cmd, *args.split(), "--j-per-query", "2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["training"]["energy_kwh"] == pytest.approx(8 * 0.3 * 240)  # 8 V100 at 300 W for 240 h
    assert doc["inference"]["energy_kwh"] == pytest.approx(2 * 1e6 * 365 / 3.6e6)
    assert doc["crossover_day"] == 1037 and doc["within_period"] is False  # 576 kWh / (5/9 kWh per day)
    assert doc["inference"]["g_co2e_per_kwh"] == pytest.approx(doc["training"]["co2e_kg"] * 1000 / 576)


def test_lifetime_from_stored_training_and_bench_runs(wattprint_cmd: list[str]) -> None:
    import time

    import wattprint
    from tests.bench.workloads import Overhead
    from wattprint.bench import run_bench

    with wattprint.track("train", region="FR") as tracker:
        time.sleep(0.2)
    training = tracker.record
    bench = run_bench(Overhead(), ["q"] * 8, batch_sizes=(1, 4), queries=8, idle_s=0).document
    args = ["--json", "--training-run", training.run_id[:10], "--bench-run", bench["run_id"][:10]]
    proc = run(wattprint_cmd, *args, "--queries-per-day", "1000", "--serving-days", "30")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["training"]["energy_kwh"] == pytest.approx(training.energy_kwh.total)
    assert doc["inference"]["j_per_query"] == pytest.approx(bench["results"][1]["energy_j_per_query"])  # batch 4
    assert doc["inference"]["g_co2e_per_kwh"] == pytest.approx(bench["g_co2e_per_kwh"])
    assert "batch size 4" in doc["inference"]["source"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--queries-per-day 10 --j-per-query 1 --hardware V100 --days 1", "--serving-days: missing"),
        ("--queries-per-day 10 --serving-days 5 --hardware V100 --days 1", "--j-per-query: give one of"),
        ("--queries-per-day 10 --serving-days 5 --j-per-query 1", "--training-run: give one of"),
        ("--queries-per-day 10 --serving-days 5 --j-per-query 1 --training-run nope", "nope"),
        ("--queries-per-day -1 --serving-days 5 --j-per-query 1 --hardware V100 --days 1 --region FR",
         "--queries-per-day: got -1.0"),
        ("--queries-per-day 1 --serving-days 0 --j-per-query 1 --hardware V100 --days 1 --region FR",
         "--serving-days: got 0.0"),
        ("--queries-per-day 1 --serving-days 5 --j-per-query 1 --training-run abc --days 3", "--days: estimates"),
        ("--queries-per-day 1 --serving-days 5 --j-per-query 1 --hardware V100 --days 1 --bench-batch-size 8",
         "--bench-batch-size: applies to --bench-run only"),
    ],
)  # fmt: skip
def test_lifetime_bad_input(wattprint_cmd: list[str], args: str, message: str) -> None:
    proc = run(wattprint_cmd, *args.split())
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_no_region_means_the_world_average_as_for_a_tracked_run(wattprint_cmd: list[str]) -> None:
    """Like `wattprint run` without a region: the world average, said in the intensity source."""
    proc = run(wattprint_cmd, "--json", "--hardware", "V100", "--hours", "1")
    assert proc.returncode == 0, proc.stderr
    inputs = json.loads(proc.stdout)["inputs"]
    assert inputs["region"] == "WORLD" and inputs["intensity_g_per_kwh"] == 480.0
    assert inputs["intensity_source"].startswith("no region or intensity given: world average")


def test_strubell_with_a_region_says_it_used_that_regions_intensity(wattprint_cmd: list[str]) -> None:
    proc = run(wattprint_cmd, "--json", "--hardware", "V100", "--hours", "10", "--region", "FR", "--method", "strubell")
    assert proc.returncode == 0, proc.stderr
    inputs = json.loads(proc.stdout)["inputs"]
    assert "US average" not in inputs["formula"].split("instead of")[0] and "given grid intensity" in inputs["formula"]
    us = json.loads(run(wattprint_cmd, "--json", "--hardware", "V100", "--hours", "10", "--method", "strubell").stdout)
    assert "0.954 lbs/kWh x kWh (US average" in us["inputs"]["formula"]


def test_a_name_that_fits_several_rows_says_which_it_took(wattprint_cmd: list[str]) -> None:
    """'a100 80gb' is 400 W as SXM4 and 300 W as PCIe: the estimate says which row it used and the others."""
    proc = run(wattprint_cmd, "--json", "--hardware", "a100 80gb", "--hours", "1", "--region", "FR")
    inputs = json.loads(proc.stdout)["inputs"]
    assert inputs["hardware"] == "A100 SXM4" and "memory size was ignored" in inputs["hardware_note"]
    assert "A100 PCIe 80GB (300 W)" in inputs["hardware_note"]
    exact = json.loads(run(wattprint_cmd, "--json", "--hardware", "A100 80GB PCIe", "--hours", "1").stdout)
    assert exact["inputs"]["tdp_w"] == 300 and "hardware_note" not in exact["inputs"]
    table = run(wattprint_cmd, "--hardware", "V100", "--hours", "1", "--region", "FR")
    assert "hardware note" in table.stdout and "V100 PCIe" in table.stdout
