"""EnergyMonitor: a background sampler with named measurement windows.

Every `interval_s` the sampler reads each power source (cumulative joules per domain) and the
tracked process tree, and integrates per domain:
  - machine energy: what the hardware (or the model) says the whole machine used;
  - attributed energy: the tracked tree's share of it (CPU-time share for CPU domains, resident
    memory share for RAM domains, whole GPUs that the tree uses for GPU domains).
Windows (as in Zeus) are snapshots of these integrals: they may nest and overlap, and each
boundary takes a fresh sample so that a window is exact to the reading, not to the interval.

A source that raises, returns NaN or runs backwards marks its domains degraded and that interval
is skipped; nothing propagates to the caller.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psutil

from wattprint.measure.base import COMPONENTS, Component, Domain, PowerSource
from wattprint.measure.cpu_model import machine_cpu_seconds
from wattprint.measure.process import ProcessTree

log = logging.getLogger("wattprint")

TIMELINE_POINTS = 1024  # the power timeline is halved in resolution whenever it reaches this length


@dataclass
class Totals:
    """Integrated joules per domain since the monitor started, and the moment they refer to."""

    timestamp: float
    machine_j: dict[str, float] = field(default_factory=dict)
    attributed_j: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowResult:
    """Energy of one named window, per component (joules)."""

    name: str
    started_at: datetime
    duration_s: float
    energy_j: dict[str, float]
    machine_energy_j: dict[str, float]

    @property
    def total_j(self) -> float:
        return sum(self.energy_j.values())


class EnergyMonitor:
    """Samples power sources in a background thread; thread-safe; never raises from sampling."""

    def __init__(
        self,
        sources: Sequence[PowerSource],
        *,
        interval_s: float = 1.0,
        tree: ProcessTree | None = None,
        attribution: str = "process",
        on_sample: Callable[[EnergyMonitor], None] | None = None,
        machine_cpu: Callable[[], tuple[float, float]] = machine_cpu_seconds,
    ) -> None:
        if not math.isfinite(interval_s) or interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.sources = list(sources)
        self.interval_s = interval_s
        self.tree = tree
        self.attribution = attribution
        self.on_sample = on_sample
        self._machine_cpu = machine_cpu
        self.domains: dict[str, Domain] = {}
        self._source_of: dict[str, str] = {}
        for source in self.sources:
            for domain in source.domains():
                self.domains[domain.name] = domain
                self._source_of[domain.name] = source.name
        self.degraded: dict[str, str] = {}
        self.samples = 0
        self.cpu_share = 1.0
        self.ram_share = 1.0
        self.gpu_domains_used: set[str] = set()
        self.timeline: list[tuple[float, float, float, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._windows: dict[str, tuple[datetime, Totals]] = {}
        self._last_raw: dict[str, float] = {}
        self._machine_j = dict.fromkeys(self.domains, 0.0)
        self._attributed_j = dict.fromkeys(self.domains, 0.0)
        self._share_cpu_s = 0.0
        self._share_rss = 0
        self._cpu_share_sum = [0.0, 0.0]  # machine-energy-weighted mean of the CPU share
        self._last_tree_cpu: float | None = None
        self._tree_backlog_s = 0.0
        self._last_busy: float | None = None
        self._t0 = time.monotonic()
        self._last_t = self._t0
        self._ram_total = psutil.virtual_memory().total
        self.tree_pids: frozenset[int] = frozenset()
        self._prime()

    # -- lifecycle -------------------------------------------------------------------------------
    def _prime(self) -> None:
        """First reading of every source and of the tree: the zero of all integrals."""
        for source in self.sources:
            try:
                reading = source.read()
            except Exception as exc:  # a broken source must not stop the monitor
                self._mark_source(source, exc)
                continue
            for name, value in reading.energy_j.items():
                if math.isfinite(value):
                    self._last_raw[name] = value
        self._update_shares()

    def start(self) -> EnergyMonitor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wattprint-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> Totals:
        """Stop the sampler thread, take a last sample, and return the final totals."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))
        self._thread = None
        self.sample()
        return self.totals()

    def close(self) -> None:
        if self.tree is not None:
            self.tree.close()
        for source in self.sources:
            try:
                source.close()
            except Exception as exc:
                log.debug("closing %s failed: %s", source.name, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()
            if self.on_sample is not None:
                try:
                    self.on_sample(self)
                except Exception as exc:
                    log.warning("wattprint: sample callback failed: %s", exc)

    # -- sampling --------------------------------------------------------------------------------
    def _mark_source(self, source: PowerSource, exc: BaseException) -> None:
        for domain in source.domains():
            self._mark(domain.name, f"{type(exc).__name__}: {exc}")

    def _mark(self, domain_name: str, reason: str) -> None:
        if domain_name not in self.degraded:
            log.warning("wattprint: %s degraded: %s", domain_name, reason)
        self.degraded[domain_name] = reason

    def _update_shares(self) -> None:
        """CPU-time and memory share of the tracked tree since the previous sample."""
        if self.tree is None or self.attribution == "machine":
            self.cpu_share = self.ram_share = 1.0
            return
        tree = self.tree.sample()
        busy, _total = self._machine_cpu()
        if self._last_tree_cpu is not None and self._last_busy is not None:
            d_busy = busy - self._last_busy
            # CPU time of a descendant found late arrives all at once; what exceeds this interval's
            # machine time is carried to the next intervals instead of being clipped away
            d_tree = tree.cpu_s - self._last_tree_cpu + self._tree_backlog_s
            self.cpu_share = min(1.0, max(0.0, d_tree / d_busy)) if d_busy > 0 else 0.0
            self._tree_backlog_s = max(0.0, d_tree - max(0.0, d_busy))
        self._last_tree_cpu, self._last_busy = tree.cpu_s, busy
        self.ram_share = min(1.0, tree.rss_bytes / self._ram_total) if self._ram_total else 0.0
        self.tree_pids = tree.pids

    def sample(self) -> None:
        """Take one sample now. Safe to call from any thread; never raises."""
        try:
            with self._lock:
                self._sample_locked()
        except Exception as exc:  # the host job comes first
            self._mark("monitor", f"{type(exc).__name__}: {exc}")

    def _sample_locked(self) -> None:
        now = time.monotonic()
        self._update_shares()
        power_w = dict.fromkeys(COMPONENTS, 0.0)
        dt = now - self._last_t
        for source in self.sources:
            try:
                reading = source.read()
            except Exception as exc:
                self._mark_source(source, exc)
                continue
            for name, value in reading.energy_j.items():
                domain = self.domains.get(name)
                if domain is None:
                    continue
                last = self._last_raw.get(name)
                if not isinstance(value, (int, float)) or not math.isfinite(value):
                    self._mark(name, f"non-finite reading {value!r}")
                    continue
                self._last_raw[name] = value
                if last is None:
                    continue
                delta = value - last
                if delta < 0:
                    self._mark(name, f"counter went backwards ({last:.3f} J -> {value:.3f} J)")
                    continue
                self._machine_j[name] += delta
                share = self._share(domain.component)
                self._attributed_j[name] += delta * share
                if domain.counted and dt > 0:
                    power_w[domain.component] += delta * share / dt
                if domain.component == "cpu" and domain.counted:
                    self._cpu_share_sum[0] += delta * share
                    self._cpu_share_sum[1] += delta
        self._last_t = now
        self.samples += 1
        self._append_timeline(now - self._t0, power_w)

    def _share(self, component: Component) -> float:
        if component == "cpu":
            return self.cpu_share
        if component == "ram":
            return self.ram_share
        return 1.0  # GPUs: chosen whole at the end (see gpu_selection)

    def _append_timeline(self, t_s: float, power_w: dict[str, float]) -> None:
        self.timeline.append((t_s, power_w["cpu"], power_w["gpu"], power_w["ram"]))
        if len(self.timeline) >= TIMELINE_POINTS:
            pairs = zip(self.timeline[0::2], self.timeline[1::2], strict=False)
            self.timeline = [tuple((a + b) / 2 for a, b in zip(p, q, strict=True)) for p, q in pairs]  # type: ignore[misc]

    # -- results ---------------------------------------------------------------------------------
    def note_gpu_processes(self, used_domains: set[str]) -> None:
        """Record GPU domains on which the tracked tree was seen running."""
        with self._lock:
            self.gpu_domains_used |= used_domains

    def gpu_selection(self) -> tuple[set[str], str]:
        """GPU domains charged to the run and why."""
        gpus = {n for n, d in self.domains.items() if d.component == "gpu"}
        if self.attribution == "machine" or not gpus:
            return gpus, "all visible GPUs"
        if self.gpu_domains_used:
            return self.gpu_domains_used & gpus, "GPUs running the tracked processes"
        return gpus, "all visible GPUs (tracked processes not seen on any GPU)"

    def totals(self) -> Totals:
        with self._lock:
            return Totals(self._last_t, dict(self._machine_j), dict(self._attributed_j))

    def by_component(self, totals: Totals) -> tuple[dict[str, float], dict[str, float]]:
        """(attributed, machine) joules per component, counting only counted domains."""
        gpus, _why = self.gpu_selection()
        attributed = dict.fromkeys(COMPONENTS, 0.0)
        machine = dict.fromkeys(COMPONENTS, 0.0)
        for name, domain in self.domains.items():
            if not domain.counted:
                continue
            machine[domain.component] += totals.machine_j.get(name, 0.0)
            if domain.component == "gpu" and name not in gpus:
                continue
            attributed[domain.component] += totals.attributed_j.get(name, 0.0)
        return attributed, machine

    def mean_cpu_share(self) -> float:
        s, m = self._cpu_share_sum
        return s / m if m > 0 else self.cpu_share

    def open_windows(self) -> list[str]:
        """Names of the windows begun and not yet ended."""
        return list(self._windows)

    def begin_window(self, name: str) -> None:
        """Open a named window; names must be unique among open windows."""
        if name in self._windows:
            raise ValueError(f"window {name!r} is already open")
        self.sample()
        self._windows[name] = (datetime.now(timezone.utc), self.totals())

    def end_window(self, name: str) -> WindowResult:
        """Close a named window and return its energy."""
        if name not in self._windows:
            raise ValueError(f"window {name!r} is not open")
        self.sample()
        started_at, start = self._windows.pop(name)
        end = self.totals()
        diff = Totals(
            end.timestamp - start.timestamp,
            {k: v - start.machine_j.get(k, 0.0) for k, v in end.machine_j.items()},
            {k: v - start.attributed_j.get(k, 0.0) for k, v in end.attributed_j.items()},
        )
        attributed, machine = self.by_component(diff)
        return WindowResult(name, started_at, diff.timestamp, attributed, machine)
