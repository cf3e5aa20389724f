"""The run store against real SQLite files and a real PostgreSQL server; real processes, no mocks."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import create_engine, event, select

import wattprint
from tests.net import free_port
from tests.postgres_server import create_database, postgres_url  # noqa: F401  (fixture)
from wattprint.errors import StoreUnavailableError, WattprintError, WattprintInputError
from wattprint.record import RunRecord
from wattprint.store import CSV_COLUMNS, RunStore, export_csv, export_json, open_store
from wattprint.store.liveness import owner_gone
from wattprint.store.sql import runs

SRC = Path(wattprint.__file__).resolve().parents[1]
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
PASSWORD = "s3cr3t-Pa55"


def make_record(run_id: str, name: str = "train", *, minutes: int = 0, **fields: Any) -> RunRecord:
    """A record with every contract field set to something non-default."""
    data: dict[str, Any] = {
        "run_id": run_id,
        "name": name,
        "status": "finished",
        "started_at": T0 + timedelta(minutes=minutes),
        "ended_at": T0 + timedelta(minutes=minutes, seconds=90),
        "duration_s": 90.5,
        "energy_kwh": {"total": 0.6, "cpu": 0.25, "gpu": 0.3, "ram": 0.05},
        "facility_energy_kwh": 0.72,
        "measurement": {"cpu": "rapl", "gpu": "nvml", "ram": "model"},
        "region": "FR",
        "intensity_g_per_kwh": 56.0,
        "pue": 1.2,
        "co2e_kg": {"operational": 0.04032, "embodied": 0.01, "total": 0.05032},
        "exit_code": 0,
        "host": "elsewhere.example",
        "pid": 4242,
        "pid_create_time": 1714564800.25,
        "command": ["python", "train.py", "--epochs", "3"],
        "metrics": {"accuracy": 0.93},
        "windows": [{"name": "epoch-1", "energy_kwh": 0.2}],
        "timeline": {"t_s": [0.0, 1.0, 2.0], "power_w": [100.0, 180.5, 175.25]},
        "samples": 91,
    }
    data.update(fields)
    return RunRecord.model_validate(data)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "not" / "yet" / "there" / "runs.db"


# The behaviour suite runs on every back-end (the Optuna pattern); tests of one back-end's specifics take
# `sqlite_store` / `db_path`, or `pg_url`, instead of `store`.
BACKENDS = ["sqlite-file", "sqlite-memory", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    if request.param == "sqlite-file":
        return f"sqlite:///{db_path}"
    if request.param == "sqlite-memory":
        return "sqlite://"
    return create_database(request.getfixturevalue("postgres_url"))  # a fresh database on the session's server


@pytest.fixture
def store(store_url: str) -> Any:
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def sqlite_store(db_path: Path) -> Any:
    with open_store(f"sqlite:///{db_path}") as opened:
        yield opened


def reopenable(url: str) -> bool:
    """Whether a second store on `url` sees the first one's runs (an in-memory SQLite database does not)."""
    return url != "sqlite://"


def sqlite_rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql).fetchall()


def table_rows(store: RunStore, sql: str) -> list[tuple[Any, ...]]:
    """Rows of plain SQL on the store's own database, whatever the back-end."""
    with store._engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


def table_exec(store: RunStore, sql: str) -> None:
    with store._engine.begin() as conn:
        conn.exec_driver_sql(sql)


def as_utc(value: Any) -> datetime:
    """A heartbeat as the back-end returns it (SQLite: naive text; PostgreSQL: an aware datetime)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def set_heartbeat(target: str | RunStore, run_id: str, when: datetime) -> None:
    """Age a run's heartbeat directly in the table, as if its owner stopped saving at `when`."""
    engine = target._engine if isinstance(target, RunStore) else create_engine(target)
    try:
        with engine.begin() as conn:
            naive = when.astimezone(timezone.utc).replace(tzinfo=None) if engine.dialect.name == "sqlite" else when
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(heartbeat_at=naive))
    finally:
        if not isinstance(target, RunStore):
            engine.dispose()


# ---------------------------------------------------------------------------------------------------
# SQLite: basics


def test_round_trip_of_a_full_record(store: RunStore, store_url: str) -> None:
    record = make_record("7f3a9c1e", extra_detail={"kept": True})
    store.save(record, checkpoint_s=5.0)
    assert store.get("7f3a9c1e").to_json_dict() == record.to_json_dict()
    row = table_rows(store, "SELECT run_id, name, status, host, pid, checkpoint_s, record FROM runs")[0]
    assert row[:6] == ("7f3a9c1e", "train", "finished", "elsewhere.example", 4242, 5.0)
    assert json.loads(row[6]) == record.to_json_dict()
    if reopenable(store_url):
        with open_store(store_url) as again:  # a second store on the same database sees it
            assert again.get("7f3a9c1e").to_json_dict() == record.to_json_dict()


def test_sqlite_file_is_created_with_its_folders_in_wal_mode(sqlite_store: RunStore, db_path: Path) -> None:
    record = make_record("7f3a9c1e", extra_detail={"kept": True})
    sqlite_store.save(record, checkpoint_s=5.0)
    assert db_path.parent.is_dir()
    assert sqlite_rows(db_path, "PRAGMA journal_mode") == [("wal",)]
    row = sqlite_rows(db_path, "SELECT run_id, name, status, host, pid, checkpoint_s, record FROM runs")[0]
    assert row[:6] == ("7f3a9c1e", "train", "finished", "elsewhere.example", 4242, 5.0)
    assert json.loads(row[6]) == record.to_json_dict()


def test_naive_started_at_is_taken_as_utc(store: RunStore) -> None:
    record = make_record("naive", started_at=datetime(2024, 5, 1, 12, 0, 0), ended_at=None)
    store.save(record)
    assert store.get("naive").started_at == T0


def test_prefix_lookup_ambiguity_and_not_found(store: RunStore) -> None:
    for run_id in ("abc123", "abd456", "a_c789", "ABC999"):
        store.save(make_record(run_id, name=f"run-{run_id}"))
    assert store.get("abc").run_id == "abc123"
    assert store.get("abd4").run_id == "abd456"
    assert store.get("a_").run_id == "a_c789"  # '_' is literal, not a LIKE wildcard
    assert store.get("ABC").run_id == "ABC999"  # case-sensitive, also on SQLite
    assert store.get("abc123").run_id == "abc123"

    with pytest.raises(WattprintInputError) as ambiguous:
        store.get("ab")
    message = str(ambiguous.value)
    assert message.startswith("RUN_ID: ") and "ambiguous" in message
    assert "abc123" in message and "abd456" in message and "a_c789" not in message

    for missing in ("zzz", "abc1234", "%"):
        with pytest.raises(WattprintInputError, match=r"^RUN_ID: no run"):
            store.get(missing)
    with pytest.raises(WattprintInputError, match=r"^RUN_ID: "):
        store.get("  ")


def test_exact_id_wins_over_longer_ids_with_it_as_prefix(store: RunStore) -> None:
    store.save(make_record("run1"))
    store.save(make_record("run10"))
    assert store.get("run1").run_id == "run1"


def test_list_filters_and_order(store: RunStore) -> None:
    store.save(make_record("r1", "alpha", minutes=1, status="finished"))
    store.save(make_record("r3", "beta", minutes=3, status="failed", exit_code=1))
    store.save(make_record("r2", "alpha", minutes=2, status="failed", exit_code=2))
    store.save(make_record("r4", "alpha", minutes=4, status="interrupted", ended_at=None))

    assert [r.run_id for r in store.list()] == ["r4", "r3", "r2", "r1"]
    assert [r.run_id for r in store.list(status="failed")] == ["r3", "r2"]
    assert [r.run_id for r in store.list(name="alpha")] == ["r4", "r2", "r1"]
    assert [r.run_id for r in store.list(name="alpha", status="failed")] == ["r2"]
    assert [r.run_id for r in store.list(limit=2)] == ["r4", "r3"]
    assert store.list(limit=0) == []
    assert store.list(name="nobody") == []
    with pytest.raises(WattprintInputError, match="^status: "):
        store.list(status="done")
    with pytest.raises(WattprintInputError, match="^limit: "):
        store.list(limit=-1)


def test_upsert_updates_in_place(store: RunStore) -> None:
    running = make_record("up1", status="running", ended_at=None, exit_code=None, duration_s=5.0)
    running = running.model_copy(
        update={
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_create_time": psutil.Process().create_time(),
        }
    )
    store.save(running, checkpoint_s=2.0)
    done = running.model_copy(
        update={
            "status": "finished",
            "ended_at": T0 + timedelta(hours=1),
            "duration_s": 3600.0,
            "exit_code": 0,
        }
    )
    done.energy_kwh.total = 1.5
    store.save(done)  # checkpoint_s None keeps the stored value

    got = store.get("up1")
    assert got.status == "finished" and got.duration_s == 3600.0 and got.energy_kwh.total == 1.5
    assert [r.run_id for r in store.list()] == ["up1"]
    assert table_rows(store, "SELECT count(*), status, checkpoint_s FROM runs GROUP BY status, checkpoint_s") == [
        (1, "finished", 2.0)
    ]


def test_update_through_the_driver_writes_the_columns_as_sqlalchemy_inserts_them(
    sqlite_store: RunStore, db_path: Path
) -> None:
    """Saves after the first run a statement compiled once (exec_driver_sql); its rows must read as the
    first save's SQLAlchemy INSERT writes them, dates and all."""
    final = make_record("fresh", ended_at=T0 + timedelta(seconds=90, microseconds=250))
    sqlite_store.save(final, checkpoint_s=3.0)  # INSERT: SQLAlchemy's own execution
    first = make_record("updated", status="running", ended_at=None, started_at=T0 - timedelta(days=1))
    sqlite_store.save(first, checkpoint_s=7.0)
    sqlite_store.save(final.model_copy(update={"run_id": "updated"}), checkpoint_s=3.0)  # UPDATE: the driver path
    columns = "name, status, started_at, ended_at, host, pid, pid_create_time, checkpoint_s"
    inserted, updated = (
        sqlite_rows(
            db_path, f"SELECT {columns}, typeof(heartbeat_at), length(heartbeat_at) FROM runs WHERE run_id = '{run_id}'"
        )[0]
        for run_id in ("fresh", "updated")
    )
    assert updated == inserted
    assert updated[2] == "2024-05-01 12:00:00.000000" and updated[3] == "2024-05-01 12:01:30.000250"
    assert sqlite_store.get("updated").to_json_dict() == final.model_copy(update={"run_id": "updated"}).to_json_dict()


def test_checkpoints_update_in_place_and_fall_back_when_the_row_or_connection_is_gone(
    store: RunStore, store_url: str
) -> None:
    through_sqlalchemy: list[str] = []
    event.listen(store._engine, "before_cursor_execute", lambda *a: through_sqlalchemy.append(a[2]))
    record = make_record("ck", status="running", ended_at=None)
    store.save(record, checkpoint_s=5.0)
    assert any(sql.startswith("INSERT") for sql in through_sqlalchemy)
    through_sqlalchemy.clear()
    for total in (1.0, 2.0):
        record.energy_kwh.total = total
        store.save(record, checkpoint_s=5.0)
    assert through_sqlalchemy == []  # straight on the DBAPI connection
    assert store.get("ck").energy_kwh.total == 2.0

    table_exec(store, "DELETE FROM runs")  # someone removed the row: the usual path inserts it again
    record.energy_kwh.total = 3.0
    store.save(record, checkpoint_s=5.0)
    assert any(sql.startswith("INSERT") for sql in through_sqlalchemy)
    assert store.get("ck").energy_kwh.total == 3.0

    if reopenable(store_url):  # an in-memory database lives in its one connection: closing it ends it
        store._saver.connection.dbapi_connection.close()  # type: ignore[union-attr]  # a broken kept connection
        record.energy_kwh.total = 4.0
        store.save(record, checkpoint_s=5.0)
        assert store.get("ck").energy_kwh.total == 4.0
    assert table_rows(store, "SELECT count(*) FROM runs") == [(1,)]


def test_running_checkpoints_leave_the_indexed_columns_alone(sqlite_store: RunStore, db_path: Path) -> None:
    """A checkpoint of a running run rewrites only the table page (one WAL frame, where an UPDATE that sets
    the indexed status and started_at rewrites their index pages too); a run marked interrupted meanwhile
    gets its status back."""
    wal = Path(f"{db_path}-wal")
    record = make_record("slim", status="running", ended_at=None)
    sqlite_store.save(record, checkpoint_s=5.0)  # INSERT
    sqlite_store.save(record, checkpoint_s=5.0)  # the kept connection is open now

    def frames_per_save(status: str) -> float:
        before = wal.stat().st_size
        for total in (1.0, 2.0, 3.0, 4.0):
            record.status, record.energy_kwh.total = status, total  # type: ignore[assignment]
            sqlite_store.save(record, checkpoint_s=5.0)
        return (wal.stat().st_size - before) / 4 / (4096 + 24)  # a WAL frame: 24-byte header + one page

    assert frames_per_save("running") == 1.0
    assert frames_per_save("finished") >= 3.0  # status and started_at entries of their indexes too

    sqlite_rows(db_path, "UPDATE runs SET status = 'interrupted'")  # a reader judged the owner gone
    record.status, record.energy_kwh.total = "running", 5.0
    sqlite_store.save(record, checkpoint_s=5.0)
    assert sqlite_rows(db_path, "SELECT status FROM runs") == [("running",)]
    assert sqlite_store.get("slim").energy_kwh.total == 5.0


def test_heartbeat_is_stamped_on_every_save(store: RunStore) -> None:
    record = make_record("hb", status="running", ended_at=None)
    store.save(record)
    first = as_utc(table_rows(store, "SELECT heartbeat_at FROM runs")[0][0])
    time.sleep(0.01)
    store.save(record)
    second = as_utc(table_rows(store, "SELECT heartbeat_at FROM runs")[0][0])
    assert second > first


def test_threads_of_one_process_share_a_store(store: RunStore) -> None:
    """The sampler thread checkpoints while the main thread saves too."""
    errors: list[BaseException] = []

    def saver(prefix: str) -> None:
        try:
            record = make_record(f"{prefix}-run", status="running", ended_at=None)
            for i in range(30):
                record.samples = i
                store.save(record, checkpoint_s=1.0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.run_id for r in store.list()) == ["t0-run", "t1-run", "t2-run", "t3-run"]
    assert {r.samples for r in store.list()} == {29}


def test_close_and_context_manager(db_path: Path) -> None:
    with open_store(f"sqlite:///{db_path}") as opened:
        opened.save(make_record("c1"))
    with pytest.raises(WattprintError, match="closed"):
        opened.save(make_record("c2"))
    opened.close()  # idempotent


def test_in_memory_sqlite_works_across_threads() -> None:
    with open_store("sqlite://") as memory:
        worker = threading.Thread(target=memory.save, args=(make_record("m1"),))
        worker.start()
        worker.join()
        assert memory.get("m1").run_id == "m1"


# ---------------------------------------------------------------------------------------------------
# Liveness


def this_process() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_create_time": psutil.Process().create_time(),
    }


def running_record(run_id: str, name: str = "train", **fields: Any) -> RunRecord:
    return make_record(run_id, name, status="running", ended_at=None, exit_code=None, duration_s=12.5, **fields)


def test_run_of_an_exited_process_is_interrupted_and_persisted(store: RunStore) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(child.pid).create_time()  # not reaped yet: running or a zombie
    child.wait()
    store.save(running_record("dead1", host=socket.gethostname(), pid=child.pid, pid_create_time=created))
    heartbeat = as_utc(table_rows(store, "SELECT heartbeat_at FROM runs")[0][0])

    got = store.get("dead1")
    assert got.status == "interrupted"
    assert got.ended_at == heartbeat
    assert got.duration_s == 12.5  # up to the last checkpoint, not extended
    assert table_rows(store, "SELECT status FROM runs") == [("interrupted",)]
    stored = json.loads(table_rows(store, "SELECT record FROM runs")[0][0])
    assert stored["status"] == "interrupted" and stored["ended_at"] is not None


def test_list_sees_interrupted_runs_through_its_status_filter(store: RunStore) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(child.pid).create_time()
    child.wait()
    store.save(running_record("dead2", minutes=1, host=socket.gethostname(), pid=child.pid, pid_create_time=created))
    store.save(running_record("alive2", minutes=2, **this_process()))

    assert [r.run_id for r in store.list(status="running")] == ["alive2"]
    assert [r.run_id for r in store.list(status="interrupted")] == ["dead2"]
    assert table_rows(store, "SELECT run_id, status FROM runs ORDER BY run_id") == [
        ("alive2", "running"),
        ("dead2", "interrupted"),
    ]


def test_run_of_a_live_owner_stays_running(store: RunStore) -> None:
    store.save(running_record("alive", **this_process()))
    assert store.get("alive").status == "running"
    assert [r.status for r in store.list()] == ["running"]
    assert table_rows(store, "SELECT status FROM runs") == [("running",)]


def test_reused_pid_is_not_the_owner(store: RunStore) -> None:
    owner = this_process()
    owner["pid_create_time"] -= 100.0  # same pid, started at another time: a different process
    store.save(running_record("reused", **owner))
    assert store.get("reused").status == "interrupted"


def test_other_host_is_judged_by_its_heartbeat(store: RunStore) -> None:
    url = store  # aged through the store's own engine: an in-memory database has no other way in
    now = datetime.now(timezone.utc)
    store.save(running_record("far-old", host="other-host"), checkpoint_s=5.0)
    store.save(running_record("far-fresh", host="other-host"), checkpoint_s=5.0)
    store.save(running_record("far-slow", host="other-host"), checkpoint_s=60.0)
    store.save(running_record("far-nocp", host="other-host"))
    set_heartbeat(url, "far-old", now - timedelta(seconds=90))  # > max(3 x 5, 60)
    set_heartbeat(url, "far-slow", now - timedelta(seconds=90))  # < 3 x 60
    set_heartbeat(url, "far-nocp", now - timedelta(seconds=90))  # checkpoint unknown: 5 s assumed

    old = store.get("far-old")
    assert old.status == "interrupted"
    assert abs((old.ended_at - (now - timedelta(seconds=90))).total_seconds()) < 1e-3
    assert store.get("far-fresh").status == "running"
    assert store.get("far-slow").status == "running"
    assert store.get("far-nocp").status == "interrupted"


def test_owner_gone_thresholds() -> None:
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    elsewhere = {"host": "h2", "pid": 1, "pid_create_time": None, "now": now, "this_host": "h1"}
    assert not owner_gone(heartbeat_at=now - timedelta(seconds=59), checkpoint_s=5.0, **elsewhere)
    assert owner_gone(heartbeat_at=now - timedelta(seconds=61), checkpoint_s=5.0, **elsewhere)
    assert not owner_gone(heartbeat_at=now - timedelta(seconds=89), checkpoint_s=30.0, **elsewhere)
    assert owner_gone(heartbeat_at=now - timedelta(seconds=91), checkpoint_s=30.0, **elsewhere)
    naive = (now - timedelta(seconds=61)).replace(tzinfo=None)  # as SQLite returns it
    assert owner_gone(heartbeat_at=naive, checkpoint_s=None, **elsewhere)


def test_finished_runs_are_never_touched_by_liveness(store: RunStore) -> None:
    store.save(make_record("done", host=socket.gethostname(), pid=999_999_999))
    assert store.get("done").status == "finished"


# ---------------------------------------------------------------------------------------------------
# Many processes at once

WRITER = r"""
import os, sys, time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from wattprint.record import RunRecord
from wattprint.store import open_store

url, index, go, checkpoints = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("never told to go")
    time.sleep(0.002)
start = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=index)
with open_store(url) as store:  # all open at once: they race to create the schema
    record = RunRecord(run_id=f"writer-{index:02d}", name=f"writer {index}", started_at=start,
                       host="writer-host", pid=os.getpid())
    for i in range(1, checkpoints + 1):
        record.samples = i
        record.duration_s = float(i)
        record.energy_kwh.total = i * 0.001 * (index + 1)
        if i == checkpoints:
            record.status, record.ended_at, record.exit_code = "finished", start + timedelta(seconds=i), 0
        store.save(record, checkpoint_s=0.5)
"""


def run_writers(url: str, count: int, checkpoints: int, workdir: Path) -> None:
    """Start `count` real processes, release them together, and require that all succeed."""
    go = workdir / f"go-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(i), str(go), str(checkpoints)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    time.sleep(0.3)  # let the interpreters import
    go.touch()
    failures = []
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failures.append(f"writer {i} exited {proc.returncode}: {err[-2000:]}")
    assert not failures, "\n".join(failures)


def check_writers(store: RunStore, count: int, checkpoints: int) -> None:
    found = {r.run_id: r for r in store.list()}
    assert sorted(found) == [f"writer-{i:02d}" for i in range(count)]
    for i in range(count):
        record = found[f"writer-{i:02d}"]
        assert record.status == "finished" and record.exit_code == 0
        assert record.samples == checkpoints and record.duration_s == float(checkpoints)
        assert record.energy_kwh.total == pytest.approx(checkpoints * 0.001 * (i + 1))
    assert [r.run_id for r in store.list()] == [f"writer-{i:02d}" for i in reversed(range(count))]


def test_eight_processes_write_one_new_sqlite_file_at_once(tmp_path: Path) -> None:
    db = tmp_path / "shared" / "runs.db"
    url = f"sqlite:///{db}"
    run_writers(url, 8, 20, tmp_path)
    with open_store(url) as store:
        check_writers(store, 8, 20)
    assert sqlite_rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert sqlite_rows(db, "PRAGMA journal_mode") == [("wal",)]


# ---------------------------------------------------------------------------------------------------
# Bad URLs


def bad_urls(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    not_sqlite = tmp_path / "garbage.db"
    not_sqlite.write_bytes(b"this is not an SQLite database, just bytes " * 100)
    urls = {
        "empty": "",
        "unparseable": f"me:{PASSWORD}@@host",
        "a plain path": str(tmp_path / "runs.db"),
        "'@' in the password": f"postgresql://me:x@{PASSWORD}@127.0.0.1/db",
        "unparseable with password": f"postgresql://me:{PASSWORD}@host:notaport/db",
        "unknown dialect": f"nosuchdb://me:{PASSWORD}@localhost/db",
        "server unreachable": f"postgresql://me:{PASSWORD}@127.0.0.1:{free_port()}/db",
        "postgres alias unreachable": f"postgres://me:{PASSWORD}@127.0.0.1:{free_port()}/db",
        "sqlite directory cannot be created": f"sqlite:///{blocker}/sub/runs.db",
        "sqlite path is a directory": f"sqlite:///{tmp_path}",
        "sqlite file is not a database": f"sqlite:///{not_sqlite}",
    }
    if importlib.util.find_spec("pg8000") is None:
        urls["driver not installed"] = f"postgresql+pg8000://me:{PASSWORD}@127.0.0.1/db"
    return urls


def test_bad_urls_raise_one_line_input_errors_without_the_password(tmp_path: Path) -> None:
    for label, url in bad_urls(tmp_path).items():
        with pytest.raises(WattprintInputError) as caught:
            open_store(url)
        message = str(caught.value)
        assert caught.value.field == "WATTPRINT_DB", label
        assert message.startswith("WATTPRINT_DB: "), label
        assert PASSWORD not in message, f"{label}: password leaked in {message!r}"
        assert "\n" not in message, label
        if isinstance(caught.value, StoreUnavailableError):
            # a well-formed URL whose database does not answer: says so, and does not call the URL bad
            assert label in UNAVAILABLE, f"{label}: {message}"
            assert " now: " in message and "expected" not in message, message
        else:
            assert label not in UNAVAILABLE, f"{label}: {message}"
            assert "sqlite:///" in message, f"{label}: does not say what is accepted: {message}"
        if label.startswith("server unreachable"):
            assert "me:***@127.0.0.1" in message


UNAVAILABLE = {"server unreachable", "postgres alias unreachable", "sqlite file is not a database"}


# ---------------------------------------------------------------------------------------------------
# Export


def test_export_json_and_csv() -> None:
    records = [
        make_record("e1"),
        make_record("e2", ended_at=None, exit_code=None, measurement={"cpu": "model"}),
    ]
    assert json.loads(export_json(records)) == [r.to_json_dict() for r in records]
    assert json.loads(RunStore.export_json([])) == []

    rows = list(csv.reader(io.StringIO(export_csv(records))))
    assert rows[0] == list(CSV_COLUMNS)
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["run_id"] == "e1" and first["started_at"] == "2024-05-01T12:00:00Z"
    assert float(first["energy_kwh_gpu"]) == 0.3 and float(first["co2e_kg_total"]) == 0.05032
    assert first["measurement_cpu"] == "rapl" and first["exit_code"] == "0"
    second = dict(zip(rows[0], rows[2], strict=True))
    assert second["ended_at"] == "" and second["exit_code"] == "" and second["measurement_gpu"] == ""
    assert RunStore.export_csv([]).strip() == ",".join(CSV_COLUMNS)


# ---------------------------------------------------------------------------------------------------
# PostgreSQL


@pytest.fixture
def pg_url(postgres_url: str) -> str:  # noqa: F811
    """A fresh, empty database on the session's server, so each test creates the schema."""
    return create_database(postgres_url)


@pytest.mark.postgres
def test_postgres_round_trip_upsert_and_list(pg_url: str) -> None:
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with open_store(plain) as store:
        full = make_record("pg-full", "alpha", minutes=1, extra_detail=[1, 2, 3])
        store.save(full, checkpoint_s=5.0)
        assert store.get("pg-full").to_json_dict() == full.to_json_dict()

        running = running_record("pg-up", "beta", minutes=2, **this_process())
        store.save(running, checkpoint_s=1.0)
        assert store.get("pg-u").status == "running"
        store.save(running.model_copy(update={"status": "failed", "exit_code": 3, "ended_at": T0}))
        assert store.get("pg-up").exit_code == 3

        store.save(make_record("pg-3", "alpha", minutes=3, status="failed"))
        assert [r.run_id for r in store.list()] == ["pg-3", "pg-up", "pg-full"]
        assert [r.run_id for r in store.list(status="failed")] == ["pg-3", "pg-up"]
        assert [r.run_id for r in store.list(name="alpha", limit=1)] == ["pg-3"]
        with pytest.raises(WattprintInputError, match="ambiguous"):
            store.get("pg-")

        store.save(running_record("pg-far", minutes=4, host="other-host"), checkpoint_s=5.0)
        set_heartbeat(pg_url, "pg-far", datetime.now(timezone.utc) - timedelta(minutes=5))
        assert [r.run_id for r in store.list(status="interrupted")] == ["pg-far"]

    with open_store(pg_url.replace("postgresql+psycopg://", "postgres://")) as again:
        assert len(again.list()) == 4
        assert again.get("pg-far").status == "interrupted"


@pytest.mark.postgres
def test_postgres_running_checkpoints_update_in_place_and_restore_a_status(pg_url: str) -> None:
    """The slim running UPDATE with psycopg's named parameters; a run marked interrupted meanwhile gets its
    status back through the usual path, and the checkpoints after that go straight to the driver again."""
    through_sqlalchemy: list[str] = []
    with open_store(pg_url) as store:
        event.listen(store._engine, "before_cursor_execute", lambda *a: through_sqlalchemy.append(a[2]))
        record = running_record("pg-slim", **this_process())
        store.save(record, checkpoint_s=5.0)  # INSERT
        store.save(record, checkpoint_s=5.0)
        through_sqlalchemy.clear()
        record.energy_kwh.total = 7.0
        store.save(record, checkpoint_s=5.0)
        assert through_sqlalchemy == [] and store.get("pg-slim").energy_kwh.total == 7.0

        engine = create_engine(pg_url)
        try:
            with engine.begin() as conn:
                conn.execute(runs.update().values(status="interrupted"))
            through_sqlalchemy.clear()
            record.energy_kwh.total = 8.0
            store.save(record)
            assert any(sql.startswith("UPDATE") for sql in through_sqlalchemy)  # the usual path
            with engine.connect() as conn:
                assert conn.execute(select(runs.c.status, runs.c.checkpoint_s)).all() == [("running", 5.0)]
        finally:
            engine.dispose()
        through_sqlalchemy.clear()
        record.energy_kwh.total = 9.0
        store.save(record)
        assert through_sqlalchemy == [] and store.get("pg-slim").energy_kwh.total == 9.0


@pytest.mark.postgres
def test_postgres_four_concurrent_writer_processes(pg_url: str, tmp_path: Path) -> None:
    run_writers(pg_url, 4, 20, tmp_path)
    with open_store(pg_url) as store:
        check_writers(store, 4, 20)


@pytest.mark.postgres
def test_postgres_wrong_database_is_an_input_error(postgres_url: str) -> None:  # noqa: F811
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(WattprintInputError, match="^WATTPRINT_DB: .*no_such_database"):
        open_store(missing)


def test_configured_host_name_is_this_host(db_path: Path) -> None:
    """With WATTPRINT_HOST set, runs written under that name are judged by their process, at once."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(child.pid).create_time()
    child.wait()
    with open_store(f"sqlite:///{db_path}", host="container-7") as named:
        named.save(running_record("named-dead", host="container-7", pid=child.pid, pid_create_time=created))
        named.save(running_record("named-alive", minutes=1, **(this_process() | {"host": "container-7"})))
        assert named.get("named-dead").status == "interrupted"  # heartbeat is fresh: only the pid check says so
        assert named.get("named-alive").status == "running"


def test_read_only_views_show_interrupted_runs_without_writing(
    sqlite_store: RunStore, db_path: Path, wattprint_cmd: list[str]
) -> None:
    """runs list/show, report and the dashboard open the store read-only: a run whose owner is gone shows as
    interrupted everywhere, and the stored row stays as it was (issue 14: a GET of / used to rewrite it)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(child.pid).create_time()
    child.wait()
    sqlite_store.save(
        running_record("dead3", minutes=1, host=socket.gethostname(), pid=child.pid, pid_create_time=created)
    )
    sqlite_store.save(running_record("alive3", minutes=2, **this_process()))
    sqlite_store.save(make_record("done3", minutes=3))
    with open_store(f"sqlite:///{db_path}", read_only=True) as view:
        assert view.get("dead3").status == "interrupted" and view.get("dead3").ended_at is not None
        assert [r.run_id for r in view.list(status="interrupted")] == ["dead3"]
        assert [r.run_id for r in view.list(status="running")] == ["alive3"]
        assert [r.run_id for r in view.list(status="running", limit=1)] == ["alive3"]
        assert {r.run_id: r.status for r in view.list()} == {
            "dead3": "interrupted",
            "alive3": "running",
            "done3": "finished",
        }
        assert [r.run_id for r in view.list(limit=2)] == ["done3", "alive3"]
        sqlite_store.save(make_record("old-int", minutes=0, status="interrupted"))
        assert [r.run_id for r in view.list(status="interrupted", limit=1)] == ["dead3"]  # newest first
        assert [r.run_id for r in view.list(status="interrupted", limit=5)] == ["dead3", "old-int"]
    before = sqlite_rows(db_path, "SELECT run_id, status, record, heartbeat_at FROM runs ORDER BY run_id")
    assert ("dead3", "running") in [(r[0], r[1]) for r in before]  # the view above wrote nothing either
    env = dict(os.environ, WATTPRINT_DB=f"sqlite:///{db_path}")
    listed = subprocess.run(
        [*wattprint_cmd, "runs", "list", "--json"], capture_output=True, text=True, timeout=60, env=env
    )
    assert listed.returncode == 0, listed.stderr
    assert {r["run_id"]: r["status"] for r in json.loads(listed.stdout)}["dead3"] == "interrupted"
    from starlette.testclient import TestClient

    from wattprint.ui.app import create_app

    with TestClient(create_app(f"sqlite:///{db_path}"), base_url="http://127.0.0.1:8765") as client:
        assert client.get("/").status_code == 200
        assert client.get("/runs/dead3").status_code == 200
    assert sqlite_rows(db_path, "SELECT run_id, status, record, heartbeat_at FROM runs ORDER BY run_id") == before


def test_list_json_documents_are_valid_and_complete_whoever_wrote_the_row(
    sqlite_store: RunStore, db_path: Path
) -> None:
    """Rows written by older code (bare NaN, fields missing) or by the first-row writer come out rebuilt; rows of
    the current writer as stored; every document parses strictly and matches list()."""
    from datetime import datetime, timezone

    from wattprint.store.first_row import insert_running

    sqlite_store.save(make_record("new1", minutes=3))
    old = make_record("old1", minutes=2).to_json_dict()
    old.pop("distributed")
    old["intensity_g_per_kwh"] = float("nan")
    with sqlite3.connect(db_path) as con:  # as code before the rust serialiser stored it
        con.execute(
            "INSERT INTO runs VALUES (?, ?, 'finished', ?, ?, ?, NULL, NULL, 5.0, ?, ?)",
            (
                "old1",
                "train",
                "2024-05-01 12:02:00.000000",
                "2024-05-01 12:05:00.000000",
                "h",
                "2024-05-01 12:05:00.000000",
                json.dumps(old),
            ),
        )
    insert_running(
        db_path,
        {
            "run_id": "first1",
            "name": "early",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_create_time": psutil.Process().create_time(),
            "started_at": datetime(2024, 5, 1, 12, 1, tzinfo=timezone.utc),
        },
        5.0,
        5.0,
    )
    texts = sqlite_store.list_json()
    docs = [json.loads(t, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) for t in texts]
    assert docs == [json.loads(r.to_json()) for r in sqlite_store.list()]  # NaN is null in both
    assert [d["run_id"] for d in docs] == ["new1", "old1", "first1"]
    assert docs[1]["intensity_g_per_kwh"] is None and docs[1]["distributed"] == {}
    assert docs[2]["energy_kwh"] == {"total": 0.0, "cpu": 0.0, "gpu": 0.0, "ram": 0.0}


def test_read_only_count_matches_what_is_listed(store: RunStore, store_url: str) -> None:
    if not reopenable(store_url):
        pytest.skip("a second store on an in-memory database is another, empty database")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(child.pid).create_time()
    child.wait()
    store.save(running_record("gone1", minutes=1, host=socket.gethostname(), pid=child.pid, pid_create_time=created))
    store.save(running_record("live1", minutes=2, **this_process()))
    store.save(make_record("int1", status="interrupted"))
    with open_store(store_url, read_only=True) as view:
        for status in ("running", "interrupted", "finished", None):
            assert view.count(status=status) == len(view.list(status=status)), status
        assert view.count(status="interrupted") == 2 and view.count(status="running") == 1


def test_delete_removes_exactly_the_given_ids_and_read_only_stores_refuse(store: RunStore, store_url: str) -> None:
    for run_id in ("job", "job-rank1", "job-rank2", "other"):
        store.save(make_record(run_id))
    assert store.delete([]) == 0
    assert store.delete(["job-rank1", "job-rank2", "never-stored"]) == 2
    assert sorted(r.run_id for r in store.list()) == ["job", "other"]  # no prefix matching: "job" stays
    with open_store(store_url, read_only=True) as view, pytest.raises(WattprintError, match="read-only"):
        view.delete(["job"])
    assert sorted(r.run_id for r in store.list()) == ["job", "other"]


def test_the_trackers_sqlite_writer_writes_rows_as_the_store_does(tmp_path: Path) -> None:
    """The tracker saves the default SQLite file with the standard library (store/sqlite_writer.py): the same
    rows, byte for byte, as RunStore.save writes for the same saves, and the store reads them as its own."""
    from wattprint.store.sqlite_writer import SqliteWriter

    running = make_record("w1", status="running", ended_at=None, started_at=T0 - timedelta(days=1))
    final = make_record("w1", ended_at=T0 + timedelta(seconds=90, microseconds=250))
    by_store, by_writer = tmp_path / "store.db", tmp_path / "writer.db"
    with open_store(f"sqlite:///{by_store}") as store:
        for record, checkpoint_s in ((running, 5.0), (running, None), (final, None)):
            store.save(record, checkpoint_s=checkpoint_s)
    writer = SqliteWriter(by_writer)
    for record, checkpoint_s in ((running, 5.0), (running, None), (final, None)):
        writer.save(record, checkpoint_s=checkpoint_s)
    columns = (
        "run_id, name, status, started_at, ended_at, host, pid, pid_create_time, checkpoint_s, "
        "typeof(heartbeat_at), length(heartbeat_at), record"
    )
    assert sqlite_rows(by_writer, f"SELECT {columns} FROM runs") == sqlite_rows(by_store, f"SELECT {columns} FROM runs")
    sqlite_rows(by_writer, "UPDATE runs SET status = 'interrupted'")  # a reader judged the owner gone meanwhile
    writer.save(running, checkpoint_s=5.0)  # the owner checkpoints again: its status comes back
    writer.close()
    with open_store(f"sqlite:///{by_writer}") as store:
        assert store.get("w1").to_json_dict() == running.to_json_dict()
        assert sqlite_rows(by_writer, "SELECT status FROM runs") == [("running",)]


def test_the_sqlite_writer_names_the_file_it_cannot_write(tmp_path: Path) -> None:
    from wattprint.store.sqlite_writer import SqliteWriter

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    writer = SqliteWriter(blocker / "runs.db")
    with pytest.raises(StoreUnavailableError, match=r"^WATTPRINT_DB: cannot write the store at sqlite:///.*runs\.db"):
        writer.save(make_record("x"))
    writer.close()


def test_a_database_fault_after_opening_is_one_store_error_not_the_drivers(store: RunStore) -> None:
    """Back-end failures are wrapped where they cross into the caller: one line naming the store."""
    store.save(make_record("r1"))
    table_exec(store, "DROP TABLE runs")  # the database changed under the store
    for call in (store.list, lambda: store.get("r1"), lambda: store.save(make_record("r2")), store.count):
        with pytest.raises(StoreUnavailableError, match=r"^WATTPRINT_DB: the store at .* failed: ") as err:
            call()
        assert "\n" not in str(err.value)
