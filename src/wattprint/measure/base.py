"""The contract every power source meets.

A source exposes named domains (a RAPL package, a GPU, the RAM model) and returns cumulative
joules per domain since it was opened. Cumulative counters make integration exact: the energy of
any interval is a difference of two readings, whatever happened between them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, NamedTuple, Protocol, runtime_checkable

Component = Literal["cpu", "gpu", "ram"]
Method = Literal["measured", "estimated"]
COMPONENTS: tuple[Component, ...] = ("cpu", "gpu", "ram")


@dataclass(frozen=True)
class Domain:
    """One energy domain of a source.

    `counted` is False for a domain already contained in another one (RAPL's core domain lies
    inside its package): it is reported for detail but never added to a component's total.
    """

    name: str
    component: Component
    method: Method
    counted: bool = True


class Reading(NamedTuple):
    """Cumulative joules per domain name at `timestamp` (time.monotonic(), seconds).

    A named tuple, built in C: the sampler creates a few every second for hours."""

    timestamp: float
    energy_j: Mapping[str, float] = MappingProxyType({})  # read-only: a shared default must not be mutated


@runtime_checkable
class PowerSource(Protocol):
    """A thin wrapper over one kind of energy counter or power model."""

    #: short identifier recorded in the run record's `measurement` field ("rapl", "nvml", "model")
    name: str

    def domains(self) -> Sequence[Domain]:
        """The domains this source reports, fixed once the source is open."""
        ...

    def read(self) -> Reading:
        """Cumulative joules per domain since the source was opened. May raise; the monitor copes."""
        ...

    def close(self) -> None:
        """Release handles (files, NVML). Safe to call twice."""
        ...

    # Optional capabilities, declared by the protocols below: a source that has one is used through it.


@runtime_checkable
class CpuTimeModel(PowerSource, Protocol):
    """A model computed from the machine's CPU times (CPU utilisation x TDP, RAM per GiB): the monitor,
    which reads those times each sample anyway, computes its readings later in a batch instead of
    calling read() each second."""

    def reading_at(self, now: float, busy: float, total: float) -> Reading:
        """The reading it would have given at monotonic time `now`, with the machine's busy and total CPU
        seconds then."""
        ...


@runtime_checkable
class ProcessListing(PowerSource, Protocol):
    """A source whose devices can say which processes use them (NVML's GPUs): the tracker counts only the
    GPUs its process tree uses."""

    def processes(self) -> Mapping[int, set[int]]:
        """PIDs using each device, by device index."""
        ...
