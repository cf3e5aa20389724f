"""Estimated power for machines without counters: CPU utilisation x TDP, RAM per GiB.

Everything here is a model and is labelled "estimated". The CPU model is
    power_w = idle_w + (max_w - idle_w) x utilisation
with utilisation read from the kernel's CPU time counters; on a physical machine max_w is sockets x TDP and idle_w
10 % of it, in a virtual machine vcpus x the per-vCPU watts of `vcpu.py`. RAM draws a constant power per GiB
installed. Defaults and their sources are in wattprint/data/SOURCES.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import psutil

from wattprint.data import data_text
from wattprint.measure.base import Domain, Reading
from wattprint.measure.procfs import MachineCpu, busy_and_total

DEFAULT_TDP_W = 85.0
IDLE_FRACTION = 0.10
RAM_W_PER_GIB = 0.375
GIB = 1024**3

_NOISE = re.compile(
    r"\((r|tm)\)|®|™|\bcpu\b|\bprocessor\b|@.*$|\bwith\b.*$|\b\d+-core\b|[,]",
    re.IGNORECASE,
)


def normalize_cpu_name(name: str) -> str:
    """Lower-case model name without vendor decoration, clock speed or core-count suffixes."""
    return " ".join(_NOISE.sub(" ", name).lower().split())


@dataclass(frozen=True)
class CpuInfo:
    model: str
    sockets: int
    logical_cpus: int
    tdp_w: float
    tdp_source: str


@lru_cache(maxsize=1)
def _tdp_lines() -> tuple[str, ...]:
    """Data lines of cpu_tdp.csv (model, tdp_w, key); the key column is precomputed and comma-free."""
    return tuple(data_text("cpu_tdp.csv").splitlines()[1:])


def lookup_tdp(model: str) -> tuple[float, str] | None:
    """TDP (W per package) of a CPU model from the bundled table, and the table entry matched.

    Exact match on the normalised name first; otherwise the longest table entry whose words all
    appear in the model name and which shares its model-number word with it. Only lines that contain
    one of the model's numbered words are parsed: this runs on every tracker start.
    """
    norm = normalize_cpu_name(model)
    words = set(norm.split())
    numbered = [w for w in words if any(c.isdigit() for c in w)]
    if not numbered:  # a bare family name ("Intel Xeon") identifies nothing
        return None
    best: tuple[int, str, float] | None = None
    for line in _tdp_lines():
        if not any(w in line for w in numbered):
            continue
        _model, tdp, entry = line.rsplit(",", 2)
        tokens = entry.split()
        if not any(t in words and any(c.isdigit() for c in t) for t in tokens):
            continue
        if entry == norm:
            return float(tdp), entry
        if words.issuperset(tokens) and (best is None or len(entry) > best[0]):
            best = (len(entry), entry, float(tdp))
    return (best[2], best[1]) if best else None


def platform_cpu_name(system: str | None = None, winreg_module: Any = None) -> str:
    """The CPU's marketing name where there is no /proc/cpuinfo: `sysctl machdep.cpu.brand_string` on macOS
    ("Apple M2 Pro"), the registry's ProcessorNameString on Windows; platform.processor() elsewhere (which on
    those two says only "arm", "i386" or a CPUID family string). "" when nothing answers."""
    import platform

    system = system or platform.system()
    try:
        if system == "Darwin":
            import subprocess

            done = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5, check=False
            )
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout.strip()
        elif system == "Windows":
            winreg: Any = winreg_module or __import__("winreg")
            key = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0")
            try:
                return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
            finally:
                winreg.CloseKey(key)
    except Exception:  # no tool, a timeout, no key: the generic name below is still something
        pass
    return platform.processor()


def read_cpu_model(
    cpuinfo: Path = Path("/proc/cpuinfo"), fallback: Callable[[], str] = platform_cpu_name
) -> tuple[str, int]:
    """CPU model name and number of physical packages (sockets); `fallback` names the CPU where cpuinfo
    cannot (macOS, Windows)."""
    model, sockets = "", set()
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key == "physical id":
                sockets.add(value.strip())
    except OSError:
        pass
    if not model:
        model = fallback()
    return model or "unknown CPU", max(1, len(sockets))


def cpu_info(tdp_override_w: float | None = None) -> CpuInfo:
    model, sockets = read_cpu_model()
    logical = psutil.cpu_count(logical=True) or 1
    if tdp_override_w is not None:
        return CpuInfo(model, sockets, logical, tdp_override_w, "WATTPRINT_CPU_TDP_W setting")
    found = lookup_tdp(model)
    if found:
        return CpuInfo(model, sockets, logical, found[0], f"bundled table entry '{found[1]}'")
    return CpuInfo(model, sockets, logical, DEFAULT_TDP_W, f"default {DEFAULT_TDP_W:g} W: '{model}' not in table")


def machine_cpu_seconds(cpu_times: Callable[[], Any] = psutil.cpu_times) -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from psutil where there is no /proc."""
    t = cpu_times()  # fields differ by platform: Windows has no nice and says interrupt and dpc
    return busy_and_total(
        t.user,
        getattr(t, "nice", 0.0),
        t.system,
        t.idle,
        getattr(t, "iowait", 0.0),
        getattr(t, "irq", 0.0) + getattr(t, "interrupt", 0.0),  # Windows names them interrupt and dpc
        getattr(t, "softirq", 0.0) + getattr(t, "dpc", 0.0),
    )


def machine_cpu_reader() -> Callable[[], tuple[float, float]]:
    """The cheapest reader of `machine_cpu_seconds` here: a kept-open /proc/stat (with `raw`/`parse` for a
    sampler that parses later), psutil where there is no /proc."""
    try:
        return MachineCpu()
    except OSError:
        return machine_cpu_seconds


class CpuModelSource:
    """CPU energy from utilisation between an idle and a full-load power. One domain, "model:cpu", estimated."""

    name = "model"

    def __init__(
        self,
        info: CpuInfo,
        idle_fraction: float = IDLE_FRACTION,
        cpu_seconds: Callable[[], tuple[float, float]] = machine_cpu_seconds,
        clock: Callable[[], float] = time.monotonic,
        *,
        power_range_w: tuple[float, float] | None = None,
    ) -> None:
        """`power_range_w`: (idle, full load) watts; by default `info`'s sockets x TDP and `idle_fraction` of it."""
        self.info = info
        full_w = info.sockets * info.tdp_w
        self.idle_w, self.max_w = power_range_w or (full_w * idle_fraction, full_w)
        self._cpu_seconds = cpu_seconds
        self._clock = clock
        self._last_t = clock()
        self._last_busy, self._last_total = cpu_seconds()
        self._energy_j = 0.0
        self.utilisation = 0.0

    @property
    def max_power_w(self) -> float:
        return self.max_w

    def domains(self) -> Sequence[Domain]:
        return (Domain("model:cpu", "cpu", "estimated"),)

    def read(self) -> Reading:
        busy, total = self._cpu_seconds()
        return self.reading_at(self._clock(), busy, total)

    def reading_at(self, now: float, busy: float, total: float) -> Reading:
        """The reading at monotonic time `now` given the machine's CPU seconds then (the monitor reads those
        once per sample for the process share too, and computes this afterwards)."""
        d_total = total - self._last_total
        if d_total > 0:
            self.utilisation = min(1.0, max(0.0, (busy - self._last_busy) / d_total))
        power_w = self.idle_w + (self.max_w - self.idle_w) * self.utilisation
        self._energy_j += power_w * max(0.0, now - self._last_t)
        self._last_t, self._last_busy, self._last_total = now, busy, total
        return Reading(now, {"model:cpu": self._energy_j})

    def close(self) -> None:
        pass


class RamModelSource:
    """RAM energy as a constant power per GiB installed. One domain, "model:ram", estimated."""

    name = "model"

    def __init__(
        self,
        total_bytes: int | None = None,
        w_per_gib: float = RAM_W_PER_GIB,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_bytes = total_bytes if total_bytes is not None else psutil.virtual_memory().total
        self.power_w = self.total_bytes / GIB * w_per_gib
        self._clock = clock
        self._start = clock()

    def domains(self) -> Sequence[Domain]:
        return (Domain("model:ram", "ram", "estimated"),)

    def read(self) -> Reading:
        return self.reading_at(self._clock(), 0.0, 0.0)

    def reading_at(self, now: float, busy: float, total: float) -> Reading:
        """The reading at monotonic time `now` (CPU seconds unused: RAM power is constant here)."""
        return Reading(now, {"model:ram": self.power_w * (now - self._start)})

    def close(self) -> None:
        pass
