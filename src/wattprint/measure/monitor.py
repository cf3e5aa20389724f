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

The sampler thread wakes once a second for hours, with cold caches each time, so on time it only
reads: the clock, the tree's counters, the machine's CPU times and the hardware counters. Parsing
and integration run in batches (`DRAIN_EVERY` ticks, or whenever a result is asked for), which costs
a fraction of doing them at every wake-up. Results are the same: each tick keeps its own readings.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psutil

from wattprint.measure.base import COMPONENTS, CpuTimeModel, Domain, PowerSource, Reading
from wattprint.measure.cpu_model import machine_cpu_reader
from wattprint.measure.process import TreeLike

log = logging.getLogger("wattprint")

TIMELINE_POINTS = 1024  # the power timeline is halved in resolution whenever it reaches this length
DRAIN_EVERY = 10  # sampler ticks queued before they are integrated (sooner when a result is read)

# one sampler tick: (monotonic time, tree counters, machine CPU counters, reading or error or None per source)
_Tick = tuple[float, Any, Any, Sequence[Any]]


def _as_is(value: Any) -> Any:
    return value


def _nothing() -> None:
    return None


class Sleeper:
    """Waits up to a timeout unless woken, for a loop that wakes every second for hours.

    poll(2) on a pipe is one C call per wait; threading.Event.wait runs a Condition in Python, which
    costs about 60 us more per wake-up with cold caches (0.017 % of a core against 0.010 % here).
    Platforms without poll(2) (Windows) use an Event.
    """

    def __init__(self) -> None:
        self._event: threading.Event | None = None
        self._fds: tuple[int, int] | None = None
        self._pid = os.getpid()  # a forked child shares the pipe: its wake() must not stop our sampler
        try:
            self._fds = os.pipe()
            self._poll = select.poll()
            self._poll.register(self._fds[0], select.POLLIN)
        except (AttributeError, OSError):
            self.close()
            self._event = threading.Event()

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to `timeout_s`; True once `wake()` has been called (and ever after)."""
        if self._event is not None:
            return self._event.wait(timeout_s)
        if self._fds is None:  # closed
            return True
        return bool(self._poll.poll(timeout_s * 1000.0))

    def wake(self) -> None:
        if self._event is not None:
            self._event.set()
        elif self._fds is not None and os.getpid() == self._pid:
            with contextlib.suppress(OSError):  # closed meanwhile: nothing left to wake
                os.write(self._fds[1], b"!")

    def close(self) -> None:
        fds, self._fds = self._fds, None
        for fd in fds or ():
            os.close(fd)

    def __del__(self) -> None:  # descriptors must not leak when a monitor is dropped without close()
        with contextlib.suppress(OSError):
            self.close()


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
        tree: TreeLike | None = None,
        attribution: str = "process",
        on_sample: Callable[[EnergyMonitor], None] | None = None,
        on_sample_every: int = 1,
        machine_cpu: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        if not math.isfinite(interval_s) or interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.sources = list(sources)
        self.interval_s = interval_s
        self.tree = tree
        self.attribution = attribution
        self.on_sample = on_sample
        self.on_sample_every = max(1, int(on_sample_every))  # on_sample runs every this many wake-ups
        self._own_cpu_reader = machine_cpu is None
        self._machine_cpu = machine_cpu if machine_cpu is not None else machine_cpu_reader()
        # a reader with raw()/parse() (the kept-open /proc/stat) is parsed in the batch, not on time
        self._cpu_raw: Callable[[], Any] = getattr(self._machine_cpu, "raw", self._machine_cpu)
        self._cpu_parse: Callable[[Any], tuple[float, float]] = getattr(self._machine_cpu, "parse", _as_is)
        self._derived = [isinstance(source, CpuTimeModel) for source in self.sources]
        self._with_tree = tree is not None and attribution != "machine"
        self._needs_cpu = self._with_tree or any(self._derived)
        self._all_derived = all(self._derived)
        self._no_readings: tuple[None, ...] = (None,) * len(self.sources)  # every source computed later
        self.domains: dict[str, Domain] = {}
        for source in self.sources:
            for domain in source.domains():
                self.domains[domain.name] = domain
        self._degraded: dict[str, str] = {}
        self._samples = 0
        self.ticks = 0  # wake-ups of the sampler thread plus explicit samples; counts without draining
        self._cpu_share = 1.0
        self._ram_share = 1.0
        self.gpu_domains_used: set[str] = set()
        # a run whose processes are never seen on a GPU is charged every GPU (a single job, which may use one
        # the listing missed), unless this is off: one of many cgroups on a node, whose runs must not overlap
        self.charge_unseen_gpus = True
        self._gpu_shares: dict[str, float] = {}  # GPU domain -> the run's share of a card it shares (else whole)
        # GPU domains whose source cannot say who uses them (a Jetson's rails, Apple's SoC), charged to one of
        # many cgroups by its CPU share rather than not at all (see share_gpus_by_cpu)
        self._gpu_by_cpu: set[str] = set()
        self._timeline: list[tuple[float, float, float, float]] = []
        self._lock = threading.RLock()
        self._sleeper = Sleeper()
        self._thread: threading.Thread | None = None
        self._windows: dict[str, tuple[datetime, Totals]] = {}
        self._pending: list[_Tick] = []
        self._last_raw: dict[str, float] = {}
        self._machine_j = dict.fromkeys(self.domains, 0.0)
        self._attributed_j = dict.fromkeys(self.domains, 0.0)
        self._cpu_share_sum = [0.0, 0.0]  # machine-energy-weighted mean of the CPU share
        self._held_sum = [0.0, 0.0]  # the tree's CPU seconds and the machine's capacity (busy + idle) in that time
        self._last_total: float | None = None
        self._last_tree_cpu: float | None = None
        self._tree_backlog_s = 0.0
        self._last_busy: float | None = None
        self._t0 = time.monotonic()
        self._last_t = self._t0
        self._ram_total = psutil.virtual_memory().total
        self._tree_pids: frozenset[int] = frozenset()
        self._prime()

    # -- lifecycle -------------------------------------------------------------------------------
    def _prime(self) -> None:
        """First reading of every source and of the tree: the zero of all integrals."""
        self._tick()
        self.ticks = 0
        if self._pending:
            try:
                self._integrate(self._pending.pop(), baseline=True)
            except Exception as exc:  # the first interval will be skipped; nothing reaches the caller
                self._mark("monitor", f"{type(exc).__name__}: {exc}")

    def start(self) -> EnergyMonitor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wattprint-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> Totals:
        """Stop the sampler thread, take a last sample, and return the final totals."""
        self._sleeper.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))
        self._thread = None
        self.sample()
        return self.totals()

    def close(self) -> None:
        self._sleeper.close()
        if self.tree is not None:
            self.tree.close()
        if self._own_cpu_reader:
            getattr(self._machine_cpu, "close", _nothing)()
        for source in self.sources:
            try:
                source.close()
            except Exception as exc:  # one source failing to close must not leave the others open
                log.debug("closing %s failed: %s", source.name, exc)

    def _run(self) -> None:
        wakeups = 0  # not `ticks`, which explicit samples (windows) also advance
        while not self._sleeper.wait(self.interval_s):
            self._tick()
            wakeups += 1
            if self.on_sample is not None and wakeups % self.on_sample_every == 0:
                try:
                    self.on_sample(self)
                except Exception as exc:  # a faulty callback must not kill the sampler thread
                    log.warning("wattprint: sample callback failed: %s", exc)

    # -- sampling --------------------------------------------------------------------------------
    def _mark_source(self, source: PowerSource, exc: BaseException) -> None:
        for domain in source.domains():
            self._mark(domain.name, f"{type(exc).__name__}: {exc}")

    def _mark(self, domain_name: str, reason: str) -> None:
        if domain_name not in self._degraded:
            log.warning("wattprint: %s degraded: %s", domain_name, reason)
        self._degraded[domain_name] = reason

    def _read_counters(self) -> list[Reading | BaseException | None]:
        """Hardware counters now (None for a model, computed later; the exception for a failed read)."""
        readings: list[Reading | BaseException | None] = []
        for source, derived in zip(self.sources, self._derived, strict=True):
            if derived:
                readings.append(None)
                continue
            try:
                readings.append(source.read())
            except Exception as exc:  # a broken source must not stop the monitor
                readings.append(exc)
        return readings

    def _tick(self) -> None:
        """The sampler's wake-up: read what must be read on time, unparsed, and queue it; integrate once
        DRAIN_EVERY ticks are queued. This runs every second for hours, so it makes few calls."""
        try:
            with self._lock:  # readings are queued in the order taken: a counter never seems to run backwards
                self._pending.append(
                    (
                        time.monotonic(),
                        self.tree.read_raw() if self._with_tree else None,  # type: ignore[union-attr]
                        self._cpu_raw() if self._needs_cpu else None,
                        self._no_readings if self._all_derived else self._read_counters(),
                    )
                )
                self.ticks += 1
                if len(self._pending) >= DRAIN_EVERY:
                    self._drain_locked()
        except Exception as exc:  # the host job comes first
            self._mark("monitor", f"{type(exc).__name__}: {exc}")

    def sample(self) -> None:
        """Take one sample now and integrate everything queued. Safe from any thread; never raises."""
        self._tick()
        self._drain()

    def _drain(self) -> None:
        try:
            with self._lock:
                self._drain_locked()
        except Exception as exc:  # sample() never raises: the fault is marked instead
            self._mark("monitor", f"{type(exc).__name__}: {exc}")

    def _drain_locked(self) -> None:
        pending, self._pending = self._pending, []
        for tick in pending:
            try:
                self._integrate(tick)
            except Exception as exc:  # one bad tick must not lose the others
                self._mark("monitor", f"{type(exc).__name__}: {exc}")

    def _update_shares(self, tree_raw: Any, busy: float, total: float) -> None:
        """CPU-time and memory share of the tracked tree since the previous sample."""
        tree = self.tree.from_raw(tree_raw)  # type: ignore[union-attr]
        if self._last_tree_cpu is not None and self._last_busy is not None and self._last_total is not None:
            d_busy = busy - self._last_busy
            # CPU time of a descendant found late arrives all at once; what exceeds this interval's
            # machine time is carried to the next intervals instead of being clipped away
            d_tree = tree.cpu_s - self._last_tree_cpu + self._tree_backlog_s
            self._cpu_share = min(1.0, max(0.0, d_tree / d_busy)) if d_busy > 0 else 0.0
            self._tree_backlog_s = max(0.0, d_tree - max(0.0, d_busy))
            self._held_sum[0] += min(max(0.0, d_tree), max(0.0, d_busy))
            self._held_sum[1] += max(0.0, total - self._last_total)
        self._last_tree_cpu, self._last_busy, self._last_total = tree.cpu_s, busy, total
        self._ram_share = min(1.0, tree.rss_bytes / self._ram_total) if self._ram_total else 0.0
        self._tree_pids = tree.pids

    def _integrate(self, tick: _Tick, baseline: bool = False) -> None:
        """Add one tick's energy (or, for the first, only remember its readings)."""
        now, tree_raw, cpu_raw, readings = tick
        busy = total = 0.0
        if cpu_raw is not None:
            busy, total = self._cpu_parse(cpu_raw)
        if tree_raw is not None:
            self._update_shares(tree_raw, busy, total)
        shares = {"cpu": self._cpu_share, "ram": self._ram_share, "gpu": 1.0}  # GPUs: chosen whole at the end
        power_w = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
        dt = now - self._last_t
        for source, reading in zip(self.sources, readings, strict=True):
            if reading is None:
                try:
                    reading = source.reading_at(now, busy, total)  # type: ignore[attr-defined]
                except Exception as exc:  # a derived source's fault is marked like a failed reading
                    reading = exc
            if isinstance(reading, BaseException):
                self._mark_source(source, reading)
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
                if last is None or baseline:
                    continue
                delta = value - last
                if delta < 0:
                    self._mark(name, f"counter went backwards ({last:.3f} J -> {value:.3f} J)")
                    continue
                if domain.component != "gpu":
                    share = shares[domain.component]
                else:
                    share = self._gpu_shares.get(name, shares["cpu"] if name in self._gpu_by_cpu else 1.0)
                self._machine_j[name] += delta
                self._attributed_j[name] += delta * share
                if domain.counted:
                    if dt > 0:
                        power_w[domain.component] += delta * share / dt
                    if domain.component == "cpu":
                        self._cpu_share_sum[0] += delta * share
                        self._cpu_share_sum[1] += delta
        self._last_t = now
        if baseline:
            return
        self._samples += 1
        self._timeline.append((now - self._t0, power_w["cpu"], power_w["gpu"], power_w["ram"]))
        if len(self._timeline) >= TIMELINE_POINTS:
            self._halve_timeline()

    def _halve_timeline(self) -> None:
        pairs = zip(self._timeline[0::2], self._timeline[1::2], strict=False)
        self._timeline = [tuple((a + b) / 2 for a, b in zip(p, q, strict=True)) for p, q in pairs]  # type: ignore[misc]

    # -- state, brought up to date on each read (queued ticks are integrated first) ------------
    @property
    def samples(self) -> int:
        """Intervals integrated so far."""
        if self._pending:
            self._drain()
        return self._samples

    @property
    def cpu_share(self) -> float:
        """The tracked tree's share of the machine's CPU time over the last interval."""
        if self._pending:
            self._drain()
        return self._cpu_share

    @property
    def ram_share(self) -> float:
        """The tracked tree's share of the machine's memory at the last sample."""
        if self._pending:
            self._drain()
        return self._ram_share

    @property
    def tree_pids(self) -> frozenset[int]:
        """The tracked tree's processes at the last sample."""
        if self._pending:
            self._drain()
        return self._tree_pids

    @property
    def timeline(self) -> list[tuple[float, float, float, float]]:
        """(t_s, cpu_w, gpu_w, ram_w) per interval, halved in resolution past TIMELINE_POINTS."""
        if self._pending:
            self._drain()
        return self._timeline

    @property
    def degraded(self) -> dict[str, str]:
        """Domain (or "monitor") -> what went wrong."""
        if self._pending:
            self._drain()
        return self._degraded

    # -- results ---------------------------------------------------------------------------------
    def note_root_reaped(self, total_cpu_s: float) -> None:
        """The tracked root exited and was reaped with this CPU time (see ProcessTree.note_root_reaped).
        Queued ticks are integrated first, so the time lands in the interval after them, not among them."""
        if self.tree is None:
            return
        with self._lock:
            self._drain_locked()
            self.tree.note_root_reaped(total_cpu_s)

    def note_gpu_processes(self, used_domains: set[str]) -> None:
        """Record GPU domains on which the tracked tree was seen running."""
        with self._lock:
            self.gpu_domains_used |= used_domains

    def set_gpu_shares(self, shares: dict[str, float]) -> None:
        """The run's share of each GPU it shares with other processes, from now on (1.0 where not given)."""
        with self._lock:
            self._gpu_shares.update({name: min(1.0, max(0.0, share)) for name, share in shares.items()})

    def share_gpus_by_cpu(self, domains: set[str]) -> None:
        """Charge these GPU domains by the run's CPU share: their source lists no processes, and the run is one
        of several (a cgroup on a node), so neither the whole device nor nothing would be right."""
        with self._lock:
            self._gpu_by_cpu |= domains

    def gpu_selection(self) -> tuple[set[str], str]:
        """GPU domains charged to the run and why."""
        gpus = {n for n, d in self.domains.items() if d.component == "gpu"}
        if self.attribution == "machine" or not gpus:
            return gpus, "all visible GPUs"
        if self._gpu_by_cpu:
            listed = self.gpu_domains_used & gpus
            return listed | (self._gpu_by_cpu & gpus), "GPUs running the tracked processes; unlisted ones by CPU share"
        if self.gpu_domains_used:
            return self.gpu_domains_used & gpus, "GPUs running the tracked processes"
        if not self.charge_unseen_gpus:
            return set(), "no GPU: the tracked processes were not seen on any"
        return gpus, "all visible GPUs (tracked processes not seen on any GPU)"

    def totals(self) -> Totals:
        with self._lock:
            self._drain_locked()
            return Totals(self._last_t, dict(self._machine_j), dict(self._attributed_j))

    def by_component(self, totals: Totals) -> tuple[dict[str, float], dict[str, float]]:
        """(attributed, machine) joules per component, counting only counted domains."""
        gpus, _why = self.gpu_selection()
        attributed: dict[str, float] = {c: 0.0 for c in COMPONENTS}
        machine: dict[str, float] = {c: 0.0 for c in COMPONENTS}
        for name, domain in self.domains.items():
            if not domain.counted:
                continue
            machine[domain.component] += totals.machine_j.get(name, 0.0)
            if domain.component == "gpu" and name not in gpus:
                continue
            attributed[domain.component] += totals.attributed_j.get(name, 0.0)
        return attributed, machine

    def attributed_total_j(self) -> float:
        """Joules charged to the tracked tree so far, every counted component, after a fresh sample: the
        cumulative figure that callers difference into spans of their own (a benchmark's groups and phases,
        the time slices shared among requests)."""
        self.sample()
        attributed, _machine = self.by_component(self.totals())
        return sum(attributed.values())

    def mean_cpu_share(self) -> float:
        if self._pending:
            self._drain()
        s, m = self._cpu_share_sum
        return s / m if m > 0 else self.cpu_share

    def mean_held_share(self) -> float:
        """The tracked tree's share of the machine's CPU capacity so far (its CPU seconds over every CPU's seconds,
        busy or idle): what it holds of the machine, for embodied emissions. 1.0 with machine attribution or before
        the second sample. A lone job on one core of an idle 64-thread server holds 1/64 of it (its share of busy
        time would be 1)."""
        if self._pending:
            self._drain()
        tree_s, capacity_s = self._held_sum
        return min(1.0, tree_s / capacity_s) if capacity_s > 0 else 1.0

    def open_windows(self) -> list[str]:
        """Names of the windows begun and not yet ended."""
        return list(self._windows)

    def begin_window(self, name: str, *, fresh: bool = True) -> None:
        """Open a named window; names must be unique among open windows. `fresh=False` starts it at the last
        sample taken instead of a new one (a caller that has just sampled, so that spans line up exactly)."""
        if name in self._windows:
            raise ValueError(f"window {name!r} is already open")
        if fresh:
            self.sample()
        self._windows[name] = (datetime.now(timezone.utc), self.totals())

    def end_window(self, name: str, *, fresh: bool = True) -> WindowResult:
        """Close a named window and return its energy (`fresh=False`: as of the last sample taken)."""
        if name not in self._windows:
            raise ValueError(f"window {name!r} is not open")
        if fresh:
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
