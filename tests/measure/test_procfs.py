"""Kept-open /proc readers agree with psutil, survive odd process names and never misread a gone process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from wattprint.measure.process import ProcessTree
from wattprint.measure.procfs import MachineCpu, ProcFile, parse_machine_cpu, parse_process

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")


def test_machine_cpu_matches_psutil() -> None:
    read = MachineCpu()
    busy, total = read()
    times = psutil.cpu_times()
    ps_total = sum(times) - times.guest - times.guest_nice - times.steal
    ps_busy = ps_total - times.idle - times.iowait
    # same counters read a moment apart: within a few ticks per CPU
    slack = 0.05 * (psutil.cpu_count() or 1)
    assert abs(total - ps_total) < slack and abs(busy - ps_busy) < slack
    read.close()


def test_parse_machine_cpu_hand_computed() -> None:
    tick = os.sysconf("SC_CLK_TCK")
    line = b"cpu  100 10 50 1000 20 5 5 7 30 0\ncpu0 1 2 3\n"
    busy, total = parse_machine_cpu(line)
    assert total == pytest.approx((100 + 10 + 50 + 1000 + 20 + 5 + 5) / tick)  # no steal, no guest
    assert busy == pytest.approx((100 + 10 + 50 + 5 + 5) / tick)


def test_process_stat_matches_psutil_and_is_reread() -> None:
    me = ProcFile(f"/proc/{os.getpid()}/stat")
    cpu_before, rss = parse_process(me.read())
    t0 = time.process_time()
    while time.process_time() - t0 < 0.2:
        pass
    cpu_after, _ = parse_process(me.read())
    times = psutil.Process().cpu_times()
    assert cpu_after - cpu_before >= 0.1  # the same descriptor gives fresh values
    assert abs(cpu_after - (times.user + times.system + times.children_user + times.children_system)) < 0.05
    assert abs(rss - psutil.Process().memory_info().rss) < 16 * 1024 * 1024
    me.close()


def test_odd_process_name_is_parsed() -> None:
    code = "open('/proc/self/comm', 'w').write('a) b (c)'); import time; time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).name() != "a) b (c)" and time.monotonic() < deadline:
            time.sleep(0.02)
        cpu_s, rss = parse_process(ProcFile(f"/proc/{child.pid}/stat").read())
        assert cpu_s >= 0 and rss > 1024 * 1024
    finally:
        child.kill()
        child.wait()


def test_gone_process_is_not_read_even_if_its_pid_returns() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    file = ProcFile(f"/proc/{child.pid}/stat")
    file.read()
    child.kill()
    child.wait()  # reaped: the pid is free for reuse, the descriptor still names the old process
    with pytest.raises(OSError):
        file.read()
    file.close()


def test_tree_reads_children_through_kept_files_and_closes_them() -> None:
    spin = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.6: pass"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        tree = ProcessTree(os.getpid(), refresh_every=1)
        first = tree.sample()
        assert child.pid in first.pids
        deadline = time.monotonic() + 20
        second = tree.sample()
        while second.cpu_s - first.cpu_s < 0.2 and time.monotonic() < deadline:  # a loaded machine is slower
            time.sleep(0.1)
            second = tree.sample()
        assert second.cpu_s - first.cpu_s >= 0.2  # the busy child is counted
        fds = len(os.listdir("/proc/self/fd"))
        tree.close()
        assert len(os.listdir("/proc/self/fd")) <= fds - 1  # the child's /proc file closed (this process uses times())
    finally:
        child.wait()


def test_descendants_from_children_files_match_psutil() -> None:
    from wattprint.measure.procfs import children_files_supported, descendants

    if not children_files_supported():
        pytest.skip("kernel without /proc/<pid>/task/<tid>/children")
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "print('ready', flush=True)\ntime.sleep(30)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        ours = sorted(descendants(os.getpid()))
        theirs = sorted(p.pid for p in psutil.Process().children(recursive=True))
        assert ours == theirs and parent.pid in ours and len(ours) >= 2
    finally:
        for proc in psutil.Process(parent.pid).children(recursive=True):
            proc.kill()
        parent.kill()
        parent.wait()


def test_own_process_uses_times_and_matches_proc() -> None:
    tree = ProcessTree(os.getpid())
    sample = tree.sample()
    cpu_s, rss = parse_process(ProcFile(f"/proc/{os.getpid()}/stat").read())
    assert abs(sample.cpu_s - cpu_s) < 0.05
    assert abs(sample.rss_bytes - rss) < 16 * 1024 * 1024
    assert os.getpid() not in tree._files  # no /proc file kept for this process


def test_own_children_exist_peeks_without_reaping() -> None:
    """Checked in a fresh interpreter (this one may have children of other tests), from another thread too."""
    code = (
        "import subprocess, sys, threading, time\n"
        "from wattprint.measure.process import own_children_exist as peek\n"
        "seen = [peek()]\n"
        "child = subprocess.Popen(['sh', '-c', 'sleep 0.3; exit 3'])\n"
        "out = []\n"
        "t = threading.Thread(target=lambda: out.append(peek())); t.start(); t.join()\n"
        "seen += out\n"
        "time.sleep(1.0)\n"
        "seen.append(peek())  # exited, not reaped: still a child, and still the caller's to reap\n"
        "seen.append(child.wait())\n"
        "seen.append(peek())\n"
        "print(seen)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[False, True, True, 3, False]"


def test_tree_of_this_process_finds_a_child_started_later_and_reads_rss_from_statm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wattprint.measure.procfs import parse_statm_rss

    rss = psutil.Process().memory_info().rss
    monkeypatch.setattr(psutil.Process, "memory_info", lambda self: 1 / 0)  # statm alone must give the RSS
    tree = ProcessTree(os.getpid(), refresh_every=1)
    tree.sample()
    assert tree._statm  # kept open
    assert abs(tree._own_rss - rss) < 16 * 1024 * 1024  # type: ignore[operator]
    assert abs(tree._own_rss - parse_statm_rss(Path("/proc/self/statm").read_bytes())) < 1024 * 1024  # type: ignore[operator]
    monkeypatch.undo()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in tree.sample().pids
    finally:
        child.kill()
        child.wait()
    tree.close()
    fds = len(os.listdir("/proc/self/fd"))
    tree.sample()  # after close(): answered through psutil, nothing reopened
    assert tree._statm is False and len(os.listdir("/proc/self/fd")) == fds
