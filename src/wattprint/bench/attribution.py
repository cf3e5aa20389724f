"""Share a server's measured energy among the requests it was serving.

The rule: the energy of each sampled slice of time is split among the requests in flight during it, in
proportion to the time each was in flight within the slice. Two requests in flight together for a whole
slice get half of it each; a request that took four times as long gets four times the share. A slice with no
request in flight is charged to no request and reported as `unattributed_j` (idle time between requests,
the server's own background work). So the requests' energies add up to the server's energy over the slices
in which it was serving, and the rule needs no model of what a request costs.

`EnergySlicer` does this as the server runs: it samples the monitor every `slice_s` on a thread of its own,
and a request's figure is final at the first sample after it ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger("wattprint")


@dataclass
class Span:
    """One request: when it was in flight (time.monotonic seconds) and the energy charged to it so far."""

    start_s: float
    end_s: float | None = None
    energy_j: float = 0.0
    final: bool = False
    tag: str = ""


def split_slice(t0: float, t1: float, energy_j: float, spans: Sequence[Span]) -> float:
    """Charge `energy_j`, drawn over [t0, t1], to the spans in flight then, by overlap; returns what no span took."""
    if t1 <= t0:
        return energy_j
    overlaps = []
    for span in spans:
        end = t1 if span.end_s is None else span.end_s
        overlap = min(end, t1) - max(span.start_s, t0)
        if overlap > 0:
            overlaps.append((span, overlap))
    total = sum(o for _, o in overlaps)
    if total <= 0:
        return energy_j
    for span, overlap in overlaps:
        span.energy_j += energy_j * overlap / total
    return 0.0


@dataclass
class EnergySlicer:
    """Samples cumulative joules every `slice_s` and splits each slice among the spans in flight.

    `read_j` returns the cumulative energy (e.g. a monitor's attributed total after a fresh sample). Finished
    spans are handed to `on_final` once their last slice is split, then dropped. Thread-safe.
    """

    read_j: Callable[[], float]
    slice_s: float = 0.1
    on_final: Callable[[Span], None] | None = None
    on_tick: Callable[[], None] | None = None  # after each slice is split and its finished spans handed over
    unattributed_j: float = 0.0
    total_j: float = 0.0
    _spans: list[Span] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _last: tuple[float, float] | None = None
    _power_w: float = 0.0  # over the last slice: the estimate of the slice not yet split

    def start(self) -> EnergySlicer:
        self._last = (time.monotonic(), self.read_j())
        self._thread = threading.Thread(target=self._loop, name="wattprint-slicer", daemon=True)
        self._thread.start()
        return self

    def begin(self, tag: str = "") -> Span:
        span = Span(time.monotonic(), tag=tag)
        with self._lock:
            self._spans.append(span)
        return span

    def end(self, span: Span) -> None:
        span.end_s = time.monotonic()

    def in_flight(self) -> int:
        with self._lock:
            return sum(1 for s in self._spans if s.end_s is None)

    def estimate_j(self, span: Span) -> float:
        """The span's energy so far: its split slices, plus its share of the slice under way estimated at the
        last slice's power (a request still in flight has no final figure yet)."""
        now = time.monotonic()
        with self._lock:
            last_t = self._last[0] if self._last is not None else span.start_s
            in_flight = max(1, sum(1 for s in self._spans if s.end_s is None))
            since = max(0.0, now - max(last_t, span.start_s))
            return span.energy_j + since * self._power_w / in_flight

    def tick(self) -> None:
        """Split the slice since the last tick; finish the spans that ended before it."""
        energy = self.read_j()
        now = time.monotonic()
        with self._lock:
            if self._last is None:
                self._last = (now, energy)
                return
            t0, e0 = self._last
            self._last = (now, energy)
            delta = max(energy - e0, 0.0)
            self._power_w = delta / (now - t0) if now > t0 else self._power_w
            self.total_j += delta
            self.unattributed_j += split_slice(t0, now, delta, self._spans)
            done = [s for s in self._spans if s.end_s is not None and s.end_s <= now]
            self._spans = [s for s in self._spans if not (s.end_s is not None and s.end_s <= now)]
        for span in done:
            span.final = True
            if self.on_final is not None:
                self.on_final(span)
        if self.on_tick is not None:
            self.on_tick()

    def _loop(self) -> None:
        warned = False
        while not self._stop.wait(self.slice_s):
            try:
                self.tick()
            except Exception as exc:  # a failed read skips one slice; the next one covers its time
                if not warned:
                    warned = True
                    log.warning("wattprint: energy slice skipped (%s); later faults are not logged", exc)

    def stop(self) -> None:
        """Stop sampling after a last tick, so every finished span is final."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.tick()
