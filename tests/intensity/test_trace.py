"""TraceProvider on the real 2020 traces (from ../shared) and on small synthetic files."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import SHARED
from wattprint.errors import WattprintInputError
from wattprint.intensity import get_provider
from wattprint.intensity.trace import TraceProvider

TRACES = SHARED / "data" / "carbon-traces"
UTC = timezone.utc
YEAR = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC))


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "mean"), [("de", 313.4), ("gb", 212.9), ("fr", 56.3)])
def test_real_traces_load_fast_and_give_the_published_2020_means(name: str, mean: float) -> None:
    path = TRACES / f"{name}-2020.csv"
    if not path.exists():
        pytest.skip(f"shared trace {path} not present")
    began = time.perf_counter()
    p = TraceProvider(path, region=name.upper())
    assert time.perf_counter() - began < 1.0
    got, covered = p.full_series.mean_over(*YEAR)
    assert got == pytest.approx(mean, abs=0.05) and covered == 1.0
    assert p.timezone_note == "timestamps without a zone read as UTC (give tz= for local time)"
    assert p.series("X", *YEAR).timezone_note == p.timezone_note


def test_real_de_trace_uneven_steps_are_kept() -> None:
    path = TRACES / "de-2020.csv"
    if not path.exists():
        pytest.skip(f"shared trace {path} not present")
    s = TraceProvider(path).full_series
    steps = {(e - b).total_seconds() for b, e in zip(s.starts, s.ends, strict=True)}
    assert steps == {900.0, 1800.0} and len(s.starts) == 37147


def test_real_trace_with_a_daylight_saving_zone_is_refused_clearly() -> None:
    path = TRACES / "de-2020.csv"
    if not path.exists():
        pytest.skip(f"shared trace {path} not present")
    with pytest.raises(WattprintInputError, match=r"line 9610: 2020-03-29 02:00:00 does not exist in Europe/Berlin"):
        TraceProvider(path, tz="Europe/Berlin")
    shifted = TraceProvider(path, tz="Etc/GMT-1")  # fixed UTC+1
    assert shifted.full_series.start == datetime(2019, 12, 19, 23, tzinfo=UTC)


def test_uneven_steps_and_gaps(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "datetime,carbon_intensity\n"
        "2024-01-01T00:00:00,100\n2024-01-01T00:15:00,200\n2024-01-01T00:45:00,300\n"
        "2024-01-01T01:00:00,400\n2024-01-01T06:00:00,500\n",
    )
    p = TraceProvider(path, region="DE")
    s = p.full_series
    assert p.intensity("DE", datetime(2024, 1, 1, 0, 50, tzinfo=UTC)).g_per_kwh == 300
    assert s.at(datetime(2024, 1, 1, 3, tzinfo=UTC)) is None  # gap
    with pytest.raises(WattprintInputError, match="no data at 2024-01-01T03:00:00Z"):
        p.intensity("DE", datetime(2024, 1, 1, 3, tzinfo=UTC))
    mean, covered = s.mean_over(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 2, tzinfo=UTC))
    # the step before a gap holds for the median step (30 min), not until the next point
    assert covered == pytest.approx(1.5 / 2)
    assert mean == pytest.approx((100 * 15 + 200 * 30 + 300 * 15 + 400 * 30) / 90)
    assert "mean" in p.intensity().source and p.intensity().region == "DE"


def test_naive_timestamps_with_a_zone_and_aware_ones(tmp_path: Path) -> None:
    naive = write(tmp_path, "Time,Carbon Intensity\n2024-07-01 12:00:00,50\n2024-07-01 13:00:00,60\n")
    local = TraceProvider(naive, tz="Europe/Paris")
    assert local.full_series.start == datetime(2024, 7, 1, 10, tzinfo=UTC)
    assert local.timezone_note == "timestamps without a zone read as Europe/Paris local time, converted to UTC"
    assert TraceProvider(naive).full_series.start == datetime(2024, 7, 1, 12, tzinfo=UTC)
    aware = write(tmp_path, "timestamp,g_per_kwh\n2024-07-01T12:00:00+02:00,50\n2024-07-01T11:00:00Z,60\n", "a.csv")
    p = TraceProvider(aware)
    assert p.full_series.starts == (
        datetime(2024, 7, 1, 10, tzinfo=UTC),
        datetime(2024, 7, 1, 11, tzinfo=UTC),
    )
    assert p.timezone_note == "timestamps carry their UTC offset"


def test_repeated_hour_at_the_end_of_summer_time_is_the_second_occurrence(tmp_path: Path) -> None:
    rows = ["01:30", "02:00", "02:30", "02:00", "02:30", "03:00"]
    text = "time,value\n" + "".join(f"2024-10-27 {r}:00,{i}\n" for i, r in enumerate(rows))
    s = TraceProvider(write(tmp_path, text), tz="Europe/Berlin").full_series
    steps = {(b - a) for a, b in zip(s.starts, s.starts[1:], strict=False)}
    assert steps == {timedelta(minutes=30)} and s.start == datetime(2024, 10, 26, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "field", "match"),
    [
        (
            "Time,Carbon Intensity\n2024-01-01 00:00,1\n2024-01-01 01:00,nan\n",
            "trace: column 'Carbon Intensity'",
            "line 3: 'nan' is not a finite",
        ),
        (
            "Time,Carbon Intensity\n2024-01-01 00:00,\n",
            "trace: column 'Carbon Intensity'",
            "line 2: empty value",
        ),
        (
            "Time,Carbon Intensity\n2024-01-01 00:00,-5\n",
            "trace: column 'Carbon Intensity'",
            "finite number >= 0",
        ),
        (
            "Time,Carbon Intensity\n2024-01-01 00:00,abc\n",
            "trace: column 'Carbon Intensity'",
            "'abc' is not a number",
        ),
        ("Time,Carbon Intensity\nyesterday,5\n", "trace", "line 2: timestamp 'yesterday' is not ISO 8601"),
        ("Time,Carbon Intensity\n", "trace", "no rows"),
        ("", "trace", "no rows"),
        ("when,what\n2024-01-01,1\n", "trace", "time column not found"),
        ("Time,value,intensity\n2024-01-01,1,2\n", "trace", None),
        (
            "Time,Carbon Intensity\n2024-01-01 00:00,1\n2024-01-01 00:00,2\n",
            "trace",
            "line 3: timestamp 2024-01-01T00:00:00Z repeats line 2",
        ),
    ],
)
def test_bad_traces_get_a_clear_error(tmp_path: Path, text: str, field: str, match: str | None) -> None:
    path = write(tmp_path, text)
    if match is None:  # two value candidates: the preferred name wins, no error
        assert TraceProvider(path).value_column == "intensity"
        return
    with pytest.raises(WattprintInputError, match=match) as info:
        TraceProvider(path)
    assert info.value.field == field


def test_explicit_columns_unknown_column_zone_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "start,end,co2\n2024-01-01T00:00Z,2024-01-01T01:00Z,7\n")
    assert TraceProvider(path, time_column="start", value_column="co2").intensity().g_per_kwh == 7
    with pytest.raises(WattprintInputError, match=r"trace: column 'nope': not in t.csv; its columns are 'start'"):
        TraceProvider(path, time_column="start", value_column="nope")
    with pytest.raises(WattprintInputError, match="trace: tz: unknown time zone 'Mars/Base'"):
        TraceProvider(path, value_column="co2", tz="Mars/Base")
    with pytest.raises(WattprintInputError, match="trace: file not found"):
        TraceProvider(tmp_path / "missing.csv")
    with pytest.raises(WattprintInputError, match="trace: the trace provider needs a file path"):
        get_provider("trace")
    assert get_provider("trace", path=path, value_column="co2").name == "trace"


def test_parquet_with_timestamp_and_string_columns(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    naive = [datetime(2024, 1, 1, h) for h in (0, 1, 3)]
    pq.write_table(
        pa.table({"datetime": pa.array(naive, pa.timestamp("ns")), "g_per_kwh": [10.0, 20.0, 30.0]}),
        tmp_path / "a.parquet",
    )
    p = TraceProvider(tmp_path / "a.parquet", tz="UTC")
    assert p.full_series.g_per_kwh == (10.0, 20.0, 30.0) and p.full_series.start == naive[0].replace(tzinfo=UTC)
    aware = [datetime(2024, 1, 1, h, tzinfo=UTC) for h in (0, 1)]
    pq.write_table(
        pa.table({"ts": pa.array(aware, pa.timestamp("us", "UTC")), "carbon_intensity": [1.0, None]}),
        tmp_path / "b.parquet",
    )
    with pytest.raises(WattprintInputError, match="b.parquet row 2: empty value"):
        TraceProvider(tmp_path / "b.parquet", time_column="ts")
    pq.write_table(pa.table({"Time": ["2024-01-01T00:00:00Z"], "Carbon Intensity": [5]}), tmp_path / "c.pq")
    c = TraceProvider(tmp_path / "c.pq")
    assert c.intensity().g_per_kwh == 5 and c.timezone_note == "timestamps carry their UTC offset"
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(WattprintInputError, match="cannot read bad.parquet as Parquet"):
        TraceProvider(tmp_path / "bad.parquet")
