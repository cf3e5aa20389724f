"""Attribution to a cgroup (v2) instead of a process tree: a Slurm job, a Docker container, a Kubernetes pod.

On Linux every one of these is a cgroup, and the kernel keeps its CPU time (`cpu.stat`: `usage_usec`, the
whole subtree, exited processes included) and, with the memory controller, its memory (`memory.current`).
`CgroupTree` gives the monitor the same figures a `ProcessTree` does, so a run charged to a cgroup gets the
share of CPU energy equal to the cgroup's share of the machine's busy CPU time in each interval, and the
share of RAM energy equal to its memory (without the memory controller: the resident memory of the
processes in it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil

from wattprint.errors import WattprintInputError
from wattprint.measure.process import TreeSample

MOUNTS = "/proc/self/mounts"
REFRESH_EVERY = 10  # reads between walks of the subtree for its member pids


def cgroup2_root(mounts: str = MOUNTS) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup on most systems), or None."""
    try:
        lines = Path(mounts).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) > 2 and parts[2] == "cgroup2":
            return Path(parts[1])
    return None


def resolve_cgroup(path: str | os.PathLike[str], root: Path | None = None, field: str = "cgroup") -> Path:
    """The cgroup's directory, absolute: `path` itself when it is one, else `path` under the cgroup v2 mount
    (the form /proc/PID/cgroup and Slurm print, e.g. /system.slice/slurmstepd.scope/job_42)."""
    if not str(path).strip():
        raise WattprintInputError(field, "empty; expected a cgroup directory or a path such as /system.slice/x")
    given = Path(path)
    candidates = [given]
    base = root if root is not None else cgroup2_root()
    if base is not None:
        candidates.append(base / str(given).lstrip("/"))
    for candidate in candidates:
        if (candidate / "cpu.stat").is_file():
            return candidate.absolute()
    if (given / "cpuacct.usage").is_file() or (given / "tasks").is_file():
        where = f" (v2 is mounted at {base})" if base is not None else ""
        raise WattprintInputError(field, f"got {str(path)!r}: a cgroup v1 directory; wattprint reads cgroup v2{where}")
    where = f" or under {base}" if base is not None else " (no cgroup v2 mount found)"
    raise WattprintInputError(field, f"got {str(path)!r}: no cgroup v2 with a cpu.stat there{where}")


def _usage_s(text: str) -> float:
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise ValueError("cpu.stat has no usage_usec")


class CgroupTree:
    """A cgroup's CPU time and memory, read the way the monitor reads a process tree."""

    root_pid: int | None = None  # no root process: the record names the cgroup instead

    def __init__(self, path: str | os.PathLike[str], root: Path | None = None, field: str = "cgroup") -> None:
        self.path = resolve_cgroup(path, root, field)
        self._memory = self.path / "memory.current"
        try:
            self._last_stat = (self.path / "cpu.stat").read_text()
            _usage_s(self._last_stat)
        except (OSError, ValueError) as exc:
            raise WattprintInputError(field, f"cannot read {self.path / 'cpu.stat'}: {exc}") from None
        self._reads = 0
        self._pids: frozenset[int] = frozenset()

    def pids(self) -> frozenset[int]:
        """Processes in the cgroup and the cgroups below it."""
        found: set[int] = set()
        for procs in self.path.rglob("cgroup.procs"):
            try:
                found.update(int(line) for line in procs.read_text().split())
            except (OSError, ValueError):  # a child cgroup removed while walking
                continue
        return frozenset(found)

    def read_raw(self) -> tuple[str, str | None, frozenset[int]]:
        """cpu.stat's text, memory.current's (None without the memory controller: the members' resident
        memory is summed instead), and the member pids (re-listed every REFRESH_EVERY reads: a walk of the
        subtree). A cgroup removed under us (a container that ended) reads as its last CPU time and no
        memory, so the sample stands and the cgroup's share falls to zero."""
        if self._reads % REFRESH_EVERY == 0:
            self._pids = self.pids()
        self._reads += 1
        try:
            stat = (self.path / "cpu.stat").read_text()
        except OSError:
            return self._last_stat, "0", frozenset()
        self._last_stat = stat
        try:
            return stat, self._memory.read_text(), self._pids
        except OSError:
            return stat, None, self._pids

    def from_raw(self, raw: Any) -> TreeSample:
        stat, memory, pids = raw
        cpu_s = _usage_s(stat)
        if memory is not None:
            return TreeSample(cpu_s, int(memory), pids)
        rss = 0
        for pid in pids:
            try:
                rss += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
        return TreeSample(cpu_s, rss, pids)

    def sample(self) -> TreeSample:
        return self.from_raw(self.read_raw())

    def is_empty(self) -> bool:
        """No process left in the cgroup (or the cgroup is gone): what `watch --cgroup` waits for."""
        if not self.path.is_dir():
            return True
        try:
            for line in (self.path / "cgroup.events").read_text().splitlines():
                if line.startswith("populated "):
                    return line.split()[1] == "0"
        except OSError:
            pass
        return not self.pids()

    def note_root_reaped(self, total_cpu_s: float) -> None:
        """Nothing to add: cpu.stat keeps the CPU time of exited processes."""

    def close(self) -> None:
        """Nothing kept open."""
