"""A VM's figures from the command line: the settings, what `runs show` says, and what would sharpen it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

JOB = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"


def _run_and_show(cmd: list[str], env: dict[str, str], tmp_path: Path) -> tuple[dict, str]:
    out = tmp_path / "run.json"
    done = subprocess.run([*cmd, "run", "-q", "-o", str(out), "--", sys.executable, "-c", JOB], env=env, timeout=120)
    assert done.returncode == 0
    record = json.loads(out.read_text())
    shown = subprocess.run(
        [*cmd, "runs", "show", record["run_id"]], capture_output=True, text=True, env=env, check=True
    )
    return record, shown.stdout


def test_an_instance_type_setting_gives_its_published_host(
    wattprint_cmd: list[str], wattprint_env: Path, tmp_path: Path
) -> None:
    env = os.environ | {"WATTPRINT_VIRTUAL": "guest", "WATTPRINT_INSTANCE_TYPE": "aws:m5.large"}
    record, shown = _run_and_show(wattprint_cmd, env, tmp_path)
    assert record["hardware"]["guest"]["instance_type"] == "aws:m5.large"
    assert "2 of 96 host vCPUs (host of aws m5.large" in record["attribution"]["host_share_rule"]
    assert "host share (embodied)" in shown and "virtual machine" in shown and "aws:m5.large" in shown
    assert "to sharpen" not in shown  # nothing left to assume


def test_a_guest_of_unknown_type_is_told_what_would_sharpen_it(
    wattprint_cmd: list[str], wattprint_env: Path, tmp_path: Path
) -> None:
    record, shown = _run_and_show(wattprint_cmd, os.environ | {"WATTPRINT_VIRTUAL": "guest"}, tmp_path)
    assert record["hardware"]["cpu_power_rule"] == "vcpu" and "median host" in record["hardware"]["guest"]["host_rule"]
    assert "to sharpen" in shown and "WATTPRINT_INSTANCE_TYPE" in shown


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WATTPRINT_INSTANCE_TYPE", "m5.gigantic", "expected a cloud instance type of the bundled table"),
        ("WATTPRINT_VIRTUAL", "maybe", "expected 'auto' (detect a virtual machine)"),
        ("WATTPRINT_HOST_VCPUS", "0", "expected the number of vCPUs of the host"),
    ],
)
def test_bad_vm_settings_stop_before_the_job(
    wattprint_cmd: list[str], wattprint_env: Path, tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    marker = tmp_path / "ran"
    done = subprocess.run(
        [*wattprint_cmd, "run", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
        capture_output=True,
        text=True,
        env=os.environ | {variable: value},
        timeout=60,
    )
    assert done.returncode == 2 and not marker.exists()
    assert done.stderr.startswith(f"wattprint: error: {variable}: got {value!r}; {expected}")
    assert done.stderr.count("\n") == 1
