"""The run store on SQLAlchemy Core: one `runs` table, SQLite (WAL) by default, any SQLAlchemy URL.

A tracker saves its run every few seconds from a sampler thread, so a save is one short transaction
running statements built once. Several processes may write to one SQLite file at once: writes take
the lock up front (BEGIN IMMEDIATE), wait on a busy timeout and retry briefly when still locked.

A run stored as "running" whose owner is gone (dead or reused pid on this host, stale heartbeat on
another) is reported, and persisted, as "interrupted" by `get` and `list`.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import (
    Column,
    DateTime,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from wattprint.errors import StoreUnavailableError, WattprintError, WattprintInputError
from wattprint.record import STATUSES, RunRecord
from wattprint.store.export import export_csv, export_json
from wattprint.store.first_row import SQLITE_BUSY_TIMEOUT_S, check_sqlite_path
from wattprint.store.liveness import as_utc, owner_gone
from wattprint.store.urls import ACCEPTED_URLS, DB_FIELD, describe_url, exc_text, one_line, parse_url

__all__ = ["RunStore", "open_store"]

log = logging.getLogger(__name__)

RUN_ID_FIELD = "RUN_ID"
PG_CONNECT_TIMEOUT_S = 5
_RETRIES = 6
_BACKOFF_S = 0.02

_T = TypeVar("_T")

metadata = MetaData()
runs = Table(
    "runs",
    metadata,
    Column("run_id", String(255), primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=True),
    Column("pid_create_time", Double, nullable=True),
    Column("checkpoint_s", Double, nullable=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("record", Text, nullable=False),
    Index("ix_runs_started_at", "started_at"),
    Index("ix_runs_status", "status"),
)

# What a read needs to decide liveness and build the record.
# the record model's last field: a stored document that has it was written by the current writer
_CURRENT_LAST_FIELD = f'"{list(RunRecord.model_fields)[-1]}":'

_ROW_COLUMNS = (
    runs.c.run_id,
    runs.c.name,
    runs.c.status,
    runs.c.started_at,
    runs.c.host,
    runs.c.pid,
    runs.c.pid_create_time,
    runs.c.checkpoint_s,
    runs.c.heartbeat_at,
    runs.c.record,
)


# --------------------------------------------------------------------------------------------------
# URL handling


# rows, each with its record where a running row had to be judged (else None); `list` is a RunStore method
_Judged = list[tuple[Any, RunRecord | None]]


# --------------------------------------------------------------------------------------------------
# Errors worth retrying


def _transient(exc: DBAPIError) -> bool:
    """Lock contention (SQLite), a dropped connection: worth another try."""
    if exc.connection_invalidated:
        return True
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return any(s in text for s in ("database is locked", "database table is locked", "database is busy"))


def _schema_race(exc: DBAPIError) -> bool:
    """Another process created the schema at the same time as us."""
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return "already exists" in text or "duplicate key" in text or _transient(exc)


def _sleep(attempt: int) -> None:
    time.sleep(_BACKOFF_S * (2**attempt) * (0.5 + random.random()))


class _DriverStatement:
    """A statement compiled once for one dialect and run through `Connection.exec_driver_sql`.

    `Connection.execute(statement)` derives the statement's cache key on every call; with the cold
    caches of a checkpoint taken every few seconds that is ~0.4 ms, most of a save. This runs the same
    SQL with the same parameter conversion (each bind type's processor for the dialect) for a fifth.
    """

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self._order: tuple[str, ...] | None = tuple(compiled.positiontup or ()) if compiled.positional else None
        self._processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors[name] = processor

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """`values` by bind name, converted, in the driver's parameter style."""
        processors = self._processors
        if self._order is None:
            return {k: (processors[k](v) if k in processors else v) for k, v in values.items()}
        return tuple([processors[k](values[k]) if k in processors else values[k] for k in self._order])

    def execute(self, conn: Connection, values: dict[str, Any]) -> Any:
        return conn.exec_driver_sql(self.sql, self.parameters(values))


# --------------------------------------------------------------------------------------------------
# The store


class RunStore:
    """Runs storage behind one SQLAlchemy engine; safe to share between threads of one process.

    Build it with `open_store(url)`. A bad URL or an unreachable database raises
    `WattprintInputError("WATTPRINT_DB", ...)` here, with any password redacted.
    """

    def __init__(self, url: str, host: str | None = None, *, read_only: bool = False) -> None:
        parsed = parse_url(url)
        self._secret = parsed.password if isinstance(parsed.password, str) else None
        self.url: str = describe_url(parsed)
        """The URL with its password hidden, for messages."""
        self._lock = threading.RLock()
        self._closed = False
        self._saver: Connection | None = None  # kept open for checkpoints: a pool checkout per save costs more
        self._this_host = host or socket.gethostname()
        self.read_only = read_only
        """Never writes: runs whose owner is gone show as interrupted without being stored so (the views)."""
        try:
            self._engine = self._create_engine(parsed)
        except WattprintInputError:
            raise
        except Exception as exc:  # an engine that cannot be built from a parsed URL: bad input, one line
            reason = exc_text(exc, self._secret)
            raise WattprintInputError(
                DB_FIELD, f"cannot open the store at {self.url}: {reason}; expected {ACCEPTED_URLS}"
            ) from None
        self._write_engine = self._engine.execution_options(wattprint_write=True)
        try:
            if not read_only or not self._has_table():  # read-only too: a store never written to starts empty
                self._create_schema()
        except Exception as exc:  # the URL is fine; the database does not answer (or cannot be written) now
            self._engine.dispose()
            raise StoreUnavailableError(
                DB_FIELD, f"cannot open the store at {self.url} now: {exc_text(exc, self._secret)}"
            ) from None
        self._prepare()

    # -- opening ----------------------------------------------------------------------------------

    def _create_engine(self, url: URL) -> Engine:
        """Engine for `url`: SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE for writes."""
        self.is_sqlite = url.get_backend_name() == "sqlite"
        try:
            if self.is_sqlite:
                engine = self._sqlite_engine(url)
            else:
                kwargs: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 4}
                connect_args: dict[str, Any] = {}
                if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
                    connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
                engine = create_engine(url, connect_args=connect_args, **kwargs)
        except NoSuchModuleError:
            raise WattprintInputError(
                DB_FIELD, f"unknown database kind {url.drivername!r} in {self.url}; expected {ACCEPTED_URLS}"
            ) from None
        except ImportError as exc:
            missing = getattr(exc, "name", None) or one_line(str(exc), self._secret)
            raise WattprintInputError(
                DB_FIELD,
                f"the driver for {url.drivername!r} is not installed (missing module {missing}); install it "
                f"(for PostgreSQL: pip install 'wattprint[postgres]') or use {ACCEPTED_URLS}",
            ) from None
        if engine.dialect.is_async:
            engine.dispose()
            raise WattprintInputError(
                DB_FIELD, f"async driver {url.drivername!r} is not supported; expected {ACCEPTED_URLS}"
            )
        return engine

    def _sqlite_engine(self, url: URL) -> Engine:
        database = url.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}
        path = None if in_memory or url.query.get("uri") else Path(database).expanduser()
        if path is not None:
            check_sqlite_path(path, DB_FIELD, create_folder=False)
        if path is not None and self.read_only:
            if path.is_file():
                url, path = self._sqlite_read_only_url(path, connect_args), None
            elif not os.access(path.parent if path.parent.is_dir() else path.parent.parent, os.W_OK):
                # a view of a store never written to, where none can be created (read-only file system)
                in_memory, url, path = True, make_url("sqlite://"), None
        if in_memory:
            engine = create_engine(url, poolclass=StaticPool, connect_args=connect_args)
        else:
            if path is not None:
                check_sqlite_path(path, DB_FIELD)
                url = url.set(database=str(path))
            engine = create_engine(url, pool_size=2, max_overflow=4, connect_args=connect_args)
        busy_ms = int(SQLITE_BUSY_TIMEOUT_S * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN, so writes can take the lock up front.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
                if not in_memory and not self.read_only:
                    cursor.execute("PRAGMA journal_mode=WAL")  # persistent in the file; a no-op once set
                cursor.execute("PRAGMA synchronous=NORMAL")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("wattprint_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @staticmethod
    def _sqlite_read_only_url(path: Path, connect_args: dict[str, Any]) -> URL:
        """A URL that cannot write the file (SQLite's mode=ro), for the views: they work where the file, or
        its whole file system, is read-only. A WAL file in a folder where SQLite may not create its
        shared-memory file opens only as immutable (no locks: a snapshot, fine where no one can write)."""
        for flags in ("mode=ro", "mode=ro&immutable=1"):
            url = make_url(f"sqlite:///file:{quote(str(path.resolve()))}?{flags}&uri=true")
            probe = create_engine(url, poolclass=StaticPool, connect_args=connect_args)
            try:
                with probe.connect() as conn:
                    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
                return url
            except DBAPIError:
                if "immutable" in flags:
                    raise
            finally:
                probe.dispose()
        raise AssertionError("unreachable")  # pragma: no cover

    def _create_schema(self) -> None:
        """Create the table and indexes unless present; tolerate another process doing it at once."""
        for attempt in range(_RETRIES + 4):
            try:
                with self._write() as conn:
                    metadata.create_all(conn, checkfirst=True)
                return
            except DBAPIError as exc:
                if attempt == _RETRIES + 3 or not _schema_race(exc):
                    raise
                log.debug("schema creation raced (%s); retrying", exc_text(exc, self._secret))
                _sleep(min(attempt, 4))

    def _has_table(self) -> bool:
        from sqlalchemy import inspect

        with self._engine.connect() as conn:
            return bool(inspect(conn).has_table("runs"))

    def _prepare(self) -> None:
        """Build the save statements once; SQLAlchemy caches their compiled form."""
        values = {
            "name": bindparam("p_name"),
            "status": bindparam("p_status"),
            "started_at": bindparam("p_started_at", type_=runs.c.started_at.type),
            "ended_at": bindparam("p_ended_at", type_=runs.c.ended_at.type),
            "host": bindparam("p_host"),
            "pid": bindparam("p_pid", type_=Integer),
            "pid_create_time": bindparam("p_pid_create_time", type_=Double),
            "heartbeat_at": bindparam("p_heartbeat_at", type_=runs.c.heartbeat_at.type),
            "record": bindparam("p_record", type_=Text),
        }
        update_stmt = (
            runs.update()
            .where(runs.c.run_id == bindparam("p_run_id"))
            .values(
                **values,
                checkpoint_s=func.coalesce(bindparam("p_checkpoint_s", type_=Double), runs.c.checkpoint_s),
            )
        )
        self._update = _DriverStatement(update_stmt, self._engine.dialect)
        # a checkpoint of a run still stored as running leaves the indexed columns (status, started_at)
        # alone: SQLite rewrites an index entry for every indexed column in SET, changed or not, so this
        # writes one page where the full UPDATE writes three (PostgreSQL can update the row in place)
        unindexed = {k: v for k, v in values.items() if k not in ("status", "started_at")}
        running_stmt = (
            runs.update()
            .where(runs.c.run_id == bindparam("p_run_id"), runs.c.status == bindparam("p_status"))
            .values(
                **unindexed,
                checkpoint_s=func.coalesce(bindparam("p_checkpoint_s", type_=Double), runs.c.checkpoint_s),
            )
        )
        self._running_update = _DriverStatement(running_stmt, self._engine.dialect)
        self._insert_stmt = runs.insert().values(
            run_id=bindparam("p_run_id"), checkpoint_s=bindparam("p_checkpoint_s", type_=Double), **values
        )
        self._interrupt_stmt = (
            runs.update()
            .where(
                runs.c.run_id == bindparam("p_run_id"),
                runs.c.status == "running",
                runs.c.heartbeat_at == bindparam("p_heartbeat_at", type_=runs.c.heartbeat_at.type),
            )
            .values(
                status="interrupted",
                ended_at=bindparam("p_ended_at", type_=runs.c.ended_at.type),
                record=bindparam("p_record", type_=Text),
            )
        )

    # -- plumbing -----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise WattprintError(f"the run store at {self.url} is closed")

    def _write(self) -> Any:
        """A write transaction (BEGIN IMMEDIATE on SQLite)."""
        return self._write_engine.begin()

    def _retry(self, operation: Callable[[], _T]) -> _T:
        """Run `operation` again on lock contention or a dropped connection, with short back-off. A database
        fault that lasts reaches the caller as `StoreUnavailableError` (one line, no password), never as the
        driver's own exception."""
        for attempt in range(_RETRIES):
            try:
                return operation()
            except DBAPIError as exc:
                if attempt == _RETRIES - 1 or not _transient(exc):
                    raise StoreUnavailableError(
                        DB_FIELD, f"the store at {self.url} failed: {exc_text(exc, self._secret)}"
                    ) from exc
                log.debug("store busy (%s); retry %d", exc_text(exc, self._secret), attempt + 1)
                _sleep(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- API ----------------------------------------------------------------------------------------

    def save(self, record: RunRecord, checkpoint_s: float | None = None) -> None:
        """Insert or update `record` by run_id, stamping the heartbeat. One transaction.

        `checkpoint_s` is how often the owner saves (it sets when another host may call the run
        interrupted); None keeps the value already stored.
        """
        self._check_open()
        params = {
            "p_run_id": record.run_id,
            "p_name": record.name,
            "p_status": record.status,
            "p_started_at": as_utc(record.started_at),
            "p_ended_at": as_utc(record.ended_at) if record.ended_at is not None else None,
            "p_host": record.host,
            "p_pid": record.pid,
            "p_pid_create_time": record.pid_create_time,
            "p_checkpoint_s": checkpoint_s,
            "p_heartbeat_at": datetime.now(timezone.utc),
            "p_record": record.to_json(),
        }

        def upsert() -> None:
            for attempt in range(3):
                if self._saver is None:
                    self._saver = self._write_engine.connect()
                conn = self._saver
                try:
                    with conn.begin():
                        if self._update.execute(conn, params).rowcount == 0:
                            conn.execute(self._insert_stmt, params)
                    return
                except IntegrityError:
                    if attempt == 2:
                        raise
                    # Inserted concurrently by another writer: the next UPDATE finds the row.
                except DBAPIError:
                    self._drop_saver()  # a broken connection is not reused; _retry decides whether to try again
                    raise

        with self._lock:
            if not self._update_in_place(params):
                self._retry(upsert)

    def _update_in_place(self, params: dict[str, Any]) -> bool:
        """The UPDATE of a run saved before, straight on the kept connection's DBAPI handle.

        A tracker saves every few seconds for hours; SQLAlchemy's execution path (events, contexts,
        result objects) is ~200 Python calls per save where this is a handful. Anything unusual (no kept
        connection yet, no such row, any error) returns False, and the save takes the usual path. A
        running checkpoint matches only a row stored as running (one marked interrupted meanwhile gets its
        status back through the usual path).
        """
        if self._saver is None:
            return False
        try:
            dbapi = self._saver.connection.dbapi_connection
            if dbapi is None:  # invalidated: the usual path reconnects
                raise ConnectionError("the kept connection was invalidated")
            cursor = dbapi.cursor()
            try:
                if self.is_sqlite:
                    cursor.execute("BEGIN IMMEDIATE")  # as the usual path's "begin" event does for writes
                update = self._running_update if params["p_status"] == "running" else self._update
                cursor.execute(update.sql, update.parameters(params))
                if cursor.rowcount != 1:
                    dbapi.rollback()
                    return False
                dbapi.commit()
                return True
            finally:
                cursor.close()
        except Exception as exc:  # the usual path, with its retries, decides what this was
            log.debug("direct update failed (%s); saving the usual way", exc_text(exc, self._secret))
            self._drop_saver()
            return False

    def get(self, run_id_or_prefix: str) -> RunRecord:
        """The run with this exact id, or the only run whose id starts with it."""
        self._check_open()
        key = (run_id_or_prefix or "").strip()
        if not key:
            raise WattprintInputError(RUN_ID_FIELD, "empty run id; give a run id or a unique prefix of one")
        with self._lock:
            row = self._retry(lambda: self._fetch_one(key))
            if row is None:
                candidates = self._retry(lambda: self._fetch_prefix(key))
                if not candidates:
                    raise WattprintInputError(
                        RUN_ID_FIELD,
                        f"no run with id or id prefix {key!r} in {self.url}; see `wattprint runs list`",
                    )
                if len(candidates) > 1:
                    shown = ", ".join(f"{c.run_id} ({c.name})" for c in candidates[:10])
                    more = f" and {len(candidates) - 10} more" if len(candidates) > 10 else ""
                    raise WattprintInputError(
                        RUN_ID_FIELD,
                        f"{key!r} is ambiguous, it starts {len(candidates)} run ids: {shown}{more}; "
                        "give more characters",
                    )
                row = candidates[0]
            return self._to_record(row, check_liveness=True)

    def delete(self, run_ids: Iterable[str]) -> int:
        """Remove the runs with exactly these ids, in one transaction; returns how many were removed.

        For records another one supersedes: a distributed job's per-rank checkpoints once rank 0 has stored
        the merged record."""
        self._check_open()
        if self.read_only:
            raise WattprintError(f"the run store at {self.url} was opened read-only")
        ids = [str(run_id) for run_id in run_ids]
        if not ids:
            return 0

        def remove() -> int:
            with self._write() as conn:
                return int(conn.execute(runs.delete().where(runs.c.run_id.in_(ids))).rowcount)

        with self._lock:
            return self._retry(remove)

    def list(self, *, status: str | None = None, name: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first, optionally only those with this status and/or exact name, at most `limit`."""
        return [
            record or self._to_record(row, check_liveness=False) for row, record in self._select(status, name, limit)
        ]

    def list_json(
        self, *, status: str | None = None, name: str | None = None, limit: int | None = None
    ) -> builtins.list[str]:
        """The same runs as `list`, as their record documents' JSON text: stored rows are passed on as stored,
        without building a RunRecord each (100,000 runs: seconds instead of 38 s and 4.9 GB)."""
        return [
            record.to_json() if record is not None else self._as_stored(row)
            for row, record in self._select(status, name, limit)
        ]

    def _as_stored(self, row: Any) -> str:
        """A row's document: its text when the current writer made it (every field, the last one included,
        and no NaN or Infinity, which older writers let through), else rebuilt through the record model."""
        text: str = row.record
        if _CURRENT_LAST_FIELD in text and "NaN" not in text and "Infinity" not in text:
            return text
        return self._to_record(row, check_liveness=False).to_json()

    def count(self, *, status: str | None = None, name: str | None = None) -> int:
        """How many runs `list` would return without a limit (read-only: a running row whose owner is gone
        counts as interrupted, as it is shown)."""
        self._check_open()
        query = select(func.count()).select_from(runs)
        if name is not None:
            query = query.where(runs.c.name == name)
        judge = self.read_only and status in ("running", "interrupted")
        meta = select(*(c for c in _ROW_COLUMNS if c.name != "record")).where(runs.c.status == "running")
        if name is not None:
            meta = meta.where(runs.c.name == name)

        def fetch() -> int:
            with self._engine.connect() as conn:
                stored = int(conn.execute(query.where(runs.c.status == status) if status else query).scalar_one())
                if not judge:
                    return stored
                gone = sum(1 for row in conn.execute(meta) if self._is_gone(row))  # running rows: few
                if status == "running":
                    return stored - gone
                return stored + gone

        with self._lock:
            return self._retry(fetch)

    def signature(self) -> tuple[Any, ...]:
        """A cheap fingerprint of the store (runs per status, newest start; both read from indexes) that changes
        when a run is added or changes status; checkpoints of running runs do not change it."""
        self._check_open()
        by_status = select(runs.c.status, func.count()).group_by(runs.c.status).order_by(runs.c.status)
        newest = select(func.max(runs.c.started_at))

        def fetch() -> tuple[Any, ...]:
            with self._engine.connect() as conn:
                return tuple(tuple(row) for row in conn.execute(by_status)), conn.execute(newest).scalar_one()

        with self._lock:
            return self._retry(fetch)

    def _select(self, status: str | None, name: str | None, limit: int | None) -> _Judged:
        """Rows newest first, each with its record where a running row had to be judged (else None)."""
        self._check_open()
        if status is not None and status not in STATUSES:
            raise WattprintInputError("status", f"got {status!r}; expected one of {', '.join(STATUSES)}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise WattprintInputError("limit", f"got {limit!r}; expected a whole number >= 0")
        query = select(*_ROW_COLUMNS).order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        # read-only: a running row whose owner is gone is interrupted in what is shown, not in the store, so a
        # filter on either status also fetches running rows and judges them here (there are few of them)
        judge = self.read_only and status in ("running", "interrupted")
        if name is not None:
            query = query.where(runs.c.name == name)
        queries = [query.where(runs.c.status == status) if status is not None else query]
        if judge and status == "interrupted":
            queries.append(query.where(runs.c.status == "running"))  # all of them: few, and judged below
        if limit is not None and not (judge and status == "running"):  # running rows: all, judged below
            queries[0] = queries[0].limit(limit)
        with self._lock:
            if not self.read_only:
                self._retry(self._mark_interrupted)  # so the status filter sees runs whose owner is gone

            def fetch() -> builtins.list[Any]:
                with self._engine.connect() as conn:
                    return [row for q in queries for row in conn.execute(q)]

            rows = self._retry(fetch)
            judged = [
                (row, self._to_record(row, check_liveness=True) if self.read_only and row.status == "running" else None)
                for row in rows
            ]
        if judge:
            judged = [(row, rec) for row, rec in judged if (rec.status if rec else row.status) == status]
            if len(queries) > 1:  # merge the two fetches back into the newest-first order, then cut
                judged.sort(key=lambda pair: (as_utc(pair[0].started_at), pair[0].run_id), reverse=True)
            judged = judged[:limit]
        return judged

    def _drop_saver(self) -> None:
        saver, self._saver = self._saver, None
        if saver is not None:
            try:
                saver.close()
            except Exception as exc:  # closing a dead connection may fail too
                log.debug("closing the save connection failed: %s", exc_text(exc, self._secret))

    def close(self) -> None:
        """Release the connections. The store cannot be used afterwards."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._drop_saver()
                self._engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({self.url!r})"

    @staticmethod
    def export_json(records: Iterable[RunRecord]) -> str:
        """See the module-level `export_json`."""
        return export_json(records)

    @staticmethod
    def export_csv(records: Iterable[RunRecord]) -> str:
        """See the module-level `export_csv`."""
        return export_csv(records)

    # -- reads and liveness -------------------------------------------------------------------------

    def _fetch_one(self, run_id: str) -> Any:
        with self._engine.connect() as conn:
            return conn.execute(select(*_ROW_COLUMNS).where(runs.c.run_id == run_id)).first()

    def _fetch_prefix(self, prefix: str) -> builtins.list[Any]:
        # LIKE narrows (and may use the index); substr keeps it exact and case-sensitive everywhere.
        query = (
            select(*_ROW_COLUMNS)
            .where(
                runs.c.run_id.startswith(prefix, autoescape=True),
                func.substr(runs.c.run_id, 1, len(prefix)) == prefix,
            )
            .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        )
        with self._engine.connect() as conn:
            return list(conn.execute(query))

    def _is_gone(self, row: Any) -> bool:
        return owner_gone(
            host=row.host,
            pid=row.pid,
            pid_create_time=row.pid_create_time,
            heartbeat_at=row.heartbeat_at,
            checkpoint_s=row.checkpoint_s,
            this_host=self._this_host,
        )

    def _to_record(self, row: Any, *, check_liveness: bool) -> RunRecord:
        record = RunRecord.model_validate(json.loads(row.record))
        if check_liveness and row.status == "running" and self._is_gone(row):
            record = self._interrupted(row, record) if self.read_only else self._interrupt(row, record)
        return record

    def _interrupted(self, row: Any, record: RunRecord | None = None) -> RunRecord:
        """The record (parsed from `row` unless given) of a run whose owner is gone: interrupted, ended at its
        last heartbeat."""
        if record is None:
            record = RunRecord.model_validate(json.loads(row.record))
        return record.model_copy(update={"status": "interrupted", "ended_at": as_utc(row.heartbeat_at)})

    def _interrupt(self, row: Any, record: RunRecord | None = None) -> RunRecord:
        """Mark a run whose owner is gone interrupted, ended at its last heartbeat; persist it."""
        record = self._interrupted(row, record)
        last_seen = as_utc(row.heartbeat_at)
        params = {
            "p_run_id": row.run_id,
            "p_heartbeat_at": row.heartbeat_at,
            "p_ended_at": last_seen,
            "p_record": record.to_json(),
        }

        def persist() -> None:
            with self._write() as conn:
                conn.execute(self._interrupt_stmt, params)  # no-op if the owner saved meanwhile

        self._retry(persist)
        return record

    def _mark_interrupted(self) -> None:
        """Persist "interrupted" for every running run whose owner is gone."""
        meta = select(*(c for c in _ROW_COLUMNS if c.name != "record")).where(runs.c.status == "running")
        with self._engine.connect() as conn:
            gone = [row.run_id for row in conn.execute(meta) if self._is_gone(row)]
            if not gone:
                return
            rows = list(conn.execute(select(*_ROW_COLUMNS).where(runs.c.run_id.in_(gone))))
        for row in rows:
            if row.status == "running":
                self._interrupt(row)


def open_store(url: str, host: str | None = None, *, read_only: bool = False) -> RunStore:
    """Open (creating if needed) the run store at an SQLAlchemy URL, e.g. `Settings.db_url`.

    `host` is this machine's name on records (`Settings.host`; default the host name): runs of this
    host are judged alive by their process, others by their checkpoints.
    Raises `WattprintInputError("WATTPRINT_DB", ...)` for a bad URL, a missing driver, an unreachable
    server or an SQLite path that cannot be created; the message never shows the password.
    `read_only=True` (the views: runs list/show/export, report, ui) never writes to an existing store.
    """
    return RunStore(url, host=host, read_only=read_only)
