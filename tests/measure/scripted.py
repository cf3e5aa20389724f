"""A PowerSource whose cumulative readings are scripted by the test (faults included)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from wattprint.measure.base import Domain, Reading


class ScriptedSource:
    """Returns the next scripted value per read; a value that is an exception instance is raised."""

    def __init__(self, values: Sequence[object], name: str = "scripted", component: str = "cpu") -> None:
        self.name = name
        self._domain = Domain(f"{name}:0", component, "measured")  # type: ignore[arg-type]
        self._values = list(values)
        self.reads = 0
        self.closed = 0

    def domains(self) -> Sequence[Domain]:
        return (self._domain,)

    def read(self) -> Reading:
        value = self._values[min(self.reads, len(self._values) - 1)]
        self.reads += 1
        if isinstance(value, BaseException):
            raise value
        return Reading(time.monotonic(), {self._domain.name: value})  # type: ignore[dict-item]

    def close(self) -> None:
        self.closed += 1


class Clock:
    """A monotonic clock the test moves by hand: each call returns `now`."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
