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


def resolve_cgroup(path: str | os.PathLike[str], root: Path | None = None) -> Path:
    """The cgroup's directory: `path` itself when it is one, else `path` under the cgroup v2 mount (the form
    /proc/PID/cgroup and Slurm print, e.g. /system.slice/slurmstepd.scope/job_42)."""
    given = Path(path)
    candidates = [given]
    base = root if root is not None else cgroup2_root()
    if base is not None:
        candidates.append(base / str(given).lstrip("/"))
    for candidate in candidates:
        if (candidate / "cpu.stat").is_file():
            return candidate
    where = f" or under {base}" if base is not None else " (no cgroup v2 mount found)"
    raise WattprintInputError("cgroup", f"got {str(path)!r}: no cgroup v2 with a cpu.stat there{where}")


def _usage_s(text: str) -> float:
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise ValueError("cpu.stat has no usage_usec")


class CgroupTree:
    """A cgroup's CPU time and memory, read the way the monitor reads a process tree."""

    root_pid: int | None = None  # no root process: the record names the cgroup instead

    def __init__(self, path: str | os.PathLike[str], root: Path | None = None) -> None:
        self.path = resolve_cgroup(path, root)
        self._memory = self.path / "memory.current"
        try:
            _usage_s((self.path / "cpu.stat").read_text())
        except (OSError, ValueError) as exc:
            raise WattprintInputError("cgroup", f"cannot read {self.path / 'cpu.stat'}: {exc}") from None

    def pids(self) -> frozenset[int]:
        """Processes in the cgroup and the cgroups below it."""
        found: set[int] = set()
        for procs in self.path.rglob("cgroup.procs"):
            try:
                found.update(int(line) for line in procs.read_text().split())
            except (OSError, ValueError):  # a child cgroup removed while walking
                continue
        return frozenset(found)

    def read_raw(self) -> tuple[str, str | None, frozenset[int] | None]:
        """cpu.stat's text, memory.current's (or None), and the member pids where memory must be summed."""
        stat = (self.path / "cpu.stat").read_text()
        try:
            return stat, self._memory.read_text(), None
        except OSError:  # no memory controller here: the members' resident memory instead
            return stat, None, self.pids()

    def from_raw(self, raw: Any) -> TreeSample:
        stat, memory, pids = raw
        cpu_s = _usage_s(stat)
        if memory is not None:
            return TreeSample(cpu_s, int(memory), self.pids())
        rss = 0
        for pid in pids or ():
            try:
                rss += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
        return TreeSample(cpu_s, rss, frozenset(pids or ()))

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
