"""`wattprint watch --pid`: a real running process tree, attached to, tracked until it exits or Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

SPIN = "import time\nt = time.time()\nwhile time.time() - t < {s}: pass\n"
BUSY = (  # a process that keeps one core busy and starts a child that keeps the other busy
    "import subprocess, sys\nchild = subprocess.Popen([sys.executable, '-c', {spin!r}])\n" + SPIN + "child.wait()\n"
)


def _watch(cmd: list[str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*cmd, "watch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_tracks_a_running_tree_until_it_exits(wattprint_cmd: list[str], tmp_path: Path) -> None:
    job = subprocess.Popen([sys.executable, "-c", BUSY.format(spin=SPIN.format(s=2.5), s=2.5)])
    time.sleep(0.5)  # it runs before anyone watches: only what follows the attach counts
    out = tmp_path / "record.json"
    watcher = _watch(wattprint_cmd, "--pid", str(job.pid), "--name", "busy", "-o", str(out), "--interval", "0.2")
    _, stderr = watcher.communicate(timeout=30)
    job.wait()
    assert watcher.returncode == 0, stderr
    record = json.loads(out.read_text())
    assert record["name"] == "busy" and record["status"] == "finished" and record["exit_code"] is None
    assert record["attribution"]["tracked_pid"] == job.pid
    assert record["attribution"]["watch_end"] == "the process exited"
    assert 1.0 < record["duration_s"] < 3.5
    # the process and its child each kept a core busy: most of both cores' CPU time was theirs
    assert record["attribution"]["cpu_share"] > 0.5 and record["energy_kwh"]["cpu"] > 0
    assert "the process exited" in stderr
    shown = subprocess.run([*wattprint_cmd, "runs", "show", record["run_id"], "--json"], capture_output=True, text=True)
    assert json.loads(shown.stdout)["attribution"]["watch_end"] == "the process exited"  # stored, not only in -o


def test_ctrl_c_stops_watching_and_the_process_runs_on(wattprint_cmd: list[str], tmp_path: Path) -> None:
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "record.json"
        watcher = _watch(wattprint_cmd, "--pid", str(job.pid), "-o", str(out))
        time.sleep(1.5)
        watcher.send_signal(signal.SIGINT)
        _, stderr = watcher.communicate(timeout=30)
        assert watcher.returncode == 130, stderr
        assert job.poll() is None  # still running
        record = json.loads(out.read_text())
        assert record["status"] == "finished"
        assert record["attribution"]["watch_end"] == "watching stopped; it runs on"
    finally:
        job.kill()
        job.wait()


def test_an_unknown_pid_is_one_line_and_exit_2(wattprint_cmd: list[str], wattprint_env: Path) -> None:
    proc = subprocess.run([*wattprint_cmd, "watch", "--pid", "4206649"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "wattprint: error: --pid: got 4206649: no such process"
    assert not (wattprint_env / "wattprint.db").exists()
