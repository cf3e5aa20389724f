"""Whether the process that saved a "running" run is gone: judged by its pid on this host, by its heartbeat
elsewhere."""

from __future__ import annotations

import math
import socket
from datetime import datetime, timedelta, timezone

import psutil

DEFAULT_CHECKPOINT_S = 5.0  # assumed when a running row does not say how often it checkpoints
MIN_STALE_S = 60.0  # a run on another host is gone after max(3 x checkpoint_s, this) without heartbeat
PID_REUSE_TOLERANCE_S = 1.0


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; naive values (SQLite) are UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def pid_is_owner(pid: int, create_time: float | None) -> bool:
    """Whether `pid` is still the process that wrote the run (alive, not a zombie, not a reused pid)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if create_time is not None and abs(proc.create_time() - create_time) > PID_REUSE_TOLERANCE_S:
            return False
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, psutil.Error):
        return True  # exists but cannot be inspected: assume it is still the owner
    return True


def owner_gone(
    *,
    host: str,
    pid: int | None,
    pid_create_time: float | None,
    heartbeat_at: datetime,
    checkpoint_s: float | None,
    now: datetime | None = None,
    this_host: str | None = None,
) -> bool:
    """Whether the process that saved a "running" run is gone.

    On this host the pid tells (dead, zombie, or reused: create time differs by > 1 s); elsewhere,
    or without a pid, the heartbeat is stale after max(3 x checkpoint_s, 60 s).
    """
    this_host = socket.gethostname() if this_host is None else this_host
    if host and host == this_host and pid is not None:
        return not pid_is_owner(pid, pid_create_time)
    interval = checkpoint_s if checkpoint_s and math.isfinite(checkpoint_s) and checkpoint_s > 0 else None
    stale_after = max(3.0 * (interval or DEFAULT_CHECKPOINT_S), MIN_STALE_S)
    now = now or datetime.now(timezone.utc)
    return (now - as_utc(heartbeat_at)) > timedelta(seconds=stale_after)
