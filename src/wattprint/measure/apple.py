"""Apple silicon energy (M-series Macs) from IOReport: CPU, GPU, Neural Engine (ANE) and DRAM, without sudo.

`AppleSiliconSource` ("ioreport") reads the SoC's "Energy Model" counters in IOReport through the
zeus-apple-silicon package (`pip install 'wattprint[apple]'`). The counters are cumulative millijoules per
channel (since boot), so a domain's energy is the counter minus its value at open, exact whatever the
sampling interval. As root, `wattprint.measure.powermetrics` reads Apple's `powermetrics` tool instead.

Where the ANE is charged: to the "gpu" component. The ANE is an accelerator that ML frameworks dispatch
work to (Core ML), like the GPU, and not a general-purpose core: charged to "cpu" it would be shared out
by the tracked processes' CPU-time share, which says nothing about who used the ANE, while "gpu" domains
are charged whole to the run that uses the machine's accelerators. It stays a domain of its own
("apple:ane"), so reports can still tell it apart from the GPU.

Both Apple readers label their domains "measured": they read the SoC's own energy accounting, as RAPL does on
x86. Apple describes these values as model-based estimates by the SoC, not sensor readings, which the
record's detail and the docs say; they are still far better than wattprint's TDP model. The vendor library is
imported when a source is opened, never at module import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wattprint.errors import PowerSourceError
from wattprint.measure.base import Component, Domain, Reading
from wattprint.units import MJ_PER_J

if TYPE_CHECKING:
    pass

log = logging.getLogger("wattprint")

APPLE_FIX = "pip install 'wattprint[apple]'"


def _platform(system: str | None, machine: str | None) -> tuple[str, str]:
    """The operating system and machine, as platform.system() and platform.machine() name them, unless given."""
    if system is None or machine is None:
        import platform  # only when not given: tests pretend to be a Mac

        system = platform.system() if system is None else system
        machine = platform.machine() if machine is None else machine
    return system, machine


def require_apple_silicon(system: str | None, machine: str | None, what: str) -> None:
    system, machine = _platform(system, machine)
    if system != "Darwin" or machine != "arm64":
        raise PowerSourceError(
            f"{what} needs macOS on Apple silicon (arm64); this is {system or 'an unknown system'} on "
            f"{machine or 'an unknown machine'} (an x86_64 Python under Rosetta counts as x86_64)",
            reason="absent",
        )


# -- IOReport through zeus-apple-silicon -----------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """One AppleEnergyMetrics field read as a domain."""

    domain: str
    component: Component
    attribute: str  # the AppleEnergyMetrics attribute: an int, a list of ints (summed) or None
    counted: bool


# Counted domains: the CPU total ("CPU Energy", all clusters with their managers), the GPU, the ANE, DRAM.
# Detail domains (counted=False) lie inside a counted one: the E and P cores inside the CPU total. GPU SRAM
# is reported on its own by IOReport, but whether "GPU Energy" already contains it is not documented; it is
# kept as detail, as other IOReport readers do, so that it can never be counted twice.
_FIELDS = (
    _Field("apple:cpu", "cpu", "cpu_total_mj", True),
    _Field("apple:gpu", "gpu", "gpu_mj", True),
    _Field("apple:ane", "gpu", "ane_mj", True),
    _Field("apple:dram", "ram", "dram_mj", True),
    _Field("apple:cpu:e-cores", "cpu", "efficiency_cores_mj", False),
    _Field("apple:cpu:p-cores", "cpu", "performance_cores_mj", False),
    _Field("apple:gpu:sram", "gpu", "gpu_sram_mj", False),
)


def _millijoules(metrics: Any, attribute: str) -> int | None:
    """An AppleEnergyMetrics field as one integer (a per-core list summed), or None where the chip lacks it."""
    value = getattr(metrics, attribute, None)  # older releases lack some fields (the cluster totals)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return sum(int(v) for v in value)
    return int(value)


@dataclass
class _Counter:
    """One domain's counter state: the last raw value and the millijoules accumulated since open."""

    spec: _Field
    last_mj: int
    total_mj: int = 0


class AppleSiliconSource:
    """Energy of the Apple silicon SoC from IOReport, in joules since the source was opened.

    Domains: "apple:cpu" (cpu), "apple:gpu" (gpu), "apple:ane" (gpu: see the module's note),
    "apple:dram" (ram), each where the chip reports it, and detail that is never added to a total:
    "apple:cpu:e-cores", "apple:cpu:p-cores" (parts of "apple:cpu") and "apple:gpu:sram".
    """

    name = "ioreport"

    def __init__(
        self,
        module: Any = None,
        *,
        system: str | None = None,
        machine: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open an IOReport subscription through `module` (zeus_apple_silicon, imported now when None).

        Raises PowerSourceError: "absent" off macOS on arm64 (`system` and `machine` default to
        platform.system() and platform.machine()) or where IOReport has no energy channel,
        "missing-library" without zeus-apple-silicon, "unreadable" when the subscription fails.
        """
        require_apple_silicon(system, machine, "IOReport energy")
        zeus = _load_zeus(module)
        self._clock = clock
        self._closed = True
        try:
            self._monitor: Any = zeus.AppleEnergyMonitor()
            first = self._monitor.get_cumulative_energy()
        except Exception as exc:  # RuntimeError from the C++ side, or anything the binding raises
            raise PowerSourceError(f"IOReport energy could not be opened: {describe_error(exc)}") from None
        self._counters: list[_Counter] = []
        for spec in _FIELDS:
            raw = _millijoules(first, spec.attribute)
            if raw is not None:
                self._counters.append(_Counter(spec, raw))
        if not any(c.spec.counted for c in self._counters):
            self._monitor = None
            raise PowerSourceError(
                "IOReport reports no CPU, GPU, ANE or DRAM energy channel on this Mac", reason="absent"
            )
        self._closed = False
        self._domains = tuple(
            Domain(c.spec.domain, c.spec.component, "measured", counted=c.spec.counted) for c in self._counters
        )

    def detail(self) -> str:
        """One line for the record: what is measured and how it is obtained."""
        return "Apple silicon's IOReport energy counters (zeus-apple-silicon), which the SoC derives from its own model"

    def domains(self) -> Sequence[Domain]:
        return self._domains

    def read(self) -> Reading:
        """Cumulative joules per domain since open.

        A failed IOReport read raises and changes nothing: the next good read goes on from the last good
        one, and since the counters are cumulative no energy is lost. A domain whose value is missing in a
        read, or whose counter went backwards, raises after the others are updated; a counter that went back
        is re-based on its new value first, so totals never decrease and the energy between the last good
        read and the reset is lost (the monitor marks the domain degraded).
        """
        if self._closed:
            raise PowerSourceError("IOReport source is closed")
        try:
            metrics = self._monitor.get_cumulative_energy()
        except Exception as exc:  # the binding raises RuntimeError or ValueError (an unknown unit)
            raise PowerSourceError(f"IOReport read failed: {describe_error(exc)}") from None
        problems: list[str] = []
        for counter in self._counters:
            raw = _millijoules(metrics, counter.spec.attribute)
            if raw is None:
                problems.append(f"{counter.spec.domain}: no value in this read")
                continue
            if raw < counter.last_mj:
                problems.append(f"{counter.spec.domain}: energy counter went back from {counter.last_mj} to {raw} mJ")
            else:
                counter.total_mj += raw - counter.last_mj
            counter.last_mj = raw
        if problems:
            raise PowerSourceError("; ".join(problems))
        return Reading(self._clock(), {c.spec.domain: c.total_mj / MJ_PER_J for c in self._counters})

    def close(self) -> None:
        """Drop the IOReport subscription (released when the monitor object goes). Safe to call twice."""
        self._closed = True
        self._monitor = None


def _load_zeus(module: Any) -> Any:
    """The given module, or zeus_apple_silicon imported now."""
    if module is not None:
        return module
    try:
        import zeus_apple_silicon
    except ImportError:
        raise PowerSourceError(
            "zeus-apple-silicon is not installed: it reads the IOReport energy counters",
            reason="missing-library",
            fix=APPLE_FIX,
        ) from None
    return zeus_apple_silicon


def describe_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
