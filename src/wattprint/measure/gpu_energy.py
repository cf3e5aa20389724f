"""One GPU's energy since its source opened: the state that the NVIDIA and AMD sources share.

GPUs with a cumulative energy counter (NVIDIA Volta and later, AMD's energy accumulator) are read exactly: the
counter minus its value at open, whatever the sampling interval. Others only report power; each read samples it
and integrates over time with the trapezoidal rule, an estimate good to the sampling interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COUNTER = "counter"
POWER_SAMPLING = "power-sampling"


@dataclass
class GpuEnergy:
    """A GPU's handle, identity and integration state; `source` ("nvml", "amdsmi") prefixes its domain name."""

    source: str
    index: int
    handle: Any
    name: str
    uuid: str | None
    power_limit_w: float | None
    method: str  # COUNTER or POWER_SAMPLING
    last_count: float = 0.0  # counter mode: the last raw value, in the counter's own unit
    last_w: float = 0.0  # power-sampling mode: the last power sample and its time
    last_t: float = 0.0
    total_j: float = 0.0  # joules since open

    @property
    def domain_name(self) -> str:
        return f"{self.source}:{self.index}"

    def info(self) -> dict[str, Any]:
        """What a source's `gpus()` lists: index, name, UUID, power limit (W, or None), energy method."""
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "power_limit_w": self.power_limit_w,
            "energy_method": self.method,
        }

    def add_count(self, count: float, joules_per_unit: float, unit: str = "") -> str | None:
        """Take a new counter value. A counter that went back (a reset, a driver reload) is re-based on the new
        value and said in the returned message: the total never decreases, the energy since the last good
        read is lost, and the next read goes on from there."""
        went_back = count < self.last_count
        if not went_back:
            self.total_j += (count - self.last_count) * joules_per_unit
        message = (
            f"{self.domain_name}: energy counter went back from {self.last_count:g} to {count:g}{unit} "
            "(GPU reset or driver reloaded?)"
            if went_back
            else None
        )
        self.last_count = count
        return message

    def add_power(self, power_w: float, now: float) -> None:
        """Take a new power sample: the trapezoid since the last one."""
        self.total_j += (self.last_w + power_w) / 2 * max(0.0, now - self.last_t)
        self.last_w, self.last_t = power_w, now
