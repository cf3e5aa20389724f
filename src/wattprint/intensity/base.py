"""The contract of carbon-intensity providers, and the time series they return."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

from wattprint.errors import WattprintInputError


@dataclass(frozen=True)
class Intensity:
    """Grid carbon intensity for a region, with where the figure came from."""

    region: str
    g_per_kwh: float
    source: str
    #: PUE usually applied where this region is a data centre of a known provider, else None
    default_pue: float | None = None
    #: set when a live provider failed and this is the bundled figure instead: why (no secrets in it)
    fallback_reason: str | None = None


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; a naive value is taken as UTC (callers that know better convert first)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@dataclass(frozen=True)
class IntensitySeries:
    """Piecewise-constant intensity: value i holds over [starts[i], ends[i]).

    Steps may be uneven; a gap (ends[i] < starts[i+1]) is a period without data. Times are aware UTC.
    `fallback_reason` is set when a live provider failed and bundled data stands in (the record must
    say so); `timezone_note` says how naive timestamps of the input were read.
    """

    region: str
    starts: tuple[datetime, ...]
    ends: tuple[datetime, ...]
    g_per_kwh: tuple[float, ...]
    source: str
    fallback_reason: str | None = None
    timezone_note: str | None = None

    def __post_init__(self) -> None:
        if not (len(self.starts) == len(self.ends) == len(self.g_per_kwh)):
            raise ValueError("starts, ends and g_per_kwh must have the same length")

    @classmethod
    def from_points(
        cls,
        region: str,
        times: Sequence[datetime],
        values: Sequence[float],
        source: str,
        max_step_s: float | None = None,
        *,
        fallback_reason: str | None = None,
        timezone_note: str | None = None,
    ) -> IntensitySeries:
        """From point samples, each holding until the next; a step longer than `max_step_s` is a gap.

        The last point holds for the median step (or `max_step_s`, or one hour with a single point).
        """
        pairs = sorted(zip((as_utc(t) for t in times), values, strict=True), key=lambda p: p[0])
        starts = [t for t, _ in pairs]
        steps = sorted((b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False))
        median = steps[len(steps) // 2] if steps else (max_step_s or 3600.0)
        limit = max_step_s if max_step_s is not None else 3 * median
        ends = []
        for i, start in enumerate(starts):
            nxt = starts[i + 1] if i + 1 < len(starts) else None
            if nxt is not None and (nxt - start).total_seconds() <= limit:
                ends.append(nxt)
            else:
                try:
                    ends.append(datetime.fromtimestamp(start.timestamp() + min(median, limit), timezone.utc))
                except (ValueError, OverflowError, OSError):  # past 9999-12-31: datetime's last day
                    raise WattprintInputError(
                        "trace",
                        f"the point at {start.isoformat()} would hold past the year 9999; expected "
                        "times that end before 9999-12-31",
                    ) from None
        values = tuple(float(v) for _, v in pairs)
        return cls(region, tuple(starts), tuple(ends), values, source, fallback_reason, timezone_note)

    @classmethod
    def constant(
        cls,
        region: str,
        start: datetime,
        end: datetime,
        g_per_kwh: float,
        source: str,
        *,
        fallback_reason: str | None = None,
    ) -> IntensitySeries:
        """One value over [start, end) (a yearly average, or a fallback); an empty range holds one hour."""
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            end = datetime.fromtimestamp(start.timestamp() + 3600.0, timezone.utc)
        return cls(region, (start,), (end,), (float(g_per_kwh),), source, fallback_reason)

    def clip(self, start: datetime, end: datetime) -> IntensitySeries:
        """The part of the series inside [start, end), steps cut at the edges; may be empty."""
        start, end = as_utc(start), as_utc(end)
        kept = [
            (max(s, start), min(e, end), v)
            for s, e, v in zip(self.starts, self.ends, self.g_per_kwh, strict=True)
            if e > start and s < end
        ]
        return replace(
            self,
            starts=tuple(k[0] for k in kept),
            ends=tuple(k[1] for k in kept),
            g_per_kwh=tuple(k[2] for k in kept),
        )

    @property
    def start(self) -> datetime:
        return self.starts[0]

    @property
    def end(self) -> datetime:
        return self.ends[-1]

    def at(self, when: datetime) -> float | None:
        """Intensity at `when`, or None outside the data (including gaps)."""
        when = as_utc(when)
        i = bisect.bisect_right(self.starts, when) - 1
        if i < 0 or when >= self.ends[i]:
            return None
        return self.g_per_kwh[i]

    def mean_over(self, start: datetime, end: datetime) -> tuple[float, float] | None:
        """(time-weighted mean intensity, covered fraction) over [start, end); None if nothing covered."""
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            value = self.at(start)
            return None if value is None else (value, 1.0)
        total = covered = 0.0
        i = max(0, bisect.bisect_right(self.starts, start) - 1)
        while i < len(self.starts) and self.starts[i] < end:
            lo, hi = max(start, self.starts[i]), min(end, self.ends[i])
            if hi > lo:
                seconds = (hi - lo).total_seconds()
                total += seconds * self.g_per_kwh[i]
                covered += seconds
            i += 1
        if covered == 0:
            return None
        return total / covered, covered / (end - start).total_seconds()


@runtime_checkable
class IntensityProvider(Protocol):
    """Where gCO2e/kWh comes from: bundled averages, a user trace, or a live API.

    Live providers never raise for an outage or a malformed response: they return bundled data with
    `fallback_reason` set. They raise `WattprintInputError` only for bad input (an unknown region).
    """

    name: str

    def intensity(self, region: str, at: datetime | None = None) -> Intensity:
        """Intensity of `region` at `at` (None: now, or the provider's yearly figure)."""
        ...

    def series(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        """Known (historical) intensity of `region` over [start, end)."""
        ...

    def forecast(self, region: str, start: datetime, end: datetime) -> IntensitySeries:
        """Forecast intensity of `region` over [start, end) (a constant where nothing better is known)."""
        ...
