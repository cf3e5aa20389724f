"""`wattprint node`: one run per child cgroup, on a fake cgroupfs tree and on real cgroups."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.measure.test_cgroup import _start_in, fake_cgroup, remove_cgroup
from wattprint.config import load_settings
from wattprint.errors import WattprintInputError
from wattprint.store import open_store
from wattprint.tracking.node import NodeMonitor


def test_runs_start_for_busy_children_and_stop_when_they_empty(tmp_path: Path) -> None:
    root = fake_cgroup(tmp_path / "slice", 0, [])
    fake_cgroup(root / "job_1", 1_000_000, [os.getpid()])
    fake_cgroup(root / "job_2", 0, [])  # empty: nothing to track yet
    node = NodeMonitor(root, scan_s=60)
    try:
        node.scan()
        assert [p.name for p in node.trackers] == ["job_1"]
        (root / "job_2" / "cgroup.procs").write_text(f"{os.getpid()}\n")  # a process joins
        (root / "job_1" / "cgroup.procs").write_text("")  # job 1 ends
        node.scan()
        finished, live = node.snapshot()
        assert [p.name for p in live] == ["job_2"]
        assert [r.name for r in finished] == ["job_1"] and finished[0].status == "finished"
    finally:
        records = node.stop()
    assert sorted(r.name for r in records) == ["job_1", "job_2"]
    with open_store(load_settings().db_url) as store:
        stored = {r.name: r for r in store.list()}
    assert set(stored) == {"job_1", "job_2"}
    assert stored["job_1"].attribution["cgroup"] == str(root / "job_1")


def test_bad_root_and_scan(wattprint_cmd: list[str]) -> None:
    with pytest.raises(WattprintInputError, match="root: got '/no/such/cgroup'"):
        NodeMonitor("/no/such/cgroup")
    with pytest.raises(WattprintInputError, match="scan_s"):
        NodeMonitor("/", scan_s=0)
    for args, message in (
        (["--root", "/no/such/cgroup"], "--root: got '/no/such/cgroup'"),
        (["--root", "/", "--duration", "nan"], "--duration: nan; accepted: seconds > 0"),
        (["--root", "/", "--prometheus-port", "70000"], "--prometheus-port: got 70000; expected a port 0-65535"),
    ):
        proc = subprocess.run([*wattprint_cmd, "node", *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture
def parent() -> Iterator[Path]:
    from wattprint.measure.cgroup import cgroup2_root

    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 mount here")
    path = root / f"wattprint-node-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
        for name in ("job_a", "job_b"):
            (path / name).mkdir()
    except OSError as exc:
        remove_cgroup(path)
        pytest.skip(f"cannot create cgroups under {root}: {exc.strerror}")
    try:
        yield path
    finally:
        remove_cgroup(path)


@pytest.mark.slow
def test_cli_tracks_each_job_and_serves_their_energy(parent: Path, wattprint_cmd: list[str]) -> None:
    import httpx

    for name, busy, idle in (("job_a", 0.0075, 0.0025), ("job_b", 0.0025, 0.0075)):
        _start_in(parent / name, busy, idle)  # the fixture kills them with the cgroups
    args = ["node", "--root", str(parent), "--duration", "3", "--interval", "0.2", "--scan", "0.5"]
    node = subprocess.Popen([*wattprint_cmd, *args, "--prometheus-port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        assert node.stderr is not None
        port = None
        while port is None:  # a warning may come first
            line = node.stderr.readline()
            assert line, "no metrics address printed"
            port = re.search(r":(\d+)/metrics", line)
        time.sleep(1.5)
        metrics = httpx.get(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10).text
        for name in ("job_a", "job_b"):
            assert re.search(
                rf'wattprint_cgroup_energy_joules_total{{cgroup="{name}",run_id="[0-9a-f]+"}} [0-9.e+-]+', metrics
            )
            assert f'wattprint_cgroup_live{{cgroup="{name}"}} 1.0' in metrics
        _, stderr = node.communicate(timeout=30)
        assert node.returncode == 0, stderr
    finally:
        if node.poll() is None:
            node.kill()
    with open_store(load_settings().db_url) as store:
        runs = {r.name: r for r in store.list()}
    assert set(runs) == {"job_a", "job_b"} and all(r.status == "finished" for r in runs.values())
    ratio = runs["job_a"].energy_kwh.cpu / runs["job_b"].energy_kwh.cpu
    assert ratio == pytest.approx(3.0, rel=0.15)  # their 3:1 CPU split (scans start them up to 0.5 s apart)
