"""Run filters the store does not have (name substring, region, date range), on its public API.

The store filters by exact status and name; reports and the dashboard also want "name contains",
a region and a start-date range. Those are applied here to `store.list(status=...)`, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from wattprint.errors import WattprintInputError
from wattprint.record import STATUSES, RunRecord

DATE_HELP = "a date YYYY-MM-DD or an ISO 8601 time such as 2026-05-01T12:00:00Z"


def parse_when(text: str | None, field: str, *, end_of_day: bool = False) -> datetime | None:
    """A filter bound as an aware UTC datetime; a bare date means its start (or, for `until`, its end)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min, tzinfo=timezone.utc)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise WattprintInputError(field, f"cannot read {text!r}; expected {DATE_HELP}") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@dataclass(frozen=True)
class RunFilter:
    """Which runs to show. Empty fields do not filter; `until` is exclusive."""

    name: str = ""  # case-insensitive substring of the run's name
    status: str = ""  # one of STATUSES
    region: str = ""  # exact region code, case-insensitive
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500

    @classmethod
    def from_params(cls, params: Any) -> RunFilter:
        """From query parameters (a mapping of str to str); bad values raise WattprintInputError."""
        status = (params.get("status") or "").strip()
        if status and status not in STATUSES:
            raise WattprintInputError("status", f"got {status!r}; expected one of {', '.join(STATUSES)}")
        raw_limit = (params.get("limit") or "").strip()
        limit = 500
        if raw_limit:
            if not raw_limit.isdigit() or int(raw_limit) < 1:
                raise WattprintInputError("limit", f"got {raw_limit!r}; expected a positive whole number")
            limit = int(raw_limit)
        return cls(
            name=(params.get("name") or "").strip(),
            status=status,
            region=(params.get("region") or "").strip(),
            since=parse_when(params.get("since"), "since"),
            until=parse_when(params.get("until"), "until", end_of_day=True),
            limit=limit,
        )

    def matches(self, record: RunRecord) -> bool:
        if self.name and self.name.lower() not in record.name.lower():
            return False
        if self.status and record.status != self.status:
            return False
        if self.region and record.region.lower() != self.region.lower():
            return False
        started = _utc(record.started_at)
        if self.since is not None and started < self.since:
            return False
        return not (self.until is not None and started >= self.until)


def select_runs(records: list[RunRecord], run_filter: RunFilter) -> tuple[list[RunRecord], bool]:
    """The matching `records` (kept in order), at most `limit`; and whether more matched."""
    matching = [r for r in records if run_filter.matches(r)]
    return matching[: run_filter.limit], len(matching) > run_filter.limit
