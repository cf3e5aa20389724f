"""Numeric form of an `IntensitySeries` for planning: step arrays and cumulative integrals.

Times are float seconds since `origin` (the series' first instant). With I(t) the piecewise-constant
intensity (zero weight in gaps), the planner needs two piecewise-linear functions, kept exactly at
their knots (every step start and end):

    C(t) = integral of I over covered time up to t      (g/kWh x s)
    K(t) = covered seconds up to t

so that the emission integral of a run over [a, b) is C(b) - C(a), and the run is fully covered by
data iff K(b) - K(a) == b - a. Both are evaluated anywhere with `np.interp`, which is exact for
piecewise-linear functions given their knots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from wattprint.errors import WattprintInputError
from wattprint.intensity.base import IntensitySeries, as_utc

#: tolerance on times, s: two instants closer than this are the same instant
TIME_TOL_S = 1e-6


@dataclass(frozen=True)
class Grid:
    """Steps [lo[i], hi[i]) of value val[i] (g/kWh), sorted, non-overlapping; knots x with C and K."""

    origin: datetime
    lo: np.ndarray
    hi: np.ndarray
    val: np.ndarray
    x: np.ndarray
    c: np.ndarray
    k: np.ndarray
    region: str = ""
    source: str = ""

    @classmethod
    def from_series(cls, series: IntensitySeries, field: str = "trace") -> Grid:
        if not series.starts:
            raise WattprintInputError(field, "the intensity series is empty")
        origin = as_utc(series.starts[0])
        lo = np.array([(as_utc(s) - origin).total_seconds() for s in series.starts], dtype=np.float64)
        hi = np.array([(as_utc(e) - origin).total_seconds() for e in series.ends], dtype=np.float64)
        val = np.asarray(series.g_per_kwh, dtype=np.float64)
        return cls.from_arrays(origin, lo, hi, val, region=series.region, source=series.source, field=field)

    @classmethod
    def from_arrays(
        cls,
        origin: datetime,
        lo: np.ndarray,
        hi: np.ndarray,
        val: np.ndarray,
        *,
        region: str = "",
        source: str = "",
        field: str = "trace",
    ) -> Grid:
        lo, hi, val = (np.asarray(a, dtype=np.float64) for a in (lo, hi, val))
        keep = np.isfinite(val)  # a missing value is a gap, never a zero
        lo, hi, val = lo[keep], hi[keep], val[keep]
        if lo.size == 0:
            raise WattprintInputError(field, "the intensity series has no finite values")
        if np.any(hi <= lo):
            raise WattprintInputError(field, "a step of the intensity series ends before it starts")
        if np.any(np.diff(lo) <= 0) or np.any(hi[:-1] > lo[1:] + TIME_TOL_S):
            raise WattprintInputError(field, "the steps of the intensity series overlap or are not sorted")
        if np.any(val < 0):
            raise WattprintInputError(field, "the intensity series has negative values; expected gCO2e/kWh >= 0")
        hi = np.minimum(hi, np.append(lo[1:], np.inf))
        length = hi - lo
        c_hi = np.cumsum(val * length)
        k_hi = np.cumsum(length)
        c_lo = c_hi - val * length
        k_lo = k_hi - length
        x = np.stack([lo, hi], axis=1).ravel()
        c = np.stack([c_lo, c_hi], axis=1).ravel()
        k = np.stack([k_lo, k_hi], axis=1).ravel()
        keep_knot = np.ones(x.size, dtype=bool)
        keep_knot[1:] = x[1:] > x[:-1]
        return cls(origin, lo, hi, val, x[keep_knot], c[keep_knot], k[keep_knot], region, source)

    def with_values(self, val: np.ndarray) -> Grid:
        """The same steps with other values (a forecast of this trace, say)."""
        return Grid.from_arrays(self.origin, self.lo, self.hi, val, region=self.region, source=self.source)

    # -- time conversions -------------------------------------------------------------------------
    @property
    def origin_epoch(self) -> float:
        return self.origin.timestamp()

    @property
    def start_s(self) -> float:
        return float(self.lo[0])

    @property
    def end_s(self) -> float:
        return float(self.hi[-1])

    def to_s(self, when: datetime) -> float:
        return (as_utc(when) - self.origin).total_seconds()

    def to_dt(self, seconds: float) -> datetime:
        return self.origin + timedelta(seconds=round(float(seconds), 6))

    def epochs_to_s(self, epochs: np.ndarray | Sequence[float]) -> np.ndarray:
        return np.asarray(epochs, dtype=np.float64) - self.origin_epoch

    def times_to_s(self, times: Sequence[datetime]) -> np.ndarray:
        return np.array([self.to_s(t) for t in times], dtype=np.float64)

    # -- integrals --------------------------------------------------------------------------------
    def cum(self, t: np.ndarray | float) -> np.ndarray:
        return np.interp(t, self.x, self.c)

    def covered_cum(self, t: np.ndarray | float) -> np.ndarray:
        return np.interp(t, self.x, self.k)

    def integral(self, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
        """Emission integral over [a, b): sum of intensity x covered seconds (g/kWh x s)."""
        return self.cum(b) - self.cum(a)

    def covered(self, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
        """Seconds of [a, b) that the data covers."""
        return self.covered_cum(b) - self.covered_cum(a)

    def fully_covered(self, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
        length = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
        inside = (np.asarray(a) >= self.start_s - TIME_TOL_S) & (np.asarray(b) <= self.end_s + TIME_TOL_S)
        return inside & (self.covered(a, b) >= length - _cov_tol(length))

    def mean(self, a: float, b: float) -> float:
        cov = float(self.covered(a, b))
        return float(self.integral(a, b)) / cov if cov > 0 else float("nan")


def _cov_tol(length: np.ndarray | float) -> np.ndarray | float:
    return TIME_TOL_S + 1e-12 * np.abs(length)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


_INPUTS = (
    "an IntensitySeries, a pandas Series indexed by time, a pandas DataFrame with a time column (or index) and "
    "a gCO2e/kWh column, or (time, gCO2e/kWh) pairs"
)


def as_grid(data: object, field: str = "series") -> Grid:
    """The planner's grid for intensity data in any of the shapes users hold it in (see `_INPUTS`): times as
    datetimes, pandas Timestamps or ISO-8601 text (naive = UTC), each value holding until the next time.
    DataFrame columns are found by the names trace files use (time/timestamp/..., carbon_intensity/g_per_kwh/
    intensity/value, ...), or the one numeric column. Anything else is refused naming `field`."""
    if isinstance(data, Grid):
        return data
    if isinstance(data, IntensitySeries):
        return Grid.from_series(data)  # its faults name the trace it came from
    times, values, kind = _points(data, field)
    if not times:
        raise WattprintInputError(field, f"no points in the given {kind}; accepted: {_INPUTS}")
    parsed = [_time(t, field) for t in times]
    numbers = [_g_per_kwh(v, field) for v in values]
    if len(set(parsed)) != len(parsed):
        raise WattprintInputError(field, f"a time repeats in the given {kind}; each time must appear once")
    series = IntensitySeries.from_points("data", parsed, numbers, f"given {kind} ({len(parsed)} points)")
    return Grid.from_series(series, field)


def _points(data: object, field: str) -> tuple[list[object], list[object], str]:
    """(times, values, what it was) from a pandas Series or DataFrame, or from pairs."""
    if type(data).__module__.split(".")[0] == "pandas":  # duck-typed: pandas is never imported here
        frame: Any = data
        if hasattr(frame, "columns"):
            return (*_frame_columns(frame, field), "DataFrame")
        return list(frame.index), list(frame.to_numpy()), "Series"
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise WattprintInputError(field, f"got {type(data).__name__}; accepted: {_INPUTS}")
    pairs = list(data)
    if any(not isinstance(p, (tuple, list)) or len(p) != 2 for p in pairs):
        raise WattprintInputError(field, f"expected (time, gCO2e/kWh) pairs; accepted: {_INPUTS}")
    return [p[0] for p in pairs], [p[1] for p in pairs], "pairs"


def _frame_columns(frame: Any, field: str) -> tuple[list[object], list[object]]:
    from wattprint.intensity.trace import TIME_NAMES, VALUE_NAMES

    columns = list(frame.columns)  # labels as they are (0, a tuple...): matched by their text
    key = {i: "".join(ch for ch in str(c).lower() if ch.isalnum()) for i, c in enumerate(columns)}
    time_i = next((i for name in TIME_NAMES for i in key if key[i] == name), None)
    value_i = next((i for name in VALUE_NAMES for i in key if key[i] == name), None)
    if value_i is None:
        numeric = [i for i in key if i != time_i and getattr(frame[columns[i]].dtype, "kind", "?") in "iuf"]
        value_i = numeric[0] if len(numeric) == 1 else None
    if value_i is None:
        raise WattprintInputError(
            field, f"no gCO2e/kWh column among {[str(c) for c in columns]}; name it carbon_intensity or value"
        )
    time_column, value_column = (columns[time_i] if time_i is not None else None), columns[value_i]
    times = list(frame[time_column]) if time_column is not None else list(frame.index)
    return times, list(frame[value_column].to_numpy())


def _time(value: object, field: str) -> datetime:
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise WattprintInputError(field, f"time {value!r} is not ISO-8601 (e.g. 2026-12-07T14:00)") from None
    if not isinstance(value, datetime):
        raise WattprintInputError(field, f"time {value!r} is not a datetime or ISO-8601 text; accepted: {_INPUTS}")
    return as_utc(value)


def _g_per_kwh(value: object, field: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise WattprintInputError(field, f"intensity {value!r} is not a number of gCO2e/kWh") from None
    if not math.isfinite(number) or number < 0:
        raise WattprintInputError(field, f"intensity {value!r}; expected a finite number >= 0 of gCO2e/kWh")
    return number
