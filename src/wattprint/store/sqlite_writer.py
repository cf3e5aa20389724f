"""The tracker's writes to the default SQLite store, with the standard library's sqlite3.

A tracked script writes one row, then updates it at each checkpoint and at the end; importing SQLAlchemy
for that cost more CPU than everything else a tracker does in a short run (about 0.14 s of a 0.33 s
whole process here). This writer does those upserts with the same table, column formats and statements as
`RunStore.save` (the running checkpoint leaves the indexed columns alone, as there), so the store reads
its rows as its own (tests/store check both ways). Everything else (views, queries, PostgreSQL) stays on
`RunStore`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from wattprint.errors import StoreUnavailableError
from wattprint.store.first_row import SQLITE_BUSY_TIMEOUT_S, open_runs_db, sqlite_time

if TYPE_CHECKING:
    from wattprint.record import RunRecord

_COLUMNS = "name = ?, status = ?, started_at = ?, ended_at = ?, host = ?, pid = ?, pid_create_time = ?"
_UPDATE = (
    f"UPDATE runs SET {_COLUMNS}, checkpoint_s = coalesce(?, checkpoint_s), heartbeat_at = ?, record = ? "
    "WHERE run_id = ?"
)
# a checkpoint of a run stored as running: status and started_at (indexed) unchanged, one page written
_RUNNING_UPDATE = (
    "UPDATE runs SET name = ?, ended_at = ?, host = ?, pid = ?, pid_create_time = ?, "
    "checkpoint_s = coalesce(?, checkpoint_s), heartbeat_at = ?, record = ? "
    "WHERE run_id = ? AND status = 'running'"
)
_INSERT = (
    "INSERT INTO runs (name, status, started_at, ended_at, host, pid, pid_create_time, checkpoint_s, "
    "heartbeat_at, record, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SqliteWriter:
    """Saves run records to an SQLite file: `save` and `close`, the part of `RunStore` a tracker uses.
    One connection, kept open between checkpoints; safe to share between the threads of one tracker."""

    read_only = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._con is None:
            self._con = open_runs_db(self.path, SQLITE_BUSY_TIMEOUT_S)
        return self._con

    def save(self, record: RunRecord, checkpoint_s: float | None = None) -> None:
        """Insert or update `record` by run_id, stamping the heartbeat, in one transaction; a database that
        cannot be written raises `StoreUnavailableError` naming the file."""
        ended = sqlite_time(record.ended_at) if record.ended_at is not None else None
        started, beat, doc = sqlite_time(record.started_at), sqlite_time(datetime.now(timezone.utc)), record.to_json()
        with self._lock:
            try:
                self._upsert(record, checkpoint_s, started, ended, beat, doc)
            except (sqlite3.Error, OSError) as exc:  # a broken connection is not reused: the next save reopens
                self._drop()
                raise StoreUnavailableError("WATTPRINT_DB", f"cannot write the store at {self.url} now: {exc}") from exc

    def _upsert(
        self, record: RunRecord, checkpoint_s: float | None, started: str, ended: str | None, beat: str, doc: str
    ) -> None:
        # every column in the order of _UPDATE and _INSERT; the running checkpoint leaves out status and started_at
        row = (record.name, record.status, started, ended, record.host, record.pid, record.pid_create_time,
               checkpoint_s, beat, doc, record.run_id)  # fmt: skip
        con = self._connect()
        con.execute("BEGIN IMMEDIATE")
        try:
            updated = 0
            if record.status == "running":
                updated = con.execute(_RUNNING_UPDATE, (row[0], *row[3:])).rowcount
            if not updated:
                updated = con.execute(_UPDATE, row).rowcount
            if not updated:
                con.execute(_INSERT, row)
            con.execute("COMMIT")
        except BaseException:  # Ctrl-C too: never leave the write transaction open; re-raised
            with contextlib.suppress(sqlite3.Error):  # a dead connection has no transaction left to end
                con.execute("ROLLBACK")
            raise

    def _drop(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            with contextlib.suppress(sqlite3.Error):  # closing a broken connection may fail too
                con.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
