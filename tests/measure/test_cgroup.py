"""Attribution to a cgroup v2: a fake cgroupfs tree for the parsing, real cgroups (where this machine lets us
create them) for the 3:1 split and `wattprint watch --cgroup`."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wattprint.errors import WattprintInputError
from wattprint.measure.cgroup import CgroupTree, cgroup2_root, resolve_cgroup


def fake_cgroup(base: Path, usage_usec: int, procs: list[int], memory: int | None = None) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec {usage_usec}\nsystem_usec 0\n")
    (base / "cgroup.procs").write_text("".join(f"{p}\n" for p in procs))
    if memory is not None:
        (base / "memory.current").write_text(f"{memory}\n")
    return base


def test_cpu_time_and_memory_from_the_files(tmp_path: Path) -> None:
    job = fake_cgroup(tmp_path / "job_42", 2_500_000, [11, 12], memory=3 * 2**30)
    fake_cgroup(job / "step_0", 0, [13])
    tree = CgroupTree(job)
    sample = tree.sample()
    assert sample.cpu_s == 2.5 and sample.rss_bytes == 3 * 2**30
    assert sample.pids == frozenset({11, 12, 13})  # the subtree's processes
    (job / "cpu.stat").write_text("usage_usec 4000000\n")
    assert tree.sample().cpu_s == 4.0
    assert tree.root_pid is None


def test_without_the_memory_controller_the_members_rss_is_summed(tmp_path: Path) -> None:
    import psutil

    me = os.getpid()
    tree = CgroupTree(fake_cgroup(tmp_path / "c", 1000, [me, 2**22 + 99]))  # a pid gone: skipped
    assert tree.sample().rss_bytes == pytest.approx(psutil.Process(me).memory_info().rss, rel=0.2)


def test_paths_resolve_under_the_mount_and_bad_ones_name_the_field(tmp_path: Path) -> None:
    fake_cgroup(tmp_path / "system.slice" / "job", 0, [])
    assert resolve_cgroup("/system.slice/job", root=tmp_path) == tmp_path / "system.slice" / "job"
    with pytest.raises(WattprintInputError, match="cgroup: got '/nope'"):
        resolve_cgroup("/nope", root=tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "cpu.stat").write_text("nr_periods 0\n")
    with pytest.raises(WattprintInputError, match="usage_usec"):
        CgroupTree(tmp_path / "broken")


def test_the_mount_is_found_in_the_mount_table(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n")
    assert cgroup2_root(str(mounts)) == Path("/sys/fs/cgroup/unified")
    mounts.write_text("proc /proc proc rw 0 0\n")
    assert cgroup2_root(str(mounts)) is None


# -- real cgroups ------------------------------------------------------------------------------------
DUTY = (
    "import time\n"
    "busy, idle = {busy}, {idle}\n"
    "end = time.time() + 30\n"
    "while time.time() < end:\n"
    "    t = time.perf_counter()\n"
    "    while time.perf_counter() - t < busy: pass\n"
    "    time.sleep(idle)\n"
)


def remove_cgroup(path: Path) -> None:
    """Kill what is left in the cgroup (and below), then remove it, deepest first."""
    for procs in path.rglob("cgroup.procs"):
        for pid in procs.read_text().split() if procs.is_file() else ():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
    for directory in sorted((p for p in [path, *path.rglob("*")] if p.is_dir()), key=lambda p: -len(p.parts)):
        for _ in range(50):  # killed processes leave the cgroup a moment later
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)


@pytest.fixture
def cgroups() -> Iterator[list[Path]]:
    """Two fresh cgroups under the v2 mount; skipped where this machine does not let us create them."""
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 mount here")
    made = []
    try:
        for i in range(2):
            path = root / f"wattprint-test-{uuid.uuid4().hex[:8]}-{i}"
            path.mkdir()
            made.append(path)
    except OSError as exc:
        for path in made:
            path.rmdir()
        pytest.skip(f"cannot create a cgroup under {root}: {exc.strerror}")
    try:
        yield made
    finally:
        for path in made:
            remove_cgroup(path)


def _start_in(cgroup: Path, busy_s: float, idle_s: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", DUTY.format(busy=busy_s, idle=idle_s)])
    try:
        (cgroup / "cgroup.procs").write_text(f"{proc.pid}\n")
    except OSError:
        proc.kill()
        proc.wait()
        raise
    return proc


def _usage_usec(cgroup: Path) -> int:
    for line in (cgroup / "cpu.stat").read_text().splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1])
    raise AssertionError(f"no usage_usec in {cgroup}/cpu.stat")


@pytest.mark.slow
def test_two_cgroups_with_a_3_to_1_cpu_split_get_a_3_to_1_energy_split(cgroups: list[Path]) -> None:
    from wattprint.tracking.tracker import Tracker

    procs = []
    try:
        procs += [_start_in(cgroups[0], 0.0075, 0.0025), _start_in(cgroups[1], 0.0025, 0.0075)]
        time.sleep(0.3)
        trackers = [Tracker(f"cg{i}", cgroup=path, interval=0.2) for i, path in enumerate(cgroups)]
        before = [_usage_usec(path) for path in cgroups]
        for tracker in trackers:
            tracker.start()
        time.sleep(3.0)
        records = [tracker.stop() for tracker in trackers]
        used = [_usage_usec(path) - start for path, start in zip(cgroups, before, strict=True)]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    heavy, light = (r.energy_kwh.cpu for r in records)
    # the split the kernel really gave (3:1 on a quiet machine; less where other work competes for the cores)
    cpu_split = used[0] / used[1]
    assert cpu_split > 1.5, used
    assert heavy / light == pytest.approx(cpu_split, rel=0.10)
    assert records[0].attribution["cgroup"] == str(cgroups[0]) and records[0].attribution["tracked_pid"] is None


def test_watch_a_cgroup_until_it_is_empty(cgroups: list[Path], wattprint_cmd: list[str], tmp_path: Path) -> None:
    job = _start_in(cgroups[0], 0.01, 0.0)  # busy until killed below, or the fixture kills it
    threading.Timer(2.0, job.kill).start()  # the cgroup empties after 2 s: watch then ends
    out = tmp_path / "record.json"
    watcher = subprocess.run(
        [*wattprint_cmd, "watch", "--cgroup", str(cgroups[0]), "-o", str(out), "--interval", "0.2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    job.wait()
    assert watcher.returncode == 0, watcher.stderr
    record = json.loads(out.read_text())
    assert record["attribution"]["cgroup"] == str(cgroups[0])
    assert record["attribution"]["watch_end"] == "the cgroup is empty"
    assert record["energy_kwh"]["cpu"] > 0 and record["name"] == cgroups[0].name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--pid: give one of --pid PID or --cgroup PATH"),
        (["--pid", "1", "--cgroup", "/x"], "--pid: give one of --pid PID or --cgroup PATH"),
        (["--cgroup", "/no/such/cgroup"], "--cgroup: got '/no/such/cgroup': no cgroup v2"),
        (["--cgroup", ""], "--cgroup: empty"),
    ],
)
def test_watch_bad_targets(wattprint_cmd: list[str], args: list[str], message: str) -> None:
    proc = subprocess.run([*wattprint_cmd, "watch", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_cgroup_that_vanishes_mid_run_keeps_its_last_figures(tmp_path: Path) -> None:
    import shutil

    path = fake_cgroup(tmp_path / "container", 3_000_000, [os.getpid()], memory=2**20)
    tree = CgroupTree(path)
    assert tree.sample().cpu_s == 3.0
    shutil.rmtree(path)  # the container ended
    gone = tree.sample()
    assert gone.cpu_s == 3.0 and gone.rss_bytes == 0 and gone.pids == frozenset()
    assert tree.is_empty()


def test_a_cgroup_run_is_not_charged_gpus_it_was_not_seen_on(tmp_path: Path) -> None:
    from tests.measure.fake_nvml import FakeGpu, FakeNvml
    from wattprint.measure.detect import detect_sources
    from wattprint.tracking.tracker import Tracker

    choice = detect_sources(powercap_root="/nonexistent", nvml_module=FakeNvml([FakeGpu(power_mw=200_000)]))
    path = fake_cgroup(tmp_path / "cpu_only_job", 0, [os.getpid()])
    tracker = Tracker("cpu-only", cgroup=path, sources=choice, interval=0.1)
    tracker.start()
    time.sleep(0.5)
    record = tracker.stop()
    assert record.energy_kwh.gpu == 0.0 and record.attribution["gpus"] == []
    assert "not seen" in record.attribution["gpu_rule"]
    assert record.measurement.gpu == "nvml"  # the GPU is measured; it is simply not this cgroup's
