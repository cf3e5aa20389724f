"""`wattprint run --within/--deadline [--interruptible]`: real subprocesses, real signals, a synthetic
trace that starts now with one-second steps."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.schedule.helpers import write_live_trace
from wattprint.store import open_store

DIRTY, CLEAN, CLEANEST = 500.0, 100.0, 50.0


def runs_in(home: Path) -> list:
    db = home / "wattprint.db"
    if not db.exists():
        return []
    with open_store(f"sqlite:///{db}") as store:
        return store.list()


class Lines:
    """Reads a pipe in the background; wait_for(text) returns the first line containing it."""

    def __init__(self, pipe) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe) -> None:
        for line in pipe:
            self.q.put(line)
        self.q.put("")

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
            if line == "":
                break
        raise AssertionError(f"{text!r} not seen in {self.seen!r}")

    def rest(self) -> str:
        out = []
        while True:
            try:
                line = self.q.get(timeout=5)
            except queue.Empty:
                break
            if line == "":
                break
            out.append(line)
        return "".join(out)


def _popen(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_waits_for_the_clean_window_and_replans_on_a_fresher_forecast(
    wattprint_cmd: list[str], wattprint_env: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "forecast.csv"
    base = write_live_trace(trace, [DIRTY] * 8 + [CLEAN] * 2 + [DIRTY] * 5)
    rec = tmp_path / "rec.json"
    child = "import time; print(time.time(), flush=True)"
    proc = _popen(
        [
            *wattprint_cmd,
            "run",
            "-q",
            "-o",
            str(rec),
            "--within",
            "11s",
            "--duration",
            "1s",
            "--trace",
            str(trace),
            "--",
            sys.executable,
            "-c",
            child,
        ]
    )
    err = Lines(proc.stderr)
    line = err.wait_for("waiting until")
    assert "Ctrl-C cancels" in line and "for a cleaner grid" in line  # one line: stderr is not a terminal
    # a fresher forecast: clean sooner
    write_live_trace(trace, [DIRTY] * 4 + [CLEAN] * 2 + [DIRTY] * 9, lead_s=int(time.time()) - int(base))
    err.wait_for("re-planned")
    out, _ = proc.communicate(timeout=20)
    started = float(out.strip())
    assert proc.returncode == 0
    assert base + 4 - 0.05 <= started < base + 6.5, started - base  # not base + 8: re-planned
    record = json.loads(rec.read_text())
    assert record["status"] == "finished" and runs_in(wattprint_env)[0].run_id == record["run_id"]
    # recorded at the forecast it was planned on, not at the world average (issue 15)
    assert "forecast.csv" in record["intensity_source"], record["intensity_source"]
    assert min(CLEAN, DIRTY) * (1 - 1e-9) <= record["intensity_g_per_kwh"] <= max(CLEAN, DIRTY) * (1 + 1e-9)


def _tree_child(log: Path) -> str:
    """A child and a grandchild, each logging time.time() for 60 x 50 ms of work (3 s running)."""
    loop = (
        f"import time\nwith open({str(log)!r} + '.%s', 'w') as f:\n"
        "    for _ in range(60):\n        f.write(f'{time.time()}\\n'); f.flush(); time.sleep(0.05)\n"
    )
    return (
        "import os, subprocess, sys\n"
        f"code = {loop!r}\n"
        "g = subprocess.Popen([sys.executable, '-c', code % 'grandchild'])\n"
        "print(os.getpid(), g.pid, flush=True)\n"
        "exec(code % 'child')\n"
        "g.wait()\n"
    )


def _gaps(path: Path) -> list[tuple[float, float]]:
    ts = [float(x) for x in path.read_text().split()]
    return [(a, b) for a, b in zip(ts, ts[1:], strict=False) if b - a > 1.0]


def test_interruptible_pauses_and_resumes_the_whole_tree(wattprint_cmd: list[str], tmp_path: Path) -> None:
    trace = tmp_path / "forecast.csv"
    # the cleanest part now (0.5 to 2.5 s of it left when wattprint starts: less than the job), then dirty
    base = write_live_trace(trace, [CLEANEST] * 3 + [DIRTY] * 3 + [CLEAN] * 4 + [DIRTY] * 4, lead_s=0)
    log = tmp_path / "log"
    proc = _popen(
        [
            *wattprint_cmd,
            "run",
            "-q",
            "--within",
            "10s",
            "--duration",
            "3s",
            "--interruptible",
            "--trace",
            str(trace),
            "--",
            sys.executable,
            "-c",
            _tree_child(log),
        ]
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "paused at" in err and "resumed at" in err
    for who in ("child", "grandchild"):
        gaps = _gaps(Path(f"{log}.{who}"))
        assert len(gaps) == 1, (who, gaps)
        ((a, b),) = gaps
        assert base + 2.9 <= a and b >= base + 5.95 and b - a > 2.0, (who, a - base, b - base)


@pytest.mark.parametrize("how", ["kill -9 the job", "SIGTERM to wattprint"])
def test_job_ended_while_paused(wattprint_cmd: list[str], tmp_path: Path, how: str) -> None:
    trace = tmp_path / "forecast.csv"
    write_live_trace(trace, [CLEANEST] * 3 + [DIRTY] * 5 + [CLEAN] * 4 + [DIRTY] * 4, lead_s=0)
    log = tmp_path / "log"
    proc = _popen(
        [
            *wattprint_cmd,
            "run",
            "-q",
            "--within",
            "11s",
            "--duration",
            "3s",
            "--interruptible",
            "--trace",
            str(trace),
            "--",
            sys.executable,
            "-c",
            _tree_child(log),
        ]
    )
    assert proc.stdout is not None
    pid, grandchild = (int(x) for x in proc.stdout.readline().split())
    err = Lines(proc.stderr)
    err.wait_for("paused at")
    time.sleep(0.3)
    assert _state(grandchild) == "T" and _state(pid) == "T"  # the whole tree is stopped
    try:
        if how == "kill -9 the job":
            os.kill(pid, signal.SIGKILL)
            expected = 137
        else:
            proc.send_signal(signal.SIGTERM)
            expected = 143
        proc.wait(timeout=10)
        assert proc.returncode == expected, err.rest()
        time.sleep(0.2)
        assert _state(grandchild) in ("", "Z") or _state(grandchild) != "T"  # not left stopped
    finally:
        for p in (grandchild, pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cancel_while_waiting_runs_nothing(
    wattprint_cmd: list[str], wattprint_env: Path, tmp_path: Path, sig: int, code: int
) -> None:
    trace = tmp_path / "forecast.csv"
    write_live_trace(trace, [DIRTY] * 8 + [CLEAN] * 10)
    marker = tmp_path / "ran"
    proc = _popen(
        [
            *wattprint_cmd,
            "run",
            "--within",
            "15s",
            "--duration",
            "1s",
            "--trace",
            str(trace),
            "--",
            "touch",
            str(marker),
        ]
    )
    err = Lines(proc.stderr)
    err.wait_for("waiting until")
    proc.send_signal(sig)
    proc.wait(timeout=10)
    rest = err.rest()
    assert proc.returncode == code, rest
    assert "nothing was run" in rest and "Traceback" not in rest
    assert not marker.exists() and runs_in(wattprint_env) == []


def test_duration_learned_from_past_runs(wattprint_cmd: list[str], tmp_path: Path) -> None:
    trace = tmp_path / "forecast.csv"
    write_live_trace(trace, [CLEAN] * 20)
    first = subprocess.run([*wattprint_cmd, "run", "-q", "--name", "job", "--", "true"], capture_output=True, text=True)
    assert first.returncode == 0
    proc = subprocess.run(
        [
            *wattprint_cmd,
            "run",
            "-q",
            "--name",
            "job",
            "--within",
            "10s",
            "--trace",
            str(trace),
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and "starting now" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--within", "8h"], "--trace"),
        (["--within", "5s", "--duration", "10s", "--trace", "{trace}"], "--duration"),
        (["--deadline", "2020-01-01T00:00", "--duration", "1s", "--trace", "{trace}"], "--deadline"),
        (["--within", "1d", "--duration", "1s", "--trace", "{trace}"], "--trace"),  # not covered
        (["--within", "soon", "--duration", "1s", "--trace", "{trace}"], "--within"),
        (["--within", "10s", "--trace", "{trace}"], "--duration"),  # no history to learn from
        (
            ["--within", "10s", "--deadline", "2030-01-01", "--duration", "1s", "--trace", "{trace}"],
            "--within",
        ),
        (["--interruptible", "--duration", "1s", "--trace", "{trace}"], "--within"),
        (["--within", "10s", "--duration", "1s", "--min-chunk", "1s", "--trace", "{trace}"], "--min-chunk"),
    ],
)
def test_bad_input_exit_2_nothing_run(
    wattprint_cmd: list[str], wattprint_env: Path, tmp_path: Path, args: list[str], field: str
) -> None:
    trace = tmp_path / "forecast.csv"
    write_live_trace(trace, [CLEAN] * 20)
    marker = tmp_path / "ran"
    args = [a.replace("{trace}", str(trace)) for a in args]
    proc = subprocess.run(
        [*wattprint_cmd, "run", *args, "--", "touch", str(marker)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and field in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not marker.exists() and runs_in(wattprint_env) == []


def test_callback_pauser_for_a_checkpointing_job() -> None:
    import io
    from datetime import datetime, timedelta, timezone

    from wattprint.intensity.base import IntensitySeries
    from wattprint.schedule import CallbackPauser, Executor, StaticForecast

    base = int(time.time())
    times = [datetime.fromtimestamp(base + i, timezone.utc) for i in range(12)]
    values = [CLEANEST] * 2 + [DIRTY] * 2 + [CLEAN] * 3 + [DIRTY] * 5
    series = IntensitySeries.from_points("XX", times, values, "test")
    calls: list[tuple[str, float]] = []
    pauser = CallbackPauser(
        lambda child: calls.append(("pause", time.time())),
        lambda child: calls.append(("resume", time.time())),
    )
    stream = io.StringIO()
    now = datetime.now(timezone.utc)
    ex = Executor(
        StaticForecast(series),
        2.0,
        now + timedelta(seconds=8),
        interruptible=True,
        pauser=pauser,
        stream=stream,
    )
    assert abs((ex.plan.slots[0][0] - now).total_seconds()) < 0.2 and ex.plan.slots[-1][0] == times[4]
    ex.wait_for_start()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    assert ex.supervise(child) == 0
    assert [c for c, _ in calls] == ["pause", "resume"]
    assert abs(calls[0][1] - (base + 2)) < 0.3 and abs(calls[1][1] - (base + 4)) < 0.3
    assert "starting now" in stream.getvalue() and "paused at" in stream.getvalue()


def test_a_trace_that_replaces_the_configured_provider_says_so(
    wattprint_cmd: list[str], wattprint_env: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "forecast.csv"
    write_live_trace(trace, [CLEAN] * 12)
    rec = tmp_path / "rec.json"
    cmd = [*wattprint_cmd, "run", "-o", str(rec), "--region", "DE", "--within", "5s", "--duration", "1s"]
    done = subprocess.run(
        [*cmd, "--trace", str(trace), "--", sys.executable, "-c", "pass"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"WATTPRINT_INTENSITY_PROVIDER": "electricitymaps"},
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"note: the run is charged at --trace {trace}'s intensity, instead of the configured electricitymaps "
        "provider; its region label stays DE" in done.stderr
    )
    record = json.loads(rec.read_text())
    assert record["region"] == "DE" and "forecast.csv" in record["intensity_source"]
    assert record["intensity_g_per_kwh"] == pytest.approx(CLEAN)  # even for a run too short to draw energy
