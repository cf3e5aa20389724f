"""Output options never destroy a user's file: a file that wattprint did not write is replaced only with
--force (issue 15); wattprint's own outputs are replaced freely, so reports can be regenerated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.report.records import fixture_records, save_records
from wattprint.errors import WattprintInputError
from wattprint.files import check_overwrite, written_by_wattprint

USER_TEXT = "# My project\n\nNotes I wrote by hand.\n"


def _cmd(wattprint_cmd: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*wattprint_cmd, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_what_counts_as_written_by_wattprint(tmp_path: Path) -> None:
    """The whole file must be ours: a mark inside a user's file (a table pasted into a README, a record
    embedded in their JSON) does not make it replaceable."""
    from tests.report.records import fixture_records
    from wattprint.report import latex_table, markdown_table

    path = tmp_path / "f"
    table = markdown_table(fixture_records())
    record = fixture_records()[0].to_json_dict()
    big = dict(record, windows=[{"name": f"w{i}", "pad": "x" * 300} for i in range(300)])  # version key late
    cases = {
        "": True,  # empty: nothing to lose
        USER_TEXT: False,
        table: True,
        latex_table(fixture_records()): True,
        USER_TEXT + "\n" + table: False,  # a README with a pasted report table, even at its end
        "A README that mentions wattprint and its generator.\n": False,
        '<!doctype html>\n<html><head><meta name="generator" content="wattprint"></head></html>': True,
        '<p>I quote <meta name="generator" content="wattprint"></p>': False,
        json.dumps(record): True,
        json.dumps(big): True,
        "[]": True,  # an export of no runs
        json.dumps([record, record]): True,
        json.dumps({"results": [record], "mine": 1}): False,  # the user's JSON embedding a record
        json.dumps({"run_id": "a"}): False,
    }
    for text, ours in cases.items():
        path.write_text(text)
        assert written_by_wattprint(path) is ours, text[:80]
    path.write_text("run_id,name\n")
    assert written_by_wattprint(path, also=lambda text: str(text).startswith("run_id,name"))
    path.write_text(USER_TEXT)
    with pytest.raises(WattprintInputError, match="exists and was not written by wattprint; pass --force"):
        check_overwrite(path, "-o", force=False)
    check_overwrite(path, "-o", force=True)
    check_overwrite(tmp_path / "new", "-o", force=False)


@pytest.mark.parametrize("flag", ["--md", "--html", "--latex"])
def test_report_refuses_a_users_file_and_replaces_its_own(wattprint_cmd: list[str], tmp_path: Path, flag: str) -> None:
    save_records(fixture_records())
    target = tmp_path / "README.md"
    target.write_text(USER_TEXT)
    refused = _cmd(wattprint_cmd, "report", "aaaa", flag, "README.md", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith(f"wattprint: error: {flag}: ") and "--force" in refused.stderr
    assert target.read_text() == USER_TEXT
    forced = _cmd(wattprint_cmd, "report", "aaaa", flag, "README.md", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert target.read_text() != USER_TEXT
    again = _cmd(wattprint_cmd, "report", "aaaa", "bbbb", flag, "README.md", cwd=tmp_path)  # ours now
    assert again.returncode == 0, again.stderr


def test_run_refuses_before_the_job_runs_and_export_keeps_its_csv_replaceable(
    wattprint_cmd: list[str], tmp_path: Path
) -> None:
    record = tmp_path / "notes.json"
    record.write_text(USER_TEXT)
    marker = tmp_path / "ran"
    job = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    refused = _cmd(wattprint_cmd, "run", "-q", "-o", str(record), "--", *job, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.startswith("wattprint: error: -o: "), refused.stderr
    assert not marker.exists() and record.read_text() == USER_TEXT
    done = _cmd(wattprint_cmd, "run", "-q", "-o", str(record), "--force", "--", *job, cwd=tmp_path)
    assert done.returncode == 0 and marker.exists(), done.stderr
    assert json.loads(record.read_text())["status"] == "finished"
    again = _cmd(wattprint_cmd, "run", "-q", "-o", str(record), "--", "true", cwd=tmp_path)  # a record: ours
    assert again.returncode == 0, again.stderr
    csv = tmp_path / "runs.csv"
    for _ in range(2):  # the second export replaces the first: its header is recognised
        out = _cmd(wattprint_cmd, "runs", "export", "--format", "csv", "-o", str(csv), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    csv.write_text("date,amount\n2026-01-01,3\n")
    out = _cmd(wattprint_cmd, "runs", "export", "-o", str(csv), cwd=tmp_path)
    assert out.returncode == 2 and "--force" in out.stderr and csv.read_text().startswith("date,amount")
