"""torch.distributed: one run record for a whole job, with every joule counted once.

    dist.init_process_group("nccl")                 # in every rank, as usual
    with track_distributed("train") as t:
        train()
    # rank 0 has stored ONE record; t.record is that record on every rank

Who measures what, and why nothing is counted twice:
- CPU packages and DRAM belong to the machine. On each node only its leader (the lowest local rank)
  reads them, attributing to the process tree of the local ranks' common parent: torchrun's agent,
  srun's slurmstepd or mp.spawn's parent holds every local rank and its workers. Where the local
  ranks share no such parent, each rank measures its own tree's share instead; CPU-time shares of
  disjoint trees never overlap, so nothing is counted twice either way. With attribution "machine"
  the leader measures the whole machine, once.
- GPUs: each rank measures only the GPU(s) it uses (its CUDA device, matched to NVML by UUID, or
  `gpus=`), so a GPU is measured by one rank.
While the job runs, every rank that measures something checkpoints its part: rank 0 under the job's id,
the others as `<job id>-rank<N>`, each flagged partial, so that a job killed -9 leaves every node's part
(interrupted) and not only rank 0's. At the end the ranks' parts are gathered with `all_gather_object` on
a gloo group that has its own timeout (CPU-only, whatever the training backend), rank 0 writes one record
with `nodes` and `ranks`, and once it is stored the per-rank parts are removed. A node's CPU/RAM energy
is split among its ranks by their CPU time / resident memory, and the record says so. A gathering fault
never reaches the training: each rank then stores its own part, flagged `degraded["distributed"]`.

Nodes are told apart by WATTPRINT_NODE_ID, else SLURMD_NODENAME, else the host name; setting
WATTPRINT_NODE_ID per launch also simulates several nodes on one machine.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import psutil

from wattprint._extras import require
from wattprint.config import Settings, load_settings
from wattprint.errors import TrackerNotStartedError
from wattprint.measure.detect import SourceChoice, sources_for
from wattprint.measure.process import ProcessTree
from wattprint.record import RunRecord, Status
from wattprint.tracking._merge import merge_parts
from wattprint.tracking.launch import in_process_group, launched_rank
from wattprint.tracking.spool import spool
from wattprint.tracking.tracker import Tracker, exit_status

__all__ = [
    "DistributedTracker",
    "in_process_group",
    "launched_rank",
    "merge_parts",
    "node_id",
    "part_id",
    "plan_measurement",
    "track_distributed",
]

log = logging.getLogger("wattprint")
F = TypeVar("F", bound=Callable[..., Any])

NODE_ID_ENV = "WATTPRINT_NODE_ID"
DEFAULT_GATHER_TIMEOUT_S = 120.0
SLURM_VARS = ("SLURM_JOB_ID", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_NTASKS")
# on rank 0's checkpoints while the job runs; dropped once the parts are gathered
PARTIAL_NOTE = (
    "partial: rank 0's part only, until the ranks' results are gathered at the end (the other "
    "measuring ranks checkpoint theirs as <job id>-rank<N>)"
)
# on the other measuring ranks' checkpoints; those records are removed once the merged one is stored
PART_NOTE = "partial: rank {rank}'s part of job {job_id} (node {node}), until rank 0 stores the merged record"


def part_id(job_id: str, rank: int) -> str:
    """The run id under which rank `rank` (> 0) checkpoints its part of job `job_id`."""
    return f"{job_id}-rank{rank}"


def node_id(env: dict[str, str] | None = None) -> str:
    """This machine's id in the job: WATTPRINT_NODE_ID, else SLURMD_NODENAME, else the host name."""
    env = dict(os.environ) if env is None else env
    return env.get(NODE_ID_ENV) or env.get("SLURMD_NODENAME") or socket.gethostname()


def _launcher(env: dict[str, str]) -> str:
    if "TORCHELASTIC_RUN_ID" in env:
        return "torchrun"
    if "SLURM_PROCID" in env:
        return "slurm"
    return "unknown"


def _local_info() -> dict[str, Any]:
    """What this rank tells the others at start: where it runs and who its parent is."""
    env = dict(os.environ)
    local = env.get("LOCAL_RANK") or env.get("SLURM_LOCALID")
    proc = psutil.Process()
    return {
        "node_id": node_id(env),
        "host": socket.gethostname(),
        "local_rank": int(local) if local and local.isdigit() else None,
        "pid": proc.pid,
        "ppid": proc.ppid(),
        "launcher": _launcher(env),
        "slurm": {k.lower(): env[k] for k in SLURM_VARS if k in env},
    }


def plan_measurement(peers: Sequence[dict[str, Any]], attribution: str = "process") -> dict[str, Any]:
    """Who measures what, from every rank's start-up info (indexed by rank).

    Returns {"nodes": {node_id: {"leader", "ranks", "mode", "tree_pid"}}, "roles": {rank: role}} where
    role is "node" (CPU/RAM of the node + own GPUs), "gpu" (own GPUs only) or "own" (own tree's share
    of CPU/RAM + own GPUs).
    """
    by_node: dict[str, list[dict[str, Any]]] = {}
    for peer in sorted(peers, key=lambda p: p["rank"]):
        by_node.setdefault(peer["node_id"], []).append(peer)
    nodes: dict[str, Any] = {}
    roles: dict[int, str] = {}
    # a parent process holding ranks of two nodes (nodes simulated on one machine) is no node's launcher
    parent_nodes: dict[tuple[Any, int], set[str]] = {}
    for peer in peers:
        parent_nodes.setdefault((peer.get("host"), peer["ppid"]), set()).add(peer["node_id"])
    for nid, members in by_node.items():
        members.sort(key=lambda p: (p["local_rank"] if p["local_rank"] is not None else 1 << 30, p["rank"]))
        leader = members[0]
        parents = {(p.get("host"), p["ppid"]) for p in members}
        parent = next(iter(parents))
        if attribution == "machine":
            mode, tree_pid = "machine", None
        elif len(members) == 1:
            mode, tree_pid = "leader", leader["pid"]
        elif len(parents) == 1 and parent[1] > 1 and len(parent_nodes[parent]) == 1:
            mode, tree_pid = "launcher", parent[1]
        else:
            mode, tree_pid = "each-rank", None
        nodes[nid] = {
            "leader": leader["rank"],
            "ranks": sorted(p["rank"] for p in members),
            "mode": mode,
            "tree_pid": tree_pid,
        }
        for p in members:
            roles[p["rank"]] = "own" if mode == "each-rank" else ("node" if p is leader else "gpu")
    return {"nodes": nodes, "roles": roles}


class _NoStore:
    """Ranks other than 0 keep their record in memory until it is gathered."""

    def save(self, record: RunRecord, checkpoint_s: float | None = None) -> None:
        return None


def _dist_if_initialised() -> Any:
    """torch.distributed when a process group is up, else None (then the tracker is a plain one)."""
    require("torch", extra="torch", feature="distributed tracking")
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return None
    return dist


class DistributedTracker:
    """A tracker in every rank of a torch.distributed job; rank 0 stores one record for the job."""

    def __init__(
        self,
        name: str = "run",
        *,
        settings: Settings | None = None,
        store: Any = None,
        gpus: Sequence[int] | None = None,
        gather_timeout_s: float = DEFAULT_GATHER_TIMEOUT_S,
        nvml_module: Any = None,
        tracked_by: str = "track_distributed",
        **overrides: Any,
    ) -> None:
        """`gpus`: NVML indices of the GPUs this rank uses (default: its current CUDA device, if any).

        `nvml_module` replaces pynvml (a stand-in for machines without NVIDIA GPUs, as in detect_sources).
        `tracked_by` says on the record which call chose distributed tracking.
        """
        self.name = name
        self.tracked_by = tracked_by
        self.settings = settings if settings is not None else load_settings(**overrides)
        self._store = store
        self._gpus = list(gpus) if gpus is not None else None
        self.gather_timeout_s = gather_timeout_s
        self._nvml_module = nvml_module
        self.tracker: Tracker | None = None
        self._record: RunRecord | None = None
        self.rank, self.world_size = 0, 1
        self.job_id: str | None = None
        self.role = "plain"
        self.plan: dict[str, Any] = {}
        self._dist: Any = None
        self._group: Any = None
        self._gpu_rule = "none"
        self._own_tree: ProcessTree | None = None
        self._cpu_s0 = 0.0
        self._part_id: str | None = None  # where this rank (> 0) checkpoints its part, if it measures anything
        self._owns_store = store is None  # a store it opens itself is closed when the job ends
        self._done = False

    @property
    def record(self) -> RunRecord | None:
        """The job's record once stopped (the same on every rank); while running, this rank's own record."""
        if self._record is not None:
            return self._record
        return self.tracker.record if self.tracker is not None else None

    @record.setter
    def record(self, value: RunRecord | None) -> None:
        self._record = value

    # -- start -----------------------------------------------------------------------------------
    def start(self) -> DistributedTracker:
        """Agree on the plan with the other ranks (a collective: every rank must call it), then measure."""
        if self.tracker is not None:
            return self
        dist = _dist_if_initialised()
        if dist is None:
            self.tracker = Tracker(self.name, settings=self.settings, store=self._store).start()
            return self
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        try:
            self._group = dist.new_group(backend="gloo", timeout=timedelta(seconds=self.gather_timeout_s))
        except Exception as exc:  # gloo missing: the default group, with its own timeout
            log.warning("wattprint: no gloo group for gathering (%s); using the default group", exc)
            self._group = None
        self._dist = dist
        info = _local_info() | {"rank": self.rank, "job_id": uuid.uuid4().hex if self.rank == 0 else None}
        try:
            peers = self._all_gather(info)
        except Exception as exc:  # a failed collective must not stop training: this rank tracks alone
            log.error("wattprint: ranks could not agree at start (%s); tracking this rank alone", exc)
            self._dist = None
            self.tracker = Tracker(self.name, settings=self.settings, store=self._store)
            self.tracker.flag("distributed", f"start gather failed: {type(exc).__name__}: {exc}")
            self.tracker.start()
            return self
        self.job_id = peers[0]["job_id"]
        self.plan = plan_measurement(peers, self.settings.attribution)
        self.plan["peers"] = peers
        self.role = self.plan["roles"][self.rank]
        node = self.plan["nodes"][info["node_id"]]
        self._own_tree = ProcessTree(os.getpid(), refresh_every=1)  # every sample rescans: only 2 samples
        self._cpu_s0 = self._own_tree.sample().cpu_s
        pid = node["tree_pid"] if self.role == "node" else None
        sources = self._sources()
        # every measuring rank checkpoints its part, flagged partial: a killed job leaves each node's part
        # (interrupted) rather than nothing; the merged record replaces them at the end
        store: Any = self._store
        if self.rank == 0:
            run_id, note = self.job_id, PARTIAL_NOTE
        elif sources.sources:
            run_id = self._part_id = part_id(str(self.job_id), self.rank)
            note = PART_NOTE.format(rank=self.rank, job_id=self.job_id, node=info["node_id"])
        else:  # measures nothing: its part (windows, metrics) waits in memory for the gather
            store, run_id, note = _NoStore(), None, None
        self.tracker = Tracker(self.name, pid=pid, settings=self.settings, store=store, sources=sources, run_id=run_id)
        self.tracker.spool_unsaved = False  # a part spooled under its id would later overwrite the merged record
        if note is not None:
            self.tracker.flag("distributed", note)
        self.tracker.start()
        if self.tracker.record is not None:
            self.tracker.record.distributed = {
                "job_id": self.job_id,
                "world_size": self.world_size,
                "rank": self.rank,
                "role": self.role,
            }
        return self

    def _all_gather(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self._dist.all_gather_object(out, obj, group=self._group)
        return out

    def _sources(self) -> SourceChoice:
        """This rank's sources: CPU/RAM only where the plan says so, GPUs only those it uses."""
        hint = None
        if self.settings.detect_cloud and self.settings.instance_type is None:  # asked only where the user said so
            from wattprint.intensity.location import cloud_metadata

            facts = cloud_metadata()
            hint = facts.instance_type if facts is not None else None
        choice = sources_for(self.settings, instance_type_hint=hint, nvml_module=self._nvml_module)
        machine = self.role in ("node", "own")
        nvml_gpus: list[dict[str, Any]] = []
        keep = []
        for source in choice.sources:
            if source.name == "nvml":
                nvml_gpus = source.gpus()  # type: ignore[attr-defined]
            elif machine:
                keep.append(source)
                continue
            source.close()
        measurement = dict(choice.measurement)
        methods = dict(choice.methods)
        hardware = {k: v for k, v in choice.hardware.items() if k != "gpus"}
        if not machine:
            leader = self.plan["nodes"][self.plan["peers"][self.rank]["node_id"]]["leader"]
            for component in ("cpu", "ram"):
                measurement[component] = None
                methods[component] = {"method": None, "source": None, "detail": f"measured by rank {leader}"}
        measurement["gpu"] = None
        indices = self._gpu_indices(nvml_gpus)
        if indices:
            from wattprint.measure.nvml import NvmlSource

            try:
                gpu = NvmlSource(self._nvml_module, gpu_indices=indices)
                keep.append(gpu)
                measurement["gpu"] = "nvml"
                hardware["gpus"] = gpu.gpus()
                methods["gpu"] = {
                    "method": "measured",
                    "source": "nvml",
                    "detail": f"GPU(s) {indices} of this rank ({self._gpu_rule})",
                }
            except Exception as exc:  # NVML unusable: this rank measures no GPU; tracking goes on
                methods["gpu"] = {"method": None, "source": None, "detail": f"NVML unusable: {exc}"}
        elif nvml_gpus:
            methods["gpu"] = {"method": None, "source": None, "detail": f"this rank uses no GPU ({self._gpu_rule})"}
        return SourceChoice(keep, measurement, methods, hardware)

    def _gpu_indices(self, nvml_gpus: list[dict[str, Any]]) -> list[int]:
        """NVML indices of the GPUs this rank uses: `gpus=`, else its CUDA device (by UUID, else by index)."""
        if self._gpus is not None:
            self._gpu_rule = "given by gpus="
            return self._gpus
        torch = sys.modules.get("torch")
        if not nvml_gpus or torch is None:
            return []
        try:
            if torch.cuda.is_initialized():
                device, self._gpu_rule = torch.cuda.current_device(), "current CUDA device"
            else:
                local = self.plan["peers"][self.rank]["local_rank"]
                count = torch.cuda.device_count()
                if local is None or count == 0:
                    return []
                device, self._gpu_rule = local % count, "assumed cuda:LOCAL_RANK (CUDA not initialised yet)"
            wanted = str(torch.cuda.get_device_properties(device).uuid).lower()
            for gpu in nvml_gpus:
                if wanted and str(gpu.get("uuid", "")).lower().endswith(wanted):
                    return [int(gpu["index"])]
            visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
            if device < len(visible) and visible[device].strip().isdigit():
                return [int(visible[device])]
            return [device]
        except Exception as exc:  # CUDA queries fail in many ways: no GPU measured; tracking goes on
            log.warning("wattprint: could not tell this rank's GPU (%s); no GPU measured by it", exc)
            self._gpu_rule = f"unknown ({exc})"
            return []

    # -- during the run --------------------------------------------------------------------------
    def log(self, **metrics: Any) -> None:
        if self.tracker is not None:
            self.tracker.log(**metrics)

    def begin_window(self, name: str) -> None:
        """Open a window in this rank; windows of the same name are summed over ranks in the record."""
        if self.tracker is None:
            raise TrackerNotStartedError()
        self.tracker.begin_window(name)

    def end_window(self, name: str, *, record: bool = True) -> Any:
        """Close a window in this rank; `record=False` keeps it off the record (frequent windows)."""
        if self.tracker is None:
            raise TrackerNotStartedError()
        return self.tracker.end_window(name, record=record)

    @property
    def monitor(self) -> Any:
        """This rank's monitor (its windows), None before start()."""
        return self.tracker.monitor if self.tracker is not None else None

    def predict(self, total_epochs: int, prefix: str = "epoch", windows: Sequence[str] | None = None) -> Any:
        """The whole run predicted from this rank's epoch windows so far (see `Tracker.predict`)."""
        if self.tracker is None:
            raise TrackerNotStartedError()
        return self.tracker.predict(total_epochs, prefix, windows)

    def energy_so_far_kwh(self) -> dict[str, float]:
        """This rank's attributed energy since start (its part only: the job's is known after the gather)."""
        if self.tracker is None:
            raise TrackerNotStartedError()
        return self.tracker.energy_so_far_kwh()

    def window_co2e_kg(self, window: Any) -> tuple[float, float]:
        """Operational and embodied CO2e of one of this rank's windows (see `Tracker.window_co2e_kg`)."""
        if self.tracker is None:
            raise TrackerNotStartedError()
        return self.tracker.window_co2e_kg(window)

    def flag(self, key: str, reason: str) -> None:
        """Mark a part of this rank's run as degraded; it reaches the job record as "rank N: key"."""
        if self.tracker is None:
            raise TrackerNotStartedError()
        self.tracker.flag(key, reason)

    # -- the end ---------------------------------------------------------------------------------
    def stop(self, status: Status = "finished", exit_code: int | None = None) -> RunRecord:
        """Stop this rank, gather every rank's part (a collective) and, on rank 0, store the job record."""
        if self.tracker is None:
            raise TrackerNotStartedError()
        if self._done and self._record is not None:
            return self._record
        self._done = True
        try:
            return self._stop(status, exit_code)
        finally:
            if self._owns_store and self._store is not None:
                with contextlib.suppress(Exception):  # closing must not raise into the training either
                    self._store.close()
                self._store = None

    def _stop(self, status: Status, exit_code: int | None) -> RunRecord:
        assert self.tracker is not None
        local = self.tracker.stop(status, exit_code)
        if self._dist is None:
            self.record = local
            return local
        if str(local.degraded.get("distributed", "")).startswith("partial: "):  # about checkpoints only
            del local.degraded["distributed"]
        try:
            part = self._part(local)
        except Exception as exc:  # never into the training loop
            part = {"rank": self.rank, "error": f"{type(exc).__name__}: {exc}"}
        try:
            parts = self._all_gather(part)
        except Exception as exc:  # never into the training loop: the local record is kept
            return self._gather_failed(exc, local)
        try:
            self.record = merge_parts(parts, job_id=str(self.job_id), name=self.name, plan=self.plan)
            self.record.distributed["tracked_by"] = self.tracked_by
        except Exception as exc:  # a bad part must not lose the run: the local record is kept
            log.error("wattprint: merging the ranks' records failed: %s", exc)
            return self._gather_failed(exc, local)
        saved = self._save(self.record) if self.rank == 0 else False
        try:  # the parts go only once the merged record is stored: a fault in between keeps them
            saved = bool(self._all_gather(saved)[0])
        except Exception as exc:  # unconfirmed: the parts stay stored; never into training
            log.warning(
                "wattprint: ranks could not confirm the merged record (%s); parts kept as %s-rank<N>", exc, self.job_id
            )
            saved = False
        if saved and self._part_id is not None:
            self._drop_part()
        return self.record

    def _part(self, local: RunRecord) -> dict[str, Any]:
        assert self._own_tree is not None
        sample = self._own_tree.sample()
        close = getattr(self._own_tree, "close", None)
        if close is not None:
            close()
        peer = self.plan["peers"][self.rank]
        return {
            "rank": self.rank,
            "node_id": peer["node_id"],
            "host": peer["host"],
            "local_rank": peer["local_rank"],
            "pid": peer["pid"],
            "role": self.role,
            "cpu_s": max(0.0, sample.cpu_s - self._cpu_s0),
            "rss_bytes": sample.rss_bytes,
            "gpu_rule": self._gpu_rule,
            "record": local.to_json_dict(),
        }

    def _open_store(self) -> Any:
        if self._store is None:
            from wattprint.store import open_store

            self._store = open_store(self.settings.db_url, host=self.settings.host)
        return self._store

    def _save(self, record: RunRecord) -> bool:
        try:
            self._open_store().save(record, checkpoint_s=self.settings.checkpoint)
            return True
        except Exception as exc:  # a store fault must not reach training: the record waits in the spool
            record.degraded.setdefault("store", f"{type(exc).__name__}: {exc}")
            where = spool(record, self.settings.home) if self._owns_store else None
            log.error(
                "wattprint: run store unavailable (%s); record %s",
                exc,
                f"kept in {where} for the next tracked run" if where else "kept in memory only",
            )
            return False

    def _drop_part(self) -> None:
        """Remove this rank's checkpointed part: the merged record, stored by rank 0, holds it now."""
        try:
            self._open_store().delete([str(self._part_id)])
        except Exception as exc:  # a leftover part is flagged partial; never an error in the training
            log.warning("wattprint: could not remove part %s after the merge: %s", self._part_id, exc)

    def _gather_failed(self, exc: BaseException, local: RunRecord) -> RunRecord:
        """Each rank keeps its own part: rank 0 under the job id, the others as <job id>-rank<N>."""
        reason = (
            f"gathering the ranks' results failed ({type(exc).__name__}: {exc}); this record is rank "
            f"{self.rank}'s part only ({self.role}); other parts are stored as {self.job_id}-rank<N>"
        )
        log.error("wattprint: %s", reason)
        assert self.tracker is not None
        self.tracker.flag("distributed", reason)  # `local` is the stopped tracker's record: flagged there
        run_id = str(self.job_id) if self.rank == 0 else f"{self.job_id}-rank{self.rank}"
        record = local.model_copy(
            update={
                "run_id": run_id,
                "distributed": {
                    "job_id": self.job_id,
                    "world_size": self.world_size,
                    "rank": self.rank,
                    "role": self.role,
                    "gather": "failed",
                },
            }
        )
        measured_something = self.role in ("node", "own") or record.energy_kwh.total > 0
        if self.rank == 0 or measured_something:
            self._save(record)
        self.record = record
        return record

    def __enter__(self) -> DistributedTracker:
        return self.start()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if not self._done:
            self.stop(*exit_status(exc_type, exc))

    def __call__(self, func: F) -> F:
        """As a decorator (every rank decorates the same function): each call is one job record."""

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with DistributedTracker(
                self.name,
                settings=self.settings,
                store=self._store,
                gpus=self._gpus,
                gather_timeout_s=self.gather_timeout_s,
                nvml_module=self._nvml_module,
                tracked_by=self.tracked_by,
            ):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def track_distributed(name: str = "run", **kwargs: Any) -> DistributedTracker:
    """Track a torch.distributed job: `with track_distributed("train") as t:` in every rank."""
    return DistributedTracker(name, **kwargs)
