"""Plans as cluster submissions: a Slurm `sbatch --begin=` line and a cron line.

Slurm and cron read wall-clock times in the time zone of the machine that runs them: give it as
`tz` (an IANA name; default: this machine's local zone). An interruptible plan cannot be expressed
to either: the line starts the first slot and the job then runs without pausing.
"""

from __future__ import annotations

import shlex
from datetime import datetime, tzinfo

from wattprint.schedule.planning import Plan


def _zone(tz: str | None) -> tzinfo | None:
    if tz is None:
        return None
    from wattprint.schedule.backtesting import _zone as zone

    return zone(tz)


def _local(when: datetime, tz: str | None) -> datetime:
    zone = _zone(tz)
    return when.astimezone(zone) if zone is not None else when.astimezone()


def sbatch_line(plan: Plan, script: str = "job.sh", tz: str | None = None) -> str:
    """`sbatch --begin=START --deadline=DEADLINE SCRIPT`, times in the cluster's local zone."""
    begin = _local(plan.start, tz).strftime("%Y-%m-%dT%H:%M:%S")
    deadline = _local(plan.deadline, tz).strftime("%Y-%m-%dT%H:%M:%S")
    return f"sbatch --begin={begin} --deadline={deadline} {script}"


def cron_line(plan: Plan, command: str = "/path/to/job.sh", tz: str | None = None) -> str:
    """`MIN HOUR DAY MONTH * COMMAND` at the planned start (minute precision, rounded up so the job
    never starts before the planned window). It fires every year on that date: remove it afterwards."""
    start = _local(plan.start, tz)
    if start.second or start.microsecond:
        from datetime import timedelta

        start = (start + timedelta(minutes=1)).replace(second=0, microsecond=0)
    return f"{start.minute} {start.hour} {start.day} {start.month} * {command}"


def quote_command(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
