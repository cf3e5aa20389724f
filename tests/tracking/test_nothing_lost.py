"""Issue 14's promises for the Python tracker: stored before start() returns, kill -9 leaves an interrupted run,
any number-like metric stores, arguments checked where given, connections given back at the end."""

from __future__ import annotations

import decimal
import fractions
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import wattprint
from tests.postgres_server import create_database, postgres_url  # noqa: F401  (fixture)
from wattprint.errors import WattprintInputError
from wattprint.store import open_store
from wattprint.store.first_row import RUNS_DDL, insert_running

REPO = Path(__file__).resolve().parents[2]


def _rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT run_id, status, record FROM runs").fetchall()


def test_the_run_is_in_the_store_before_start_returns(wattprint_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wattprint.tracking.tracker import Tracker

    checkpoint = Tracker._checkpoint
    monkeypatch.setattr(Tracker, "_checkpoint", lambda self: None)  # the background store must not write it
    t = wattprint.Tracker("early", checkpoint=60).start()
    monkeypatch.setattr(Tracker, "_checkpoint", checkpoint)
    try:
        ((run_id, status, record),) = _rows(wattprint_env / "wattprint.db")  # read with the standard library
        assert run_id == t.run_id or run_id == t.record.run_id
        assert status == "running" and json.loads(record)["name"] == "early"
        with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:  # and as the store reads it
            stored = store.get(run_id)
            assert stored.status == "running" and stored.name == "early"
    finally:
        t.stop()
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        assert store.get(run_id).status == "finished"


def test_first_row_schema_is_the_stores(tmp_path: Path) -> None:
    """The standard-library DDL and SQLAlchemy's make the same table and indexes, whichever comes first."""
    early, late = tmp_path / "early.db", tmp_path / "late.db"
    from datetime import datetime, timezone

    fields = {
        "run_id": "r1",
        "name": "n",
        "started_at": datetime.now(timezone.utc),
        "host": "h",
        "pid": 1,
        "pid_create_time": 1.0,
    }
    insert_running(early, fields, 5.0, 5.0)
    open_store(f"sqlite:///{late}").close()

    def schema(db: Path) -> tuple:
        with sqlite3.connect(db) as con:
            cols = con.execute("PRAGMA table_info(runs)").fetchall()
            indexes = sorted(
                (row[1], tuple(c[2] for c in con.execute(f"PRAGMA index_info({row[1]})")))
                for row in con.execute("PRAGMA index_list(runs)")
            )
            return cols, indexes

    assert schema(early) == schema(late)
    assert len(RUNS_DDL) == 3
    with open_store(f"sqlite:///{early}") as store:  # the store works on the early file
        record = store.get("r1")
        record.status = "finished"
        store.save(record)
        assert store.get("r1").status == "finished"


BUSY_JOB = (
    "import sys, time, wattprint\n"
    "t = wattprint.Tracker('killed').start()\n"
    "print(t.record.run_id, time.monotonic(), flush=True)\n"  # Linux's monotonic clock is system-wide
    "end = time.monotonic() + 30\n"
    "while time.monotonic() < end: sum(range(1000))\n"
)


@pytest.mark.slow
def test_kill_9_at_random_times_in_the_first_seconds_leaves_interrupted_runs(wattprint_env: Path) -> None:
    """20 CPU-busy jobs, all at once on this machine's cores (the harder case: the tracker's threads compete
    for the CPU with 20 busy processes), each killed -9 at a random moment of its first 10 s after start()
    returned: every run is stored and reads as interrupted."""
    rng = random.Random(14)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    jobs = [
        subprocess.Popen([sys.executable, "-c", BUSY_JOB], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(20)
    ]
    try:
        schedule = []
        for job in jobs:
            run_id, started = job.stdout.readline().split()  # start() has returned in that job at `started`
            schedule.append((float(started) + rng.uniform(0.0, 10.0), run_id, job))
        for kill_at, _, job in sorted(schedule, key=lambda item: item[0]):
            time.sleep(max(0.0, kill_at - time.monotonic()))
            job.send_signal(signal.SIGKILL)
    finally:
        for job in jobs:
            job.kill()
            job.communicate()
    ids = [run_id for _, run_id, _ in schedule]
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        runs = {r.run_id: r for r in store.list()}
    assert len(set(ids)) == 20 and set(ids) <= set(runs), (ids, list(runs))
    assert all(runs[i].status == "interrupted" for i in ids), [runs[i].status for i in ids]


def test_number_like_metrics_are_stored_as_numbers(wattprint_env: Path) -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    with wattprint.track("metrics", interval=0.05) as t:
        t.log(
            accuracy=np.float32(0.5),
            step=np.int64(3),
            loss=torch.tensor(0.25),
            best=torch.tensor([2.0]),
            lr=decimal.Decimal("0.125"),
            frac=fractions.Fraction(1, 4),
            flag=np.bool_(True),
            hist=np.array([1, 2]),
            when=object(),
            nested={"a": np.float64(1.5)},
            wide=np.longdouble(1.5),
            huge=fractions.Fraction(10**400),
            snan=decimal.Decimal("sNaN"),
        )
    assert "store" not in t.record.degraded, t.record.degraded
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        metrics = store.get(t.record.run_id).metrics
    assert metrics["accuracy"] == 0.5 and metrics["step"] == 3 and metrics["loss"] == 0.25
    assert metrics["best"] == 2.0 and metrics["lr"] == 0.125 and metrics["frac"] == 0.25
    assert metrics["flag"] is True and metrics["hist"] == [1, 2] and metrics["nested"] == {"a": 1.5}
    assert metrics["when"].startswith("<object object at")  # stored as its text, never a failed save
    assert metrics["wide"] == 1.5 and metrics["huge"] == str(10**400) and metrics["snan"] == "sNaN"


def test_arguments_are_refused_where_given(wattprint_env: Path) -> None:
    with pytest.raises(WattprintInputError, match="^name: got 123; expected a non-empty string"):
        wattprint.Tracker(123)  # type: ignore[arg-type]
    with pytest.raises(WattprintInputError, match="^name: "):
        wattprint.track("  ")
    with wattprint.track("fu", interval=0.05) as t:
        for bad in (0, -1, float("nan"), float("inf"), "10", True):
            with pytest.raises(WattprintInputError, match="^quantity: got .*; expected a finite number > 0"):
                t.set_functional_unit("sample", bad)  # type: ignore[arg-type]
        t.set_functional_unit("sample", __import__("numpy").int64(100))  # numpy's integers count
    assert t.record.status == "finished" and t.record.sci["unit"] == "sample"


@pytest.mark.postgres
def test_finished_trackers_give_their_connections_back(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import psycopg
    from sqlalchemy.engine import make_url

    url = create_database(postgres_url)
    monkeypatch.setenv("WATTPRINT_DB", url)
    for i in range(12):
        with wattprint.track(f"short-{i}", interval=0.05) as t:
            pass
        assert t._store is None  # closed and dropped at stop
    base = make_url(url)
    with psycopg.connect(host=base.host, port=base.port, user=base.username, dbname="postgres") as conn:
        (count,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (base.database,)).fetchone()
    assert count == 0, count
    with open_store(url) as store:
        assert len(store.list(limit=100)) == 12


class _FlakyStore:
    """A real store whose first saves fail as a damaged SQLite page does (fault injection)."""

    def __init__(self, real: object, failures: int) -> None:
        self.real, self.failures = real, failures

    def save(self, record: object, checkpoint_s: float | None = None) -> None:
        if self.failures > 0:
            from sqlalchemy.exc import OperationalError

            self.failures -= 1
            raise OperationalError(
                "UPDATE runs SET record=? WHERE run_id=?\n" + "x" * 2000,
                {"p_record": "{" + "y" * 5000 + "}"},
                Exception("database disk image is malformed"),
            )
        self.real.save(record, checkpoint_s)  # type: ignore[attr-defined]


def test_a_store_fault_is_one_line_and_unflagged_once_the_store_recovers(wattprint_env: Path) -> None:
    real = open_store(f"sqlite:///{wattprint_env / 'runs.db'}")
    flaky = _FlakyStore(real, failures=2)
    t = wattprint.Tracker("flaky-store", store=flaky, interval=0.05, checkpoint=0.1).start()
    reason = ""
    for _ in range(200):  # until a checkpoint has met the fault
        reason = t.record.degraded.get("store", "")
        if reason:
            break
        import time

        time.sleep(0.01)
    assert reason.startswith("Exception: database disk image is malformed"), reason
    assert "\n" not in reason and len(reason) < 400 and "UPDATE" not in reason
    record = t.stop()
    assert "store" not in record.degraded
    assert "store" not in real.get(record.run_id).degraded and real.get(record.run_id).status == "finished"
    real.close()


def test_a_run_the_store_never_took_is_kept_and_stored_by_the_next(
    wattprint_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that never answers while a run is tracked: the record waits on disk (WATTPRINT_HOME/unsaved),
    and the next tracked run that reaches a store stores it there, flagged, and removes the file."""
    from wattprint.tracking.spool import SPOOL_NOTE

    wattprint_env.mkdir(parents=True)
    blocker = wattprint_env / "blocker"
    blocker.write_text("")  # a file where the database's folder should be: the store can never open
    monkeypatch.setenv("WATTPRINT_DB", f"sqlite:///{blocker}/runs.db")
    with wattprint.track("unstored", interval=0.05) as lost:
        lost.log(accuracy=0.9)
    assert [p.stem for p in (wattprint_env / "unsaved").glob("*.json")] == [lost.record.run_id]
    assert "record kept in" in lost.record.degraded["store"]

    monkeypatch.delenv("WATTPRINT_DB")  # the default store, which answers
    with wattprint.track("next", interval=0.05):
        pass
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        stored = store.get(lost.record.run_id)
    assert stored.status == "finished" and stored.metrics["accuracy"] == 0.9
    assert stored.degraded["store"].startswith(SPOOL_NOTE)
    assert not list((wattprint_env / "unsaved").glob("*.json"))


def test_the_spool_is_left_alone_by_a_tracker_with_its_own_store_and_never_raises(
    wattprint_env: Path, tmp_path: Path
) -> None:
    """Only a tracker saving to the configured store empties the spool there (a distributed rank's part, or a
    store given by hand, is somewhere else); a spool that cannot be written loses the record in one line,
    and stop() does not raise."""
    from wattprint.record import RunRecord
    from wattprint.tracking.spool import spool, spool_dir

    waiting = RunRecord(run_id="waiting1", name="w", status="finished", host="h", started_at=datetime.now(timezone.utc))
    assert spool(waiting, wattprint_env) == spool_dir(wattprint_env) / "waiting1.json"
    with (
        open_store(f"sqlite:///{tmp_path / 'other.db'}") as other,
        wattprint.Tracker("own", interval=0.05, store=other),
    ):
        pass
    assert (spool_dir(wattprint_env) / "waiting1.json").exists()  # not emptied into a store given by hand

    (spool_dir(wattprint_env) / "waiting1.json").unlink()
    spool_dir(wattprint_env).rmdir()
    spool_dir(wattprint_env).write_text("")  # a file where the spool folder should be
    assert spool(waiting, wattprint_env) is None
