"""torch.distributed tracking: real torchrun launches with the gloo backend, several processes on this machine.

No double counting is checked against an independent probe: every rank also runs its own CPU model
over its whole life, so the sum of those rank-local machine readings is ~4x the machine's energy,
while the job record must report the machine's CPU once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.net import free_port
from wattprint._extras import MissingExtraError
from wattprint.errors import StoreUnavailableError
from wattprint.record import RunRecord
from wattprint.store import open_store
from wattprint.tracking.distributed import merge_parts, node_id, part_id, plan_measurement, track_distributed

pytest.importorskip("torch")

JOB = r"""
import json, os, sys, time
import torch, torch.distributed as dist
torch.set_num_threads(1)
from wattprint.tracking.distributed import track_distributed
from wattprint.config import load_settings
from wattprint.measure.cpu_model import CpuModelSource
from wattprint.measure.detect import sources_for

if "SLURM_PROCID" in os.environ:  # launched the way srun does: no RANK/WORLD_SIZE, Slurm's variables
    dist.init_process_group("gloo", rank=int(os.environ["SLURM_PROCID"]), world_size=int(os.environ["SLURM_NTASKS"]))
else:
    dist.init_process_group("gloo")
rank = dist.get_rank()
out = sys.argv[1]
kw = {}
if os.environ.get("FAKE_GPU_W"):  # NVIDIA GPUs faked at NVML's interface: every rank sees all of them
    from tests.measure.fake_nvml import FakeGpu, FakeNvml
    watts = [float(w) for w in os.environ["FAKE_GPU_W"].split(",")]
    gpus = [FakeGpu(uuid=f"GPU-{i}", energy_mj=None, power_mw=int(w * 1000)) for i, w in enumerate(watts)]
    kw = {"nvml_module": FakeNvml(gpus), "gpus": [int(os.environ["LOCAL_RANK"])]}
# an independent rank-local reading of the whole machine's CPU, by the model a tracker here uses (a VM's or TDP)
probe = next(s for s in sources_for(load_settings()).sources if isinstance(s, CpuModelSource))
if os.environ.get("TRACK_API") == "track":  # what users write first: the plain API, in every rank
    import wattprint
    tracker = wattprint.track("ddp-test", gather_timeout_s=float(os.environ.get("GATHER_S", "60")), **kw)
else:
    tracker = track_distributed("ddp-test", gather_timeout_s=float(os.environ.get("GATHER_S", "60")), **kw)
with tracker as t:
    t.begin_window("work")
    x = torch.randn(128, 128)
    end = time.monotonic() + float(os.environ.get("WORK_S", "1.0"))
    while time.monotonic() < end:
        x = torch.tanh(x @ x)
    dist.all_reduce(torch.ones(1))
    t.end_window("work")
    t.log(loss=float(x.abs().mean()))
    time.sleep(float(os.environ.get("LINGER_S", "0")))
    if rank == 1 and os.environ.get("STALL_RANK1"):
        time.sleep(float(os.environ["STALL_RANK1"]))  # rank 1 misses the final gather
probe_kwh = probe.read().energy_j["model:cpu"] / 3.6e6
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump({"rank": rank, "pid": os.getpid(), "ppid": os.getppid(), "probe_cpu_kwh": probe_kwh,
               "record": t.record.to_json_dict()}, f)
print(f"rank {rank} trained on", flush=True)
if not os.environ.get("STALL_RANK1"):
    dist.destroy_process_group()
else:  # the group is broken (a rank missed the gather): torch's teardown of it at exit may abort (SIGABRT)
    os._exit(0)
"""


STEPD = r"""
import os, subprocess, sys
node, tasks, world, job, out = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
procs = []
for local in range(tasks):
    env = dict(os.environ, SLURM_JOB_ID="4242", SLURM_PROCID=str(node * tasks + local), SLURM_LOCALID=str(local),
               SLURM_NODEID=str(node), SLURM_NTASKS=world, SLURMD_NODENAME=f"sim-node{node}")
    procs.append(subprocess.Popen([sys.executable, job, out], env=env))
sys.exit(max(p.wait() for p in procs))
"""
REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ) | {"WATTPRINT_INTERVAL": "0.2", "OMP_NUM_THREADS": "1", "PYTHONPATH": path} | extra


def _torchrun(tmp_path: Path, args: list[str], env: dict[str, str], new_session: bool = False) -> subprocess.Popen[str]:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    (tmp_path / "out").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", *args, str(script), str(tmp_path / "out")]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=new_session
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output[-3000:]
    return output


def _outputs(tmp_path: Path, world: int) -> list[dict[str, Any]]:
    return [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in range(world)]


def _assert_adds_up(record: RunRecord) -> None:
    total = record.energy_kwh.model_dump()
    for rows in (record.nodes, record.ranks):
        for key in total:
            assert sum(row["energy_kwh"][key] for row in rows) == pytest.approx(total[key], rel=1e-9, abs=1e-15)
    assert total["total"] == pytest.approx(total["cpu"] + total["gpu"] + total["ram"])


# -- without a process group, and without torch ------------------------------------------------------
def test_without_process_group_it_is_a_plain_tracker(wattprint_env: Path) -> None:
    with track_distributed("solo", interval=0.05) as t:
        sum(i * i for i in range(200_000))
    assert t.record is not None and t.record.status == "finished"
    assert t.record.nodes == [] and t.record.distributed == {}
    assert t.rank == 0 and t.role == "plain"
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        assert [r.run_id for r in store.list()] == [t.record.run_id]


def test_without_torch_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "torch.distributed", None)
    with pytest.raises(MissingExtraError, match=r"wattprint\[torch\]"):
        track_distributed("x").start()


def test_node_id_precedence() -> None:
    assert node_id({"WATTPRINT_NODE_ID": "a", "SLURMD_NODENAME": "b"}) == "a"
    assert node_id({"SLURMD_NODENAME": "b"}) == "b"
    assert node_id({}) == socket.gethostname()


# -- the plan: who measures what ----------------------------------------------------------------------
def _peer(rank: int, node: str, local: int | None, ppid: int) -> dict[str, Any]:
    return {"rank": rank, "node_id": node, "local_rank": local, "pid": 1000 + rank, "ppid": ppid}


def test_plan_one_leader_per_node_on_the_common_parent() -> None:
    peers = [_peer(0, "a", 0, 50), _peer(1, "a", 1, 50), _peer(2, "b", 1, 60), _peer(3, "b", 0, 60)]
    plan = plan_measurement(peers)
    assert plan["nodes"]["a"] == {"leader": 0, "ranks": [0, 1], "mode": "launcher", "tree_pid": 50}
    assert plan["nodes"]["b"]["leader"] == 3  # the lowest local rank, not the lowest global rank
    assert plan["roles"] == {0: "node", 1: "gpu", 3: "node", 2: "gpu"}


def test_plan_without_a_common_parent_each_rank_measures_its_own_share() -> None:
    plan = plan_measurement([_peer(0, "a", 0, 50), _peer(1, "a", 1, 51)])
    assert plan["nodes"]["a"]["mode"] == "each-rank"
    assert set(plan["roles"].values()) == {"own"}
    orphans = plan_measurement([_peer(0, "a", 0, 1), _peer(1, "a", 1, 1)])  # parent is init: not a launcher
    assert orphans["nodes"]["a"]["mode"] == "each-rank"
    machine = plan_measurement([_peer(0, "a", 0, 1), _peer(1, "a", 1, 1)], attribution="machine")
    assert machine["nodes"]["a"]["mode"] == "machine" and machine["roles"] == {0: "node", 1: "gpu"}


def test_plan_a_parent_of_ranks_on_two_nodes_is_no_launcher() -> None:
    peers = [_peer(0, "a", 0, 50), _peer(1, "a", 1, 50), _peer(2, "b", 0, 50), _peer(3, "b", 1, 50)]
    plan = plan_measurement(peers)  # one process started all four "nodes": its tree spans both
    assert {n["mode"] for n in plan["nodes"].values()} == {"each-rank"}


def test_merge_splits_the_node_energy_by_cpu_time_and_memory() -> None:
    def part(rank: int, role: str, cpu: float, ram: float, gpu: float, cpu_s: float, rss: int) -> dict[str, Any]:
        record = RunRecord(
            run_id=f"r{rank}",
            name="job",
            started_at="2024-05-01T12:00:00Z",
            ended_at="2024-05-01T12:01:00Z",
            duration_s=60.0,
            status="finished",
            energy_kwh={"total": cpu + ram + gpu, "cpu": cpu, "ram": ram, "gpu": gpu},
            machine_energy_kwh={"total": 10.0 + gpu, "cpu": 9.0, "ram": 1.0, "gpu": gpu},
            measurement={"cpu": "model" if role == "node" else None, "gpu": "nvml", "ram": None},
            intensity_g_per_kwh=100.0,
            facility_energy_kwh=cpu + ram + gpu,
            co2e_kg={"operational": (cpu + ram + gpu) / 10, "embodied": 0.0, "total": (cpu + ram + gpu) / 10},
            hardware={"gpus": [{"index": rank, "name": "NVIDIA H100 80GB HBM3"}]},
        )
        return {
            "rank": rank,
            "node_id": "a",
            "host": "h",
            "local_rank": rank,
            "pid": rank,
            "role": role,
            "cpu_s": cpu_s,
            "rss_bytes": rss,
            "gpu_rule": "given",
            "record": record.to_json_dict(),
        }

    parts = [part(0, "node", 4.0, 1.0, 2.0, 1.0, 3), part(1, "gpu", 0.0, 0.0, 5.0, 3.0, 1)]
    plan = plan_measurement([_peer(0, "a", 0, 9), _peer(1, "a", 1, 9)])
    rec = merge_parts(parts, job_id="job", name="job", plan=plan)
    by_rank = {row["rank"]: row["energy_kwh"] for row in rec.ranks}
    assert by_rank[0] == pytest.approx({"cpu": 1.0, "ram": 0.75, "gpu": 2.0, "total": 3.75})
    assert by_rank[1] == pytest.approx({"cpu": 3.0, "ram": 0.25, "gpu": 5.0, "total": 8.25})
    assert rec.energy_kwh.total == pytest.approx(12.0)  # 4 + 1 + 2 + 5: each measured joule once
    assert rec.machine_energy_kwh.cpu == pytest.approx(9.0)  # one machine, not two
    assert rec.co2e_kg.operational == pytest.approx(1.2)
    assert rec.co2e_kg.embodied > 0  # two H100s and a share of the host, counted once for the node
    _assert_adds_up(rec)


# -- real torchrun ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_torchrun_four_ranks_one_record_cpu_counted_once(tmp_path: Path, wattprint_env: Path) -> None:
    _finish(_torchrun(tmp_path, ["--standalone", "--nproc_per_node=4"], _env(WORK_S="1.0")))
    outs = _outputs(tmp_path, 4)
    record = RunRecord.model_validate(outs[0]["record"])
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        stored = store.list()
    assert len(stored) == 1, [(r.run_id, r.name) for r in stored]  # ONE record for the job
    assert stored[0].to_json_dict() == record.to_json_dict()
    assert all(o["record"]["run_id"] == record.run_id for o in outs)  # every rank sees the job record
    # rank 0's checkpoints were flagged partial; the gathered record is whole, and says nothing of it
    assert not any("partial" in v for v in record.degraded.values()) and record.distributed["gather"] == "ok"

    assert record.distributed["world_size"] == 4 and record.distributed["launcher"] == "torchrun"
    assert [n["ranks"] for n in record.nodes] == [[0, 1, 2, 3]]
    node = record.nodes[0]
    assert node["mode"] == "launcher" and node["tracked_pid"] == outs[0]["ppid"]  # torchrun's agent
    assert {o["ppid"] for o in outs} == {node["tracked_pid"]}
    assert sorted(r["rank"] for r in record.ranks) == [0, 1, 2, 3]
    assert [r["role"] for r in sorted(record.ranks, key=lambda r: r["rank"])] == ["node", "gpu", "gpu", "gpu"]
    _assert_adds_up(record)

    # CPU counted once: the job's machine CPU matches ONE rank-local probe, not the sum of the four
    probes = [o["probe_cpu_kwh"] for o in outs]
    # (the probes' windows are the ranks' own, a little apart: on a busy 2-core machine they differ by a third)
    assert record.machine_energy_kwh.cpu == pytest.approx(max(probes), rel=0.5)
    assert record.machine_energy_kwh.cpu < 0.5 * sum(probes)
    assert 0 < record.energy_kwh.cpu <= record.machine_energy_kwh.cpu * (1 + 1e-9)
    assert record.measurement.cpu == "model" and record.methods["cpu"]["method"] == "estimated"
    # each rank did CPU work and got a share of the node's CPU energy in proportion to it
    assert all(r["cpu_s"] > 0.05 and r["energy_kwh"]["cpu"] > 0 for r in record.ranks)
    work = [w for w in record.windows if w["name"] == "work"]
    assert len(work) == 1 and work[0]["ranks"] == 4
    assert record.metrics["loss"] >= 0


@pytest.mark.slow
def test_two_simulated_nodes_of_two_ranks(tmp_path: Path, wattprint_env: Path) -> None:
    port = str(free_port())
    launches = [
        _torchrun(
            tmp_path,
            [
                "--nnodes=2",
                f"--node_rank={i}",
                "--nproc_per_node=2",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
            ],
            _env(WORK_S="0.6", WATTPRINT_NODE_ID=f"node-{i}"),
        )
        for i in range(2)
    ]
    for proc in launches:
        _finish(proc)
    outs = _outputs(tmp_path, 4)
    record = RunRecord.model_validate(outs[0]["record"])
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        assert [r.run_id for r in store.list()] == [record.run_id]
    assert [(n["node_id"], n["ranks"], n["leader_rank"]) for n in record.nodes] == [
        ("node-0", [0, 1], 0),
        ("node-1", [2, 3], 2),
    ]
    assert {r["rank"]: r["node_id"] for r in record.ranks} == {0: "node-0", 1: "node-0", 2: "node-1", 3: "node-1"}
    # each node's leader measured its own launcher's tree: two different torchrun agents
    assert record.nodes[0]["tracked_pid"] != record.nodes[1]["tracked_pid"]
    assert {o["ppid"] for o in outs[:2]} == {record.nodes[0]["tracked_pid"]}
    assert all(n["energy_kwh"]["cpu"] > 0 for n in record.nodes)
    _assert_adds_up(record)


@pytest.mark.slow
def test_a_rank_missing_the_gather_does_not_crash_training(tmp_path: Path, wattprint_env: Path) -> None:
    proc = _torchrun(
        tmp_path, ["--standalone", "--nproc_per_node=2"], _env(WORK_S="0.3", GATHER_S="3", STALL_RANK1="12")
    )
    output = _finish(proc)
    assert "rank 0 trained on" in output and "rank 1 trained on" in output
    outs = _outputs(tmp_path, 2)
    record = RunRecord.model_validate(outs[0]["record"])
    assert "gathering the ranks' results failed" in record.degraded["distributed"]
    assert record.distributed["gather"] == "failed" and record.nodes == []
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        stored = store.get(record.run_id)
    assert stored.status == "finished" and "distributed" in stored.degraded
    assert stored.energy_kwh.cpu > 0  # rank 0 led the node: its CPU measurement is kept, not lost


@pytest.mark.slow
def test_slurm_variables_two_nodes_each_with_its_own_stepd(tmp_path: Path, wattprint_env: Path) -> None:
    """As srun starts tasks: one slurmstepd per node, ranks from SLURM_PROCID/SLURM_LOCALID/SLURM_NTASKS."""
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "stepd.py").write_text(STEPD)
    (tmp_path / "out").mkdir()
    env = _env(WORK_S="0.5", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    stepds = [
        subprocess.Popen(
            [
                sys.executable,
                str(tmp_path / "stepd.py"),
                str(node),
                "2",
                "4",
                str(tmp_path / "job.py"),
                str(tmp_path / "out"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in range(2)
    ]
    for proc in stepds:
        _finish(proc)
    outs = _outputs(tmp_path, 4)
    record = RunRecord.model_validate(outs[0]["record"])
    assert record.distributed["launcher"] == "slurm"
    assert [(n["node_id"], n["ranks"], n["mode"]) for n in record.nodes] == [
        ("sim-node0", [0, 1], "launcher"),
        ("sim-node1", [2, 3], "launcher"),
    ]
    assert [n["tracked_pid"] for n in record.nodes] == [p.pid for p in stepds]  # each node's own stepd
    assert {r["rank"]: r["local_rank"] for r in record.ranks} == {0: 0, 1: 1, 2: 0, 3: 1}
    assert [n["leader_rank"] for n in record.nodes] == [0, 2]
    _assert_adds_up(record)
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        assert len(store.list()) == 1


@pytest.mark.slow
def test_each_gpu_is_measured_by_the_rank_that_uses_it(tmp_path: Path, wattprint_env: Path) -> None:
    watts = [100.0, 200.0, 300.0, 400.0]
    env = _env(WORK_S="1.0", FAKE_GPU_W=",".join(str(w) for w in watts))
    _finish(_torchrun(tmp_path, ["--standalone", "--nproc_per_node=4"], env))
    record = RunRecord.model_validate(_outputs(tmp_path, 4)[0]["record"])
    ranks = sorted(record.ranks, key=lambda r: r["rank"])
    for row, w in zip(ranks, watts, strict=True):
        assert row["energy_kwh"]["gpu"] == pytest.approx(w * row["duration_s"] / 3.6e6, rel=0.1)
    # four GPUs measured once each: every rank counting the node's four GPUs would make this ~4x
    expected = sum(w * r["duration_s"] for w, r in zip(watts, ranks, strict=True)) / 3.6e6
    assert record.energy_kwh.gpu == pytest.approx(expected, rel=0.1)
    assert record.machine_energy_kwh.gpu == pytest.approx(expected, rel=0.1)
    assert record.measurement.gpu == "nvml" and record.methods["gpu"]["method"] == "measured"
    assert sorted((g["rank"], g["index"]) for g in record.hardware["gpus"]) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert record.co2e_kg.embodied > 0
    _assert_adds_up(record)


@pytest.mark.slow
def test_a_killed_job_leaves_rank_0s_checkpoint_marked_partial(tmp_path: Path, wattprint_env: Path) -> None:
    proc = _torchrun(
        tmp_path, ["--standalone", "--nproc_per_node=2"], _env(WORK_S="0.2", LINGER_S="60", WATTPRINT_CHECKPOINT="0.2")
    )
    url = f"sqlite:///{wattprint_env / 'wattprint.db'}"
    running: list[RunRecord] = []
    try:
        deadline = time.monotonic() + 120
        while not running and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            if (wattprint_env / "wattprint.db").exists():
                with open_store(url) as store:
                    running = [r for r in store.list() if r.status == "running" and r.energy_kwh.cpu > 0]
        assert running, "rank 0 never checkpointed the job"
        assert running[0].degraded["distributed"].startswith("partial: rank 0's part only")
        assert running[0].distributed == {"job_id": running[0].run_id, "world_size": 2, "rank": 0, "role": "node"}
        proc.send_signal(signal.SIGTERM)  # as a scheduler ends a job: torchrun passes it to the ranks
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    with open_store(url) as store:
        (stored,) = store.list()
    assert stored.run_id == running[0].run_id == stored.distributed["job_id"]
    assert stored.status == "interrupted" and "partial" in stored.degraded["distributed"]
    assert stored.energy_kwh.cpu >= running[0].energy_kwh.cpu


@pytest.mark.slow
def test_a_job_killed_9_on_every_node_leaves_each_nodes_part(tmp_path: Path, wattprint_env: Path) -> None:
    """Two simulated nodes, one rank each, every process killed -9 (as a lost allocation): rank 0's part
    under the job id and node-1's part as <job>-rank1 are both stored, interrupted and flagged partial."""
    port = str(free_port())
    launches = [
        _torchrun(
            tmp_path,
            [
                "--nnodes=2",
                f"--node_rank={i}",
                "--nproc_per_node=1",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
            ],
            _env(WORK_S="0.2", LINGER_S="90", WATTPRINT_CHECKPOINT="0.2", WATTPRINT_NODE_ID=f"node-{i}"),
            new_session=True,
        )
        for i in range(2)
    ]
    url = f"sqlite:///{wattprint_env / 'wattprint.db'}"
    running: dict[str, RunRecord] = {}
    try:
        deadline = time.monotonic() + 120
        while len(running) < 2 and time.monotonic() < deadline and all(p.poll() is None for p in launches):
            time.sleep(0.3)
            if (wattprint_env / "wattprint.db").exists():
                try:
                    with open_store(url, read_only=True) as store:
                        running = {r.run_id: r for r in store.list() if r.status == "running" and r.energy_kwh.cpu > 0}
                except StoreUnavailableError:  # the file exists but its first writer has not made the tables yet
                    continue
        assert len(running) == 2, f"both nodes should checkpoint while the job runs: {sorted(running)}"
    finally:
        # every process of both "nodes" at once (torchrun starts its ranks in sessions of their own): nothing
        # gets to run its cleanup
        tree = [psutil.Process(p.pid) for p in launches]
        tree += [child for parent in list(tree) for child in parent.children(recursive=True)]
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        for proc in launches:
            proc.communicate(timeout=60)
    job_id = min(running, key=len)
    assert set(running) == {job_id, part_id(job_id, 1)}
    with open_store(url) as store:  # the owners are gone: the store judges both runs interrupted
        stored = {r.run_id: r for r in store.list()}
    assert set(stored) == {job_id, part_id(job_id, 1)}
    head, part = stored[job_id], stored[part_id(job_id, 1)]
    assert head.status == part.status == "interrupted"
    assert head.degraded["distributed"].startswith("partial: rank 0's part only")
    assert (
        part.degraded["distributed"] == f"partial: rank 1's part of job {job_id} (node node-1), until rank 0 "
        "stores the merged record"
    )
    assert part.distributed == {"job_id": job_id, "world_size": 2, "rank": 1, "role": "node"}
    assert part.energy_kwh.cpu >= running[part.run_id].energy_kwh.cpu > 0


@pytest.mark.slow
def test_wattprint_track_in_every_rank_gives_one_record_for_the_job(tmp_path: Path, wattprint_env: Path) -> None:
    _finish(_torchrun(tmp_path, ["--standalone", "--nproc_per_node=2"], _env(WORK_S="0.5", TRACK_API="track")))
    outs = _outputs(tmp_path, 2)
    record = RunRecord.model_validate(outs[0]["record"])
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        assert [r.run_id for r in store.list()] == [record.run_id]  # one record, not one per rank
    assert record.distributed["tracked_by"] == "wattprint.track (process group found)"
    assert sorted(r["rank"] for r in record.ranks) == [0, 1] and [n["ranks"] for n in record.nodes] == [[0, 1]]
    assert all(o["record"]["run_id"] == record.run_id for o in outs)
    _assert_adds_up(record)


def test_track_outside_a_group_is_plain_and_flags_a_launched_rank(
    wattprint_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wattprint
    from wattprint.tracking.tracker import Tracker

    with wattprint.track("alone", interval=0.05) as t:  # no launcher, no group: a plain run, nothing said
        pass
    assert isinstance(t, Tracker) and "distributed" not in t.record.degraded
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")  # torchrun started this rank, but no process group is up
    with wattprint.track("early", interval=0.05) as t:
        pass
    assert t.record.degraded["distributed"].startswith(
        "launched as rank 1 of 4, tracked alone (no torch.distributed process group was up when tracking started)"
    )
    with wattprint.track("opted-out", interval=0.05, distributed=False) as t:
        pass
    assert isinstance(t, Tracker) and "distributed" not in t.record.degraded

    @wattprint.track("decorated", interval=0.05)
    def work() -> int:
        return 7

    assert work() == 7  # decided at the call: still no group, so a plain flagged run
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        (decorated,) = store.list(name="decorated")
    assert decorated.status == "finished" and decorated.degraded["distributed"].startswith("launched as rank 1")


DECORATED_JOB = r"""
import json, os, sys
import torch.distributed as dist
import wattprint

dist.init_process_group("gloo")

@wattprint.track("decorated", interval=0.1)  # decorated once the group is up: a job record per call
def step() -> int:
    dist.all_reduce(__import__("torch").ones(1))
    return dist.get_rank()

print(json.dumps({"ranks": [step(), step()]}), flush=True)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_a_function_decorated_by_wattprint_track_in_every_rank(tmp_path: Path, wattprint_env: Path) -> None:
    script = tmp_path / "decorated.py"
    script.write_text(DECORATED_JOB)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        stored = store.list(name="decorated")
    assert len(stored) == 2  # two calls, one record each for the whole job (not one per rank)
    assert all(sorted(r["rank"] for r in rec.ranks) == [0, 1] for rec in stored)
    assert {rec.distributed["tracked_by"] for rec in stored} == {"wattprint.track (process group found)"}
