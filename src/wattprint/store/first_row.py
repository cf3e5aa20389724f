"""A run's first row, written on the caller's thread before `Tracker.start()` returns (standard library only).

The store proper (SQLAlchemy, pydantic) opens on a background thread so that importing them never delays the
job; but a CPU-busy main thread starves that thread of the GIL, and the first row appeared 9-11 s after
start(): a kill -9 meanwhile left nothing. For the default SQLite store this module writes the row the store
itself would write for a running run (same table, same column formats, the record as JSON), with sqlite3,
in about a millisecond; the store's first checkpoint then updates it. `RUNS_DDL` is the schema SQLAlchemy
creates (tests/store compares the two), so whichever comes first makes the same table.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

RUNS_DDL = (
    "CREATE TABLE IF NOT EXISTS runs (\n"
    "\trun_id VARCHAR(255) NOT NULL, \n\tname TEXT NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n"
    "\tstarted_at DATETIME NOT NULL, \n\tended_at DATETIME, \n\thost VARCHAR(255) NOT NULL, \n"
    "\tpid INTEGER, \n\tpid_create_time DOUBLE, \n\tcheckpoint_s DOUBLE, \n\theartbeat_at DATETIME NOT NULL, \n"
    "\trecord TEXT NOT NULL, \n\tPRIMARY KEY (run_id)\n)",
    "CREATE INDEX IF NOT EXISTS ix_runs_started_at ON runs (started_at)",
    "CREATE INDEX IF NOT EXISTS ix_runs_status ON runs (status)",
)
SQLITE_BUSY_TIMEOUT_S = 30.0  # the store's too: how long a writer waits for another's lock
FIRST_ROW_TIMEOUT_S = 1.0  # on the caller's thread at start(): past this the background store waits instead

_INSERT = (
    "INSERT OR IGNORE INTO runs (run_id, name, status, started_at, ended_at, host, pid, pid_create_time, "
    "checkpoint_s, heartbeat_at, record) VALUES (?, ?, 'running', ?, NULL, ?, ?, ?, ?, ?, ?)"
)


def sqlite_file(url: str) -> Path | None:
    """The file of a plain `sqlite:///path` URL (no query, not in memory), percent-decoded as SQLAlchemy
    reads it; None for anything else."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = unquote(url[len(prefix) :])
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return Path(path).expanduser()


def check_sqlite_path(path: Path, field: str = "WATTPRINT_DB", create_folder: bool = True) -> None:
    """Lasting mistakes, not outages, refused in one line: an SQLite "file" that is a directory, or whose folder
    cannot be created (a file in its way, no permission)."""
    from wattprint.errors import WattprintInputError

    if path.is_dir():
        raise WattprintInputError(
            field, f"{str(path)!r} is a directory; give the SQLite file's path, e.g. sqlite:///{path / 'wattprint.db'}"
        )
    if create_folder:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WattprintInputError(
                field,
                f"cannot create the directory {str(path.parent)!r} for the SQLite file "
                f"({exc.strerror or type(exc).__name__}); give a writable path, e.g. sqlite:///path/to/wattprint.db",
            ) from None


def absolute_sqlite_url(url: str) -> str:
    """`url` with a relative SQLite path made absolute now (other URLs unchanged), so that every writer of a
    run opens the same file whatever the working directory is when it opens it."""
    path = sqlite_file(url)
    if path is None or path.is_absolute():
        return url
    return "sqlite:///" + quote(str(path.resolve()), safe="/:@!$&'()*+,;=-._~")


def sqlite_time(value: datetime) -> str:
    """SQLAlchemy's storage format for SQLite DATETIME columns, in UTC."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def open_runs_db(path: Path, timeout_s: float) -> sqlite3.Connection:
    """A connection to the SQLite store at `path` set up as the store sets its own (WAL, busy timeout), with
    the runs table created if missing; usable from any thread (its user serialises the calls)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        con.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        con.execute("PRAGMA journal_mode=WAL")  # as the store sets it; persistent in the file
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("BEGIN IMMEDIATE")  # one writer creates the schema; the others find it
        try:
            for statement in RUNS_DDL:
                con.execute(statement)
            con.execute("COMMIT")
        except BaseException:  # Ctrl-C too: never leave the write transaction open; re-raised
            con.execute("ROLLBACK")
            raise
    except BaseException:  # a file that cannot be set up is not kept half open; re-raised
        con.close()
        raise
    return con


def insert_running(path: Path, fields: dict[str, Any], checkpoint_s: float, timeout_s: float) -> None:
    """Insert the running row for a record's `fields` (as Tracker.start() builds them) unless one exists.

    Raises OSError or sqlite3.Error on failure; the caller flags it and the background store retries."""
    started_at: datetime = fields["started_at"]
    doc = dict(
        fields, started_at=started_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"), status="running"
    )
    con = open_runs_db(path, timeout_s)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute(
                _INSERT,
                (
                    fields["run_id"],
                    fields["name"],
                    sqlite_time(started_at),
                    fields.get("host") or "",
                    fields.get("pid"),
                    fields.get("pid_create_time"),
                    checkpoint_s,
                    sqlite_time(datetime.now(timezone.utc)),
                    json.dumps(doc, default=str, allow_nan=False),
                ),
            )
            con.execute("COMMIT")
        except BaseException:  # Ctrl-C too: never leave the write transaction open; re-raised
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
