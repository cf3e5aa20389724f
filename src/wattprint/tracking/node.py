"""A whole-node monitor for admins: one run per child cgroup under a root (each Slurm job, container or pod).

    node = NodeMonitor("/sys/fs/cgroup/system.slice", scan_s=5)
    node.start(); ...; node.stop()

Every `scan_s` the root's child cgroups are listed: a new one gets a `Tracker(cgroup=...)` of its own (its
run stored and checkpointed like any other, named after the cgroup), one that has emptied or vanished has its
run stopped and stored. Each cgroup is charged its own CPU time's share of the machine (`measure.cgroup`), so
the runs add up to no more than the machine (a GPU is charged only to a cgroup seen running on it).
`snapshot()` gives an exporter the live runs and the last KEEP_FINISHED finished ones.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any

from wattprint.errors import WattprintInputError
from wattprint.measure.cgroup import CgroupTree, resolve_cgroup

log = logging.getLogger("wattprint")
KEEP_FINISHED = 256


class NodeMonitor:
    """Tracks every child cgroup of `root`; thread-safe; never raises from its scans."""

    def __init__(self, root: str | Path, *, scan_s: float = 5.0, settings: Any = None) -> None:
        if isinstance(scan_s, bool) or not isinstance(scan_s, (int, float)) or not 0 < scan_s <= 3600:
            raise WattprintInputError("scan_s", f"got {scan_s!r}; expected seconds in (0, 3600]")
        self.root = resolve_cgroup(root, field="root")
        self.scan_s = float(scan_s)
        self.settings = settings
        self.trackers: dict[Path, Any] = {}  # live runs, by cgroup directory
        # records of the runs stopped lately (the store has them all): bounded, for the exporter's last figures
        self.finished: deque[Any] = deque(maxlen=KEEP_FINISHED)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def children(self) -> list[Path]:
        """The root's child cgroups now (directories holding a cpu.stat), sorted."""
        try:
            return sorted(p for p in self.root.iterdir() if p.is_dir() and (p / "cpu.stat").is_file())
        except OSError:
            return []

    def scan(self) -> None:
        """Start runs for new child cgroups, stop those of emptied or vanished ones. Starting and stopping
        (store writes) happen outside the lock, so a scrape never waits for them."""
        from wattprint.tracking.tracker import Tracker

        current = set(self.children())
        with self._lock:
            known = dict(self.trackers)
        ended = [path for path, tracker in known.items() if path not in current or tracker.cgroup.is_empty()]
        started = {}
        for path in sorted(current - set(known)):
            try:
                if CgroupTree(path).is_empty():
                    continue  # nothing to charge yet: picked up once a process joins
                tracker = Tracker(path.name, cgroup=path, settings=self.settings)
                tracker.start()
                started[path] = tracker
            except Exception as exc:  # one cgroup's fault must not stop the node's monitor
                log.warning("wattprint: cannot track cgroup %s: %s", path, exc)
        with self._lock:
            self.trackers.update(started)
            stopping = [(path, self.trackers.pop(path)) for path in ended]
        self._finish(stopping)

    def _finish(self, stopping: list[tuple[Path, Any]]) -> None:
        for path, tracker in stopping:
            try:
                record = tracker.stop("finished")
            except Exception as exc:  # stopping one run must not stop the others
                log.warning("wattprint: could not stop the run of cgroup %s: %s", path, exc)
                continue
            with self._lock:
                self.finished.append(record)

    def start(self) -> NodeMonitor:
        self.scan()
        self._thread = threading.Thread(target=self._loop, name="wattprint-node", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.scan_s):
            try:
                self.scan()
            except Exception as exc:  # the next scan tries again
                log.warning("wattprint: node scan failed: %s", exc)

    def stop(self) -> list[Any]:
        """Stop scanning and every live run; returns the records of all runs stopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            stopping = list(self.trackers.items())
            self.trackers.clear()
        self._finish(stopping)
        with self._lock:
            return list(self.finished)

    def snapshot(self) -> tuple[list[Any], dict[Path, Any]]:
        """(recently finished records, live trackers), read together: a run is in exactly one of them."""
        with self._lock:
            return list(self.finished), dict(self.trackers)
