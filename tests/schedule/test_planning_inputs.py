"""`plan` takes intensity data in the shapes users hold it in: pandas Series or DataFrame, (time, value)
pairs, ISO text times; anything else is one clear error naming `series` (issue 15)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from wattprint.errors import WattprintInputError
from wattprint.schedule import plan

T0 = datetime(2026, 12, 7, tzinfo=timezone.utc)
VALUES = [400.0, 300.0, 50.0, 60.0, 500.0, 450.0]  # hourly: cleanest 2 h start at hour 2
TIMES = [T0 + timedelta(hours=i) for i in range(len(VALUES))]


def _start(series: object) -> datetime:
    return plan(series, "2h", earliest=T0, deadline=T0 + timedelta(hours=6)).start


def test_pairs_pandas_series_and_dataframes_plan_the_same() -> None:
    pd = pytest.importorskip("pandas")
    expected = T0 + timedelta(hours=2)
    assert _start(list(zip(TIMES, VALUES, strict=True))) == expected
    assert _start([(t.strftime("%Y-%m-%dT%H:%M"), v) for t, v in zip(TIMES, VALUES, strict=True)]) == expected
    assert _start(pd.Series(VALUES, index=pd.DatetimeIndex(TIMES))) == expected
    assert _start(pd.DataFrame({"timestamp": TIMES, "carbon_intensity": VALUES})) == expected
    assert _start(pd.DataFrame({"when": TIMES, "gCO2": VALUES}).set_index("when")) == expected  # one numeric


@pytest.mark.parametrize(
    ("series", "message"),
    [
        ("FR", "got str; accepted: an IntensitySeries"),
        (42, "got int; accepted"),
        ([(T0, 1.0, 2.0)], "expected (time, gCO2e/kWh) pairs"),
        ([("yesterday", 1.0)], "time 'yesterday' is not ISO-8601"),
        ([(T0, "dirty")], "intensity 'dirty' is not a number"),
        ([(T0, -5.0)], "expected a finite number >= 0"),
        ([(T0, 1.0), (T0, 2.0)], "a time repeats"),
        ([], "no points"),
    ],
)
def test_other_shapes_are_one_clear_error(series: object, message: str) -> None:
    with pytest.raises(WattprintInputError, match="^series: ") as info:
        _start(series)
    assert message in str(info.value)


def test_dataframes_with_non_text_column_labels() -> None:
    pd = pytest.importorskip("pandas")
    series = pd.Series(VALUES, index=pd.DatetimeIndex(TIMES))
    assert _start(series.to_frame()) == T0 + timedelta(hours=2)  # the column is labelled 0
