"""Durations ("90m", "8h", "1h30m", "2d", "PT2H") and times (ISO-8601; naive means UTC)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

from wattprint.errors import WattprintInputError

DURATION_EXAMPLES = "a duration like 45s, 90m, 8h, 1h30m, 2d or ISO-8601 PT2H"
TIME_EXAMPLES = "an ISO-8601 time like 2020-03-01T06:00 (naive times are UTC) or 2020-03-01T07:00+01:00"

_UNIT_S = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_COMPACT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(w|d|h|m|s)", re.IGNORECASE)
_ISO = re.compile(
    r"P(?:(?P<w>\d+(?:[.,]\d+)?)W)?(?:(?P<d>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:[.,]\d+)?)H)?(?:(?P<m>\d+(?:[.,]\d+)?)M)?(?:(?P<s>\d+(?:[.,]\d+)?)S)?)?",
    re.IGNORECASE,
)


def parse_duration(value: str | float | int | timedelta, field: str = "duration") -> timedelta:
    """A strictly positive duration. Strings: "90m", "8h", "1h30m", "2d", "1.5h", "PT2H", "P1DT2H".

    Numbers and timedeltas pass through (numbers are seconds). A bare number in a string is refused:
    "90" could mean seconds or minutes.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value.strip(), field)
    else:
        raise WattprintInputError(field, f"got {value!r}; expected {DURATION_EXAMPLES}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise WattprintInputError(field, f"got {value!r}; expected a positive duration ({DURATION_EXAMPLES})")
    return timedelta(seconds=seconds)


def _parse_duration_text(text: str, field: str) -> float:
    if text[:1] in ("P", "p"):
        match = _ISO.fullmatch(text)
        if match and any(match.groupdict().values()) and not text.upper().endswith("T"):
            return sum(float(v.replace(",", ".")) * _UNIT_S[k] for k, v in match.groupdict().items() if v)
        raise WattprintInputError(field, f"got {text!r}; expected {DURATION_EXAMPLES}")
    compact = text.replace(" ", "")
    parts = _COMPACT.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise WattprintInputError(field, f"got {text!r}; expected {DURATION_EXAMPLES}")
    units = [u.lower() for _, u in parts]
    if len(set(units)) != len(units) or units != sorted(units, key=list(_UNIT_S).index):
        raise WattprintInputError(field, f"got {text!r}; expected units largest first, each once ({DURATION_EXAMPLES})")
    return sum(float(n) * _UNIT_S[u.lower()] for n, u in parts)


def parse_time(value: str | datetime, field: str = "time") -> datetime:
    """An aware UTC datetime from ISO-8601 text ("Z" and offsets accepted; naive is taken as UTC)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if not isinstance(value, str):
        raise WattprintInputError(field, f"got {value!r}; expected {TIME_EXAMPLES}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise WattprintInputError(field, f"got {value!r}; expected {TIME_EXAMPLES}") from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def format_duration(seconds: float) -> str:
    """Compact human form: 1h30m, 45s, 2d3h."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds:.2g}s"
    total = int(round(seconds))
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out[:2])


def iso(when: datetime) -> str:
    """ISO-8601 UTC with a Z, to the second (or microsecond when there are any)."""
    when = when.astimezone(timezone.utc)
    spec = "seconds" if when.microsecond == 0 else "milliseconds" if when.microsecond % 1000 == 0 else "auto"
    return when.isoformat(timespec=spec).replace("+00:00", "Z")
