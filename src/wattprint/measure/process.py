"""The tracked process tree: its CPU time and memory, for per-process attribution.

CPU time of the tree = for each live member, user + system + the CPU time of its children that it
has already reaped. A child that exits moves its time into its parent's "children" counters, so
short-lived children are counted even when they start and end between two samples. Membership is
refreshed every few samples (a full /proc scan costs far more than reading known members).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, NamedTuple, Protocol

import psutil

from wattprint.measure.procfs import (
    ProcFile,
    children_files_supported,
    descendants,
    parse_process,
    parse_statm_rss,
)

# waitid(2) flags: report a child that exited without reaping it, never block, and (Linux) count every
# kind of child, including those started with clone() and a non-SIGCHLD exit signal
_PEEK_CHILDREN = (
    getattr(os, "WEXITED", 0)
    | getattr(os, "WNOHANG", 0)
    | getattr(os, "WNOWAIT", 0)
    | (0x40000000 if sys.platform.startswith("linux") else 0)  # __WALL
)


def own_children_exist() -> bool:
    """Whether this process has a child, running or exited, without waiting for or reaping any.

    One waitid(2) call, where listing descendants reads a file per thread; a process with no child has
    no descendant either. True where waitid is missing, so that callers scan instead.
    """
    if not (hasattr(os, "waitid") and hasattr(os, "WNOWAIT") and hasattr(os, "WNOHANG")):
        return True  # without both flags a peek could reap the caller's child or block
    try:
        os.waitid(os.P_ALL, 0, _PEEK_CHILDREN)
    except ChildProcessError:
        return False
    except OSError:
        return True
    return True


REFRESH_EVERY = 15  # samples between scans for new descendants (their CPU time is never lost, only seen later)
EARLY_REFRESHES = frozenset({1, 2, 3, 5, 8})  # launchers (sh -c, torchrun) start the real work right away


def check_readable_pid(pid: int, field: str = "pid") -> None:
    """`pid` is a live process whose CPU time this user can read: what tracking another process needs.
    Raises WattprintInputError naming `field` otherwise."""
    from wattprint.errors import WattprintInputError

    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise WattprintInputError(field, f"got {pid!r}; expected a process id")
    try:
        psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        raise WattprintInputError(field, f"got {pid}: no such process") from None
    except psutil.AccessDenied:
        raise WattprintInputError(
            field, f"got {pid}: its CPU time cannot be read (another user's process?); run as its owner or root"
        ) from None


class TreeSample(NamedTuple):
    """The tree at one sample: CPU seconds (reaped children included), resident bytes, member pids."""

    cpu_s: float
    rss_bytes: int
    pids: frozenset[int]


class TreeLike(Protocol):
    """What the monitor reads to attribute energy: a process tree, or a cgroup (`measure.cgroup`)."""

    @property
    def root_pid(self) -> int | None: ...

    def read_raw(self) -> Any: ...

    def from_raw(self, raw: Any) -> TreeSample: ...

    def note_root_reaped(self, total_cpu_s: float) -> None: ...

    def close(self) -> None: ...


class ProcessTree:
    """A root process and its descendants, sampled cheaply."""

    def __init__(self, root_pid: int | None = None, refresh_every: int = REFRESH_EVERY) -> None:
        self.root_pid = root_pid if root_pid is not None else os.getpid()
        self._root = psutil.Process(self.root_pid)
        self._members: dict[int, psutil.Process] = {self.root_pid: self._root}
        self._files: dict[int, ProcFile | None] = {}  # pid -> kept-open /proc/<pid>/stat (None: use psutil)
        self._refresh_every = refresh_every
        self._count = 0
        self._max_cpu_s = 0.0
        self._fast_scan = children_files_supported()
        self._own_pid = os.getpid()
        self._own_rss: int | None = None
        self._statm: ProcFile | None | bool = None  # this process's /proc/<pid>/statm once opened; False: none

    def _children(self) -> dict[int, psutil.Process | None]:
        """Descendants now, by pid (a Process where psutil built one)."""
        if self.root_pid == self._own_pid == os.getpid() and not own_children_exist():
            return {}
        if self._fast_scan:
            return dict.fromkeys(descendants(self.root_pid))
        try:
            return {child.pid: child for child in self._root.children(recursive=True)}
        except psutil.Error:
            return {}

    def _refresh(self) -> None:
        members = {self.root_pid: self._root}
        for pid, child in self._children().items():
            # keep the existing Process object: psutil uses it to guard against pid reuse
            proc = self._members.get(pid) or child
            if proc is None:
                try:
                    proc = psutil.Process(pid)
                except psutil.Error:  # exited since the scan
                    continue
            members[pid] = proc
        self._members = members
        if self._own_pid in members:  # memory changes slowly: this process's RSS is re-read at refreshes only
            self._own_rss = self._read_own_rss(members[self._own_pid])
        for pid in set(self._files) - set(members):
            file = self._files.pop(pid)
            if file is not None:
                file.close()

    def sample(self) -> TreeSample:
        """The tree's CPU time and memory now."""
        return self.from_raw(self.read_raw())

    def read_raw(self) -> list[tuple[int, Any]]:
        """Each live member's counters as read, unparsed: the part of a sample that must happen on time.

        The sampler calls this every second and parses in batches (`from_raw`), because parsing with
        the cold caches of a thread that wakes once a second costs several times the reading.
        """
        count = self._count
        self._count = count + 1
        if count % self._refresh_every == 0 or count in EARLY_REFRESHES:
            self._refresh()
        raw: list[tuple[int, Any]] = []
        for pid, proc in self._members.items():
            if pid == self._own_pid:
                # this process: times(2) is one cheap syscall where /proc/self/stat costs ~0.1 ms cold
                raw.append((pid, os.times()))
                continue
            try:
                raw.append((pid, self._read_other(pid, proc)))
            except (psutil.Error, OSError):
                continue
        return raw

    def from_raw(self, raw: list[tuple[int, Any]]) -> TreeSample:
        """Parse what `read_raw` read; call in the order read (the tree's CPU time never goes backwards)."""
        cpu_s, rss, alive = 0.0, 0, []
        for pid, value in raw:
            try:
                if type(value) is bytes:
                    member_cpu_s, member_rss = parse_process(value)
                elif type(value) is os.times_result:  # this process, with its RSS as of the last refresh
                    member_cpu_s, member_rss = value[0] + value[1] + value[2] + value[3], self._own_rss or 0
                else:
                    member_cpu_s, member_rss = value
            except (ValueError, IndexError):
                continue
            cpu_s += member_cpu_s
            rss += member_rss
            alive.append(pid)
        # a member that exits before its parent reaps it drops out for a moment: never go backwards
        self._max_cpu_s = max(self._max_cpu_s, cpu_s)
        return TreeSample(self._max_cpu_s, rss, frozenset(alive))

    def _read_own_rss(self, proc: psutil.Process) -> int | None:
        """This process's resident bytes: a kept-open /proc/<pid>/statm, psutil where there is none."""
        if self._statm is None:
            try:
                self._statm = ProcFile(f"/proc/{self._own_pid}/statm")
            except OSError:
                self._statm = False
        if isinstance(self._statm, ProcFile):
            with contextlib.suppress(OSError, ValueError, IndexError):
                return parse_statm_rss(self._statm.read())
        with contextlib.suppress(psutil.Error):
            return int(proc.memory_info().rss)
        return None

    def note_root_reaped(self, total_cpu_s: float) -> None:
        """The root exited and its parent reaped it: `total_cpu_s` (its rusage, descendants included) is the
        tree's final CPU time, part of which /proc can no longer show."""
        self._max_cpu_s = max(self._max_cpu_s, total_cpu_s)

    def _read_other(self, pid: int, proc: psutil.Process) -> Any:
        """Another member's counters: /proc/<pid>/stat bytes, or psutil's figures where /proc is missing."""
        if pid not in self._files:
            try:
                # opened after psutil found the member, so it is bound to that process, not a reused pid
                self._files[pid] = ProcFile(f"/proc/{pid}/stat") if proc.is_running() else None
            except OSError:
                self._files[pid] = None
        file = self._files[pid]
        if file is not None:
            return file.read()
        with proc.oneshot():
            t = proc.cpu_times()
            return t.user + t.system + t.children_user + t.children_system, proc.memory_info().rss

    def close(self) -> None:
        """Close the kept-open /proc files."""
        for file in self._files.values():
            if file is not None:
                file.close()
        self._files.clear()
        if isinstance(self._statm, ProcFile):
            self._statm.close()
        self._statm = False  # a sample after close() (a window ended after stop) asks psutil, opens nothing
