"""`wattprint run` end to end, as real subprocesses with real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wattprint.store import open_store

CONTRACT = {
    "run_id": str,
    "name": str,
    "status": str,
    "started_at": str,
    "duration_s": float,
    "energy_kwh": dict,
    "facility_energy_kwh": float,
    "measurement": dict,
    "region": str,
    "intensity_g_per_kwh": float,
    "pue": float,
    "co2e_kg": dict,
}


def runs_in(home: Path) -> list:
    db = home / "wattprint.db"
    if not db.exists():
        return []
    with open_store(f"sqlite:///{db}") as store:
        return store.list()


def test_record_contract_and_pass_through(wattprint_cmd: list[str], wattprint_env: Path, tmp_path: Path) -> None:
    rec_path = tmp_path / "rec.json"
    child = (
        "import sys, time\n"
        "data = sys.stdin.read()\n"
        "sys.stdout.write('out:' + data.upper())\n"
        "sys.stderr.write('err line\\n')\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < 0.5: pass\n"  # CPU time: the same work on a loaded machine
        "sys.exit(3)\n"
    )
    proc = subprocess.run(
        [
            *wattprint_cmd,
            "run",
            "--name",
            "job",
            "--region",
            "DE",
            "--interval",
            "0.1",
            "-o",
            str(rec_path),
            "--",
            sys.executable,
            "-c",
            child,
        ],
        input="hello\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stdout == "out:HELLO\n"  # stdout untouched: no wattprint output on it
    assert proc.stderr.startswith("err line\n")  # the child's stderr first, then one summary line
    assert proc.stderr.count("\n") == 2 and "wattprint: job" in proc.stderr
    rec = json.loads(rec_path.read_text())
    for key, kind in CONTRACT.items():
        assert isinstance(rec[key], kind), key
    assert set(rec["energy_kwh"]) == {"total", "cpu", "gpu", "ram"}
    assert set(rec["co2e_kg"]) == {"operational", "embodied", "total"}
    assert set(rec["measurement"]) == {"cpu", "gpu", "ram"}
    assert rec["status"] == "failed" and rec["exit_code"] == 3 and rec["name"] == "job"
    assert rec["ended_at"].endswith("Z") and rec["started_at"].endswith("Z")
    assert rec["region"] == "DE" and rec["energy_kwh"]["cpu"] > 0
    assert rec["facility_energy_kwh"] == pytest.approx(rec["energy_kwh"]["total"] * rec["pue"])
    assert rec["attribution"]["cpu_share"] > 0.05  # the child was busy (the machine may be too)
    assert rec["command"][0] == sys.executable
    stored = runs_in(wattprint_env)
    assert [r.run_id for r in stored] == [rec["run_id"]]


def test_success_and_quiet(wattprint_cmd: list[str], wattprint_env: Path) -> None:
    proc = subprocess.run([*wattprint_cmd, "run", "-q", "--", "true"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert runs_in(wattprint_env)[0].status == "finished"


def test_tracks_the_whole_process_tree(wattprint_cmd: list[str], tmp_path: Path) -> None:
    rec_path = tmp_path / "rec.json"
    grandchild = "import time\nt=time.process_time()\nwhile time.process_time()-t<1.5: pass"  # 1.5 s of CPU
    script = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    proc = subprocess.run(
        [
            *wattprint_cmd,
            "run",
            "-q",
            "--interval",
            "0.1",
            "-o",
            str(rec_path),
            "--",
            "sh",
            "-c",
            f'{sys.executable} -c "{script}"',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(rec_path.read_text())
    # 1.5 CPU-s of the grandchild against the machine's busy time: at least 0.5 on an idle 2-core machine;
    # 0.1 leaves room for neighbours using both cores meanwhile (the share is then honestly lower)
    assert rec["attribution"]["cpu_share"] > 0.1


def _start(wattprint_cmd: list[str], rec_path: Path, child: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *wattprint_cmd,
            "run",
            "--interval",
            "0.1",
            "--checkpoint",
            "0.2",
            "-o",
            str(rec_path),
            "--",
            sys.executable,
            "-u",
            "-c",
            child,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


SPIN = "import time\nprint('ready', flush=True)\nt=time.time()\nwhile time.time()-t<60: pass\n"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_are_forwarded_and_the_record_written(
    wattprint_cmd: list[str], wattprint_env: Path, tmp_path: Path, sig: int, code: int
) -> None:
    rec_path = tmp_path / "rec.json"
    proc = _start(wattprint_cmd, rec_path, SPIN)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    time.sleep(0.5)
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode == code
    rec = json.loads(rec_path.read_text())
    assert rec["status"] == "interrupted" and rec["exit_code"] == code
    assert runs_in(wattprint_env)[0].status == "interrupted"


def test_kill_9_of_the_child(wattprint_cmd: list[str], tmp_path: Path) -> None:
    rec_path = tmp_path / "rec.json"
    child = "import os\nprint(os.getpid(), flush=True)\nimport time\nt=time.time()\nwhile time.time()-t<60: pass\n"
    proc = _start(wattprint_cmd, rec_path, child)
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    time.sleep(0.8)
    os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == 137
    rec = json.loads(rec_path.read_text())
    assert rec["status"] == "interrupted" and rec["energy_kwh"]["total"] > 0


def test_kill_9_of_wattprint_keeps_the_last_checkpoint(
    wattprint_cmd: list[str], wattprint_env: Path, tmp_path: Path
) -> None:
    rec_path = tmp_path / "rec.json"
    child = "import os\nprint(os.getpid(), flush=True)\nimport time\nt=time.time()\nwhile time.time()-t<60: pass\n"
    proc = _start(wattprint_cmd, rec_path, child)
    assert proc.stdout is not None
    orphan = int(proc.stdout.readline())
    time.sleep(1.5)
    proc.kill()
    proc.wait(timeout=30)
    os.kill(orphan, signal.SIGKILL)  # the command outlives a killed wattprint; end it here
    listed = subprocess.run([*wattprint_cmd, "runs", "list", "--json"], capture_output=True, text=True, check=True)
    runs = json.loads(listed.stdout)
    assert len(runs) == 1 and runs[0]["status"] == "interrupted"
    assert runs[0]["energy_kwh"]["total"] > 0 and runs[0]["duration_s"] >= 1.0
    assert not rec_path.exists()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--region", "XX9", "--", "true"], "region"),
        (["--interval", "-1", "--", "true"], "--interval"),
        (["-o", "/nonexistent-dir/rec.json", "--", "true"], "-o"),
        ([], "CMD"),
        (["--"], "CMD"),
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(
    wattprint_cmd: list[str], wattprint_env: Path, args: list[str], field: str
) -> None:
    proc = subprocess.run([*wattprint_cmd, "run", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and field in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert runs_in(wattprint_env) == []


def test_bad_db_url(wattprint_cmd: list[str], tmp_path: Path) -> None:
    env = dict(os.environ, WATTPRINT_DB="notadialect://user:s3cret@host/db")
    proc = subprocess.run([*wattprint_cmd, "run", "--", "true"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "WATTPRINT_DB" in proc.stderr and "s3cret" not in proc.stderr


def test_unwritable_output_is_refused_before_running(wattprint_cmd: list[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    marker = tmp_path / "ran"
    proc = subprocess.run(
        [*wattprint_cmd, "run", "-o", str(out_dir), "--", "touch", str(marker)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "directory" in proc.stderr and not marker.exists()


def test_command_not_found(wattprint_cmd: list[str], wattprint_env: Path) -> None:
    proc = subprocess.run([*wattprint_cmd, "run", "--", "no-such-command-xyz"], capture_output=True, text=True)
    assert proc.returncode == 127 and "command not found" in proc.stderr
    assert runs_in(wattprint_env) == []


def test_short_command_is_charged_its_cpu_time(wattprint_cmd: list[str], tmp_path: Path) -> None:
    """A child that ends between two samples has left /proc; its rusage still charges it the interval."""
    rec_path = tmp_path / "rec.json"
    spin = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass"
    proc = subprocess.run(
        [*wattprint_cmd, "run", "-q", "--interval", "5", "-o", str(rec_path), "--", sys.executable, "-c", spin],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(rec_path.read_text())
    assert rec["samples"] <= 2  # no sample saw the child busy: only the final one after it exited
    assert rec["attribution"]["cpu_share"] > 0.1  # 0.3 CPU-s of spin; lower than idle allows: neighbours
    assert rec["energy_kwh"]["cpu"] > 0
