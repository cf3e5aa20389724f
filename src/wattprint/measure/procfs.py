"""Linux /proc counters read through kept-open file descriptors.

The sampler reads the machine's CPU times and each tracked process's CPU time and memory once a
second. psutil opens, parses and closes a file per call (about 250 us a sample with cold caches);
`pread` on a descriptor kept open costs a third of that, which is most of the sampler's idle cost.
Where /proc is missing (macOS, Windows) callers fall back to psutil.

A descriptor of /proc/<pid>/stat stays bound to the process it was opened for: once that process
is gone, reads fail (ESRCH) even if its pid is reused, so a stale member is dropped, never misread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


class ProcFile:
    """One /proc file, opened once and re-read from offset 0 on each `read()`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = os.open(path, _FLAGS)  # OSError when absent or not readable

    def read(self) -> bytes:
        if self._fd is None:
            raise OSError(f"{self.path} is closed")
        return os.pread(self._fd, 4096, 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # descriptors must not leak when a tracker is dropped without close()
        with contextlib.suppress(OSError):
            self.close()


def busy_and_total(
    user: float, nice: float, system: float, idle: float, iowait: float = 0.0, irq: float = 0.0, softirq: float = 0.0
) -> tuple[float, float]:
    """(busy, total) from the machine's CPU time counters, as psutil counts them (any one unit).

    total leaves out guest time (already inside user) and steal; busy is total minus idle and iowait.
    """
    total = user + nice + system + idle + iowait + irq + softirq
    return total - idle - iowait, total


def parse_machine_cpu(stat: bytes) -> tuple[float, float]:
    """(busy, total) CPU seconds from the `cpu` line of /proc/stat (see `busy_and_total`)."""
    fields = stat[: stat.index(b"\n")].split()[1:8]
    fields += [b"0"] * (7 - len(fields))  # old kernels have fewer columns
    busy, total = busy_and_total(*map(int, fields))
    return busy / _CLK_TCK, total / _CLK_TCK


def parse_process(stat: bytes) -> tuple[float, int]:
    """(CPU seconds incl. reaped children, resident bytes) from /proc/<pid>/stat."""
    # the command name may contain spaces and parentheses: fields start after the last ')'
    fields = stat[stat.rindex(b")") + 2 :].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / _CLK_TCK, int(fields[21]) * _PAGE_BYTES


def parse_statm_rss(statm: bytes) -> int:
    """Resident bytes from /proc/<pid>/statm (its second field, in pages), as psutil's memory_info().rss."""
    return int(statm.split(maxsplit=2)[1]) * _PAGE_BYTES


class MachineCpu:
    """(busy, total) CPU seconds of the machine since boot, from a kept-open /proc/stat."""

    def __init__(self, path: str = "/proc/stat") -> None:
        self._file = ProcFile(path)
        #: the counters unparsed, for a sampler that parses later in batches (see EnergyMonitor)
        self.raw: Callable[[], bytes] = self._file.read

    def __call__(self) -> tuple[float, float]:
        return parse_machine_cpu(self._file.read())

    parse = staticmethod(parse_machine_cpu)

    def close(self) -> None:
        self._file.close()


def children_files_supported() -> bool:
    """Whether the kernel has /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN, most distributions)."""
    return os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def descendants(root_pid: int) -> list[int]:
    """Pids of the descendants of `root_pid`, from the `children` files of every thread of each member.

    This reads a few small files per member, where psutil's `children(recursive=True)` reads the stat
    file of every process on the machine (thousands on a busy node). A member that exits meanwhile is
    skipped; the next scan sees what this one missed.
    """
    found: list[int] = []
    frontier = [root_pid]
    while frontier:
        pid = frontier.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as file:
                    kids = [int(k) for k in file.read().split()]
            except OSError:
                continue
            found.extend(kids)
            frontier.extend(kids)
    return found
