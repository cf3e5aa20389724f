"""The user's own intensity time series, from a CSV or Parquet file.

Columns are found by name (`Time`/`Carbon Intensity` as in the Let's-Wait-Awhile traces,
`datetime`/`timestamp` with `carbon_intensity`/`g_per_kwh`, ...) or given explicitly. Timestamps
without a zone are UTC unless `tz` (an IANA name) says otherwise; `timezone_note` on every series
says which. Uneven steps and gaps are kept as they are (`IntensitySeries.from_points`). Bad input
(missing file or column, no rows, an unparseable, NaN or negative value) raises `WattprintInputError`
naming the file, the column and the line.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wattprint.errors import WattprintInputError
from wattprint.intensity.base import Intensity, IntensitySeries, as_utc

FIELD = "trace"
#: normalised column names (lower case, letters and digits only), in order of preference
TIME_NAMES = (
    "time",
    "datetime",
    "timestamp",
    "datetimeutc",
    "date",
    "pointtime",
    "start",
    "from",
    "periodstart",
)
VALUE_NAMES = (
    "carbonintensity",
    "gperkwh",
    "carbonintensitygperkwh",
    "carbonintensitygco2eqkwh",
    "gco2perkwh",
    "gco2eqperkwh",
    "intensity",
    "value",
)
PARQUET_SUFFIXES = (".parquet", ".pq")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _pick(columns: list[str], wanted: str | None, names: tuple[str, ...], kind: str, path: Path) -> str:
    """The column to use: the one asked for, an exact known name, or a single known prefix."""
    listed = ", ".join(repr(c) for c in columns)
    if wanted is not None:
        if wanted in columns:
            return wanted
        raise WattprintInputError(f"{FIELD}: column {wanted!r}", f"not in {path.name}; its columns are {listed}")
    normed = {c: _norm(c) for c in columns}
    for name in names:
        for column, n in normed.items():
            if n == name:
                return column
    prefixed = [c for c, n in normed.items() if any(n.startswith(name) for name in names)]
    if len(prefixed) == 1:
        return prefixed[0]
    what = "ambiguous" if prefixed else "not found"
    raise WattprintInputError(
        FIELD, f"{kind} column {what} in {path.name} (columns: {listed}); name it with {kind}_column="
    )


class _TimeReader:
    """Parses timestamps to aware UTC, applying `tz` to naive ones; counts naive and aware values."""

    def __init__(self, tz: tzinfo | None) -> None:
        self.tz = tz
        self.naive = self.aware = 0
        self._prev: datetime | None = None

    def __call__(self, raw: Any, where: str, path: Path) -> datetime:
        value: datetime | float
        if isinstance(raw, datetime):
            value = raw
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw):
            self.aware += 1  # epoch seconds are UTC by definition
            return datetime.fromtimestamp(float(raw), timezone.utc)
        else:
            value = self._parse(str(raw if raw is not None else "").strip(), where, path)
            if isinstance(value, float):
                self.aware += 1
                return datetime.fromtimestamp(value, timezone.utc)
        if value.tzinfo is not None:
            self.aware += 1
            return value.astimezone(timezone.utc)
        self.naive += 1
        if self.tz is None:
            return value.replace(tzinfo=timezone.utc)
        utc = value.replace(tzinfo=self.tz).astimezone(timezone.utc)
        if self._prev is not None and utc <= self._prev:
            # a wall-clock hour repeated at the end of summer time: its second occurrence is fold=1
            later = value.replace(tzinfo=self.tz, fold=1).astimezone(timezone.utc)
            utc = later if later > self._prev else utc
        self._prev = utc
        if utc.astimezone(self.tz).replace(tzinfo=None) != value:
            raise WattprintInputError(
                f"{FIELD}: tz",
                f"{path.name} {where}: {value} does not exist in {self.tz} (clocks skip it for summer time); "
                "the file does not follow this zone's daylight saving time: give a fixed offset such as "
                "Etc/GMT-1 (UTC+1), or no tz for UTC",
            )
        return utc

    @staticmethod
    def _parse(text: str, where: str, path: Path) -> datetime | float:
        try:
            return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            pass
        try:
            number = float(text)
            if math.isfinite(number):
                return number
        except ValueError:
            pass
        raise WattprintInputError(FIELD, f"{path.name} {where}: timestamp {text[:40]!r} is not ISO 8601")

    def note(self, tz_name: str | None) -> str:
        if self.naive and self.aware:
            zone = tz_name or "UTC"
            return f"mixed: {self.naive} timestamps without a zone read as {zone}, {self.aware} with offsets"
        if self.naive:
            if tz_name:
                return f"timestamps without a zone read as {tz_name} local time, converted to UTC"
            return "timestamps without a zone read as UTC (give tz= for local time)"
        return "timestamps carry their UTC offset" + (f"; tz {tz_name!r} not needed" if tz_name else "")


def _value(raw: Any, where: str, column: str, path: Path) -> float:
    text = "" if raw is None else str(raw).strip()
    if not text:
        raise WattprintInputError(f"{FIELD}: column {column!r}", f"{path.name} {where}: empty value")
    try:
        value = float(text)
    except ValueError:
        raise WattprintInputError(
            f"{FIELD}: column {column!r}", f"{path.name} {where}: {text[:40]!r} is not a number"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise WattprintInputError(
            f"{FIELD}: column {column!r}", f"{path.name} {where}: {text[:40]!r} is not a finite number >= 0"
        )
    return value


class TraceProvider:
    """Intensity from a user's time-series file; read once, at construction (errors surface early)."""

    name = "trace"

    def __init__(
        self,
        path: str | Path,
        region: str | None = None,
        time_column: str | None = None,
        value_column: str | None = None,
        tz: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.region = region
        zone: tzinfo | None = None
        if tz is not None:
            try:
                zone = ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise WattprintInputError(
                    f"{FIELD}: tz", f"unknown time zone {tz!r}; expected an IANA name such as Europe/Berlin"
                ) from None
        if not self.path.is_file():
            raise WattprintInputError(FIELD, f"file not found: {self.path}")
        reader = _TimeReader(zone)
        if self.path.suffix.lower() in PARQUET_SUFFIXES:
            rows, self.time_column, self.value_column = self._read_parquet(time_column, value_column)
            where = "row"
        else:
            rows, self.time_column, self.value_column = self._read_csv(time_column, value_column)
            where = "line"
        times, values = [], []
        seen: dict[datetime, int] = {}
        for number, raw_time, raw_value in rows:
            t = reader(raw_time, f"{where} {number}", self.path)
            if seen.setdefault(t, number) != number:
                raise WattprintInputError(
                    FIELD, f"{self.path.name} {where} {number}: timestamp {_iso(t)} repeats {where} {seen[t]}"
                )
            times.append(t)
            values.append(_value(raw_value, f"{where} {number}", self.value_column, self.path))
        if not times:
            raise WattprintInputError(FIELD, f"{self.path.name}: no rows")
        self.timezone_note = reader.note(tz)
        label = region or f"trace:{self.path.stem}"
        source = f"trace {self.path.name} ({len(times)} rows, column {self.value_column!r})"
        self._series = IntensitySeries.from_points(label, times, values, source, timezone_note=self.timezone_note)

    def _read_csv(self, time_column: str | None, value_column: str | None) -> tuple[list[Any], str, str]:
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if header is None:
                    raise WattprintInputError(FIELD, f"{self.path.name}: no rows (the file is empty)")
                columns = [c.strip() for c in header]
                tcol = _pick(columns, time_column, TIME_NAMES, "time", self.path)
                vcol = _pick(columns, value_column, VALUE_NAMES, "value", self.path)
                ti, vi = columns.index(tcol), columns.index(vcol)
                need = max(ti, vi)
                rows = []
                for line in reader:
                    if not line or not any(cell.strip() for cell in line):
                        continue
                    if len(line) <= need:
                        raise WattprintInputError(FIELD, f"{self.path.name} line {reader.line_num}: missing fields")
                    rows.append((reader.line_num, line[ti], line[vi]))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise WattprintInputError(FIELD, f"cannot read {self.path.name} as CSV ({type(exc).__name__})") from None
        return rows, tcol, vcol

    def _read_parquet(self, time_column: str | None, value_column: str | None) -> tuple[list[Any], str, str]:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise WattprintInputError(
                FIELD, "reading Parquet needs pyarrow: pip install 'wattprint[parquet]'"
            ) from None
        try:
            columns = list(pq.read_schema(self.path).names)
            tcol = _pick(columns, time_column, TIME_NAMES, "time", self.path)
            vcol = _pick(columns, value_column, VALUE_NAMES, "value", self.path)
            table = pq.read_table(self.path, columns=[tcol, vcol])
        except (OSError, pa.ArrowException) as exc:
            raise WattprintInputError(
                FIELD, f"cannot read {self.path.name} as Parquet ({type(exc).__name__})"
            ) from None
        times = table.column(tcol)
        if pa.types.is_timestamp(times.type) and times.type.unit == "ns":
            times = times.cast(pa.timestamp("us", times.type.tz), safe=False)
        rows = zip(range(1, table.num_rows + 1), times.to_pylist(), table.column(vcol).to_pylist(), strict=True)
        return list(rows), tcol, vcol

    # -- provider interface ----------------------------------------------------------------------
    def _label(self, region: str | None) -> str:
        return self.region or region or self._series.region

    @property
    def full_series(self) -> IntensitySeries:
        """The whole trace."""
        return self._series

    def intensity(self, region: str | None = None, at: datetime | None = None) -> Intensity:
        """Value at `at`; with `at` None, the time-weighted mean of the whole trace."""
        s = self._series
        if at is None:
            mean = s.mean_over(s.start, s.end)
            assert mean is not None  # a trace has at least one row
            src = f"{s.source}, mean {_iso(s.start)} .. {_iso(s.end)}; {self.timezone_note}"
            return Intensity(self._label(region), mean[0], src)
        value = s.at(at)
        if value is None:
            raise WattprintInputError(
                FIELD,
                f"{self.path.name} has no data at {_iso(as_utc(at))} "
                f"(it covers {_iso(s.start)} .. {_iso(s.end)}, with any gaps)",
            )
        return Intensity(self._label(region), value, f"{s.source}, {_iso(as_utc(at))}; {self.timezone_note}")

    def series(self, region: str | None, start: datetime, end: datetime) -> IntensitySeries:
        """The trace inside [start, end): possibly empty or with gaps (check `mean_over`'s coverage)."""
        clipped = self._series.clip(start, end)
        return IntensitySeries(
            self._label(region),
            clipped.starts,
            clipped.ends,
            clipped.g_per_kwh,
            clipped.source,
            timezone_note=self.timezone_note,
        )

    def forecast(self, region: str | None, start: datetime, end: datetime) -> IntensitySeries:
        """A trace used as a forecast (e.g. for scheduling): same as `series`."""
        return self.series(region, start, end)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
