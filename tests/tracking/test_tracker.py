from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wattprint
from tests.measure.scripted import ScriptedSource
from wattprint.errors import WattprintInputError
from wattprint.measure.detect import SourceChoice
from wattprint.store import open_store
from wattprint.tracking.tracker import Tracker, callback_every

CONTRACT_KEYS = {
    "run_id",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "energy_kwh",
    "facility_energy_kwh",
    "measurement",
    "region",
    "intensity_g_per_kwh",
    "pue",
    "co2e_kg",
    "exit_code",
}


def busy(seconds: float) -> None:
    """Spin for `seconds` of this thread's CPU time: the same work, and so the same share, on a loaded machine."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def stored(home: Path, run_id: str):
    with open_store(f"sqlite:///{home / 'wattprint.db'}") as store:
        return store.get(run_id)


def test_context_manager_measures_and_stores(wattprint_env: Path) -> None:
    with wattprint.track("ctx", region="FR", interval=0.05) as t:
        busy(0.5)
        t.log(accuracy=0.9)
    rec = t.record
    assert rec is not None and rec.status == "finished"
    assert set(rec.to_json_dict()) >= CONTRACT_KEYS
    assert rec.energy_kwh.cpu > 0 and rec.energy_kwh.ram > 0
    assert rec.energy_kwh.total == pytest.approx(rec.energy_kwh.cpu + rec.energy_kwh.gpu + rec.energy_kwh.ram)
    assert rec.machine_energy_kwh.cpu >= rec.energy_kwh.cpu
    assert rec.attribution["cpu_share"] > 0.1
    assert rec.measurement.cpu in ("rapl", "model")
    assert rec.region == "FR" and rec.intensity_source.startswith("Our World in Data")
    assert rec.co2e_kg.operational == pytest.approx(rec.facility_energy_kwh * rec.intensity_g_per_kwh / 1000)
    assert rec.metrics == {"accuracy": 0.9}
    assert 0.45 < rec.duration_s < 5
    again = stored(wattprint_env, rec.run_id)
    assert again.status == "finished" and again.energy_kwh.total == pytest.approx(rec.energy_kwh.total)


def test_estimates_are_labelled() -> None:
    with wattprint.track("labels") as t:
        pass
    rec = t.record
    assert rec.region == "WORLD" and rec.region_source.startswith("default")
    for component in ("cpu", "ram"):
        if getattr(rec.measurement, component) == "model":
            assert rec.methods[component]["method"] == "estimated"
    assert rec.pue == 1.0 and "default" in rec.pue_source


def test_decorator_tracks_each_call(wattprint_env: Path) -> None:
    @wattprint.track("decorated", interval=0.05)
    def work(x: int) -> int:
        busy(0.1)
        return x * 2

    assert work(2) == 4 and work(3) == 6
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        runs = store.list(name="decorated")
    assert len(runs) == 2 and all(r.status == "finished" for r in runs)


def test_start_stop_and_windows() -> None:
    t = Tracker("api", interval=0.05).start()
    t.begin_window("a")
    busy(0.2)
    t.begin_window("b")
    busy(0.2)
    a = t.end_window("a")
    b = t.end_window("b")
    rec = t.stop()
    assert a.total_j > 0 and b.total_j > 0 and a.duration_s > b.duration_s
    assert [w["name"] for w in rec.windows] == ["a", "b"]
    assert t.stop() is rec  # a second stop returns the same record


def test_user_exception_propagates_and_run_is_failed() -> None:
    with pytest.raises(ZeroDivisionError), wattprint.track("fails") as t:
        _ = 1 / 0
    assert t.record.status == "failed"


def test_faulty_power_source_never_reaches_user_code() -> None:
    faults = [0.0, 1.0, RuntimeError("boom"), float("nan"), 0.5, 2.0] + [float(i) for i in range(3, 500)]
    source = ScriptedSource(faults, name="flaky")
    choice = SourceChoice([source], {"cpu": "flaky", "gpu": None, "ram": None}, {})
    with wattprint.track("flaky", interval=0.01, sources=choice) as t:
        busy(0.3)
    rec = t.record
    assert rec.status == "finished"
    assert "cpu" in rec.degraded and "flaky:0" in rec.degraded["cpu"]


def test_unusable_store_is_flagged_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("WATTPRINT_DB", f"sqlite:///{blocker}/sub/x.db")
    with wattprint.track("nostore", interval=0.05) as t:
        busy(0.1)
    assert t.record.status == "finished" and "store" in t.record.degraded


def test_bad_settings_raise_before_running() -> None:
    with pytest.raises(WattprintInputError, match="region"):
        wattprint.track("bad", region="Atlantis")


def _script(body: str, home: Path) -> subprocess.Popen:
    env = dict(os.environ, WATTPRINT_HOME=str(home), PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(body)], env=env, stdout=subprocess.PIPE, text=True)


def _wait_for_line(proc: subprocess.Popen, text: str) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return line
    raise AssertionError(f"{text!r} never printed")


PROGRAM = """
    import time, wattprint
    with wattprint.track("victim", interval=0.05, checkpoint=0.2) as t:
        print("RUN", t.record.run_id, flush=True)
        end = time.time() + 60
        while time.time() < end:
            pass
"""


def test_sigterm_writes_the_final_record(wattprint_env: Path) -> None:
    proc = _script(PROGRAM, wattprint_env)
    run_id = _wait_for_line(proc, "RUN").split()[1]
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == -signal.SIGTERM  # still dies of the signal
    rec = stored(wattprint_env, run_id)
    assert rec.status == "interrupted" and rec.exit_code == 128 + signal.SIGTERM
    assert rec.ended_at is not None and rec.energy_kwh.total > 0


def _first_checkpoint(home: Path, run_id: str, timeout_s: float = 30.0) -> float:
    """Wait for the run's first checkpoint (its first row, written by start(), has duration 0; the store
    proper opens in the background) and return the checkpoint's duration."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (home / "wattprint.db").exists():
            try:
                duration = stored(home, run_id).duration_s
                if duration > 0:
                    return duration
            except WattprintInputError:
                pass
        time.sleep(0.05)
    raise AssertionError("run never checkpointed")


def test_kill_9_keeps_checkpoints_and_marks_interrupted(wattprint_env: Path) -> None:
    proc = _script(PROGRAM, wattprint_env)
    run_id = _wait_for_line(proc, "RUN").split()[1]
    first = _first_checkpoint(wattprint_env, run_id)
    time.sleep(1.2)  # several checkpoints at 0.2 s
    proc.kill()
    proc.wait(timeout=20)
    rec = stored(wattprint_env, run_id)
    assert rec.status == "interrupted" and rec.ended_at is not None
    # at most one checkpoint interval (0.2 s) lost, plus scheduling slack on a busy 2-core machine
    assert rec.energy_kwh.total > 0 and rec.duration_s > first + 1.2 - 0.2 - 0.4


def test_eight_processes_track_into_one_sqlite_store(wattprint_env: Path) -> None:
    body = """
        import sys, time, wattprint
        with wattprint.track(f"worker", interval=0.05, checkpoint=0.1) as t:
            end = time.time() + 1.5
            while time.time() < end:
                time.sleep(0.01)
        print("RUN", t.record.run_id, t.record.status, sorted(t.record.degraded), flush=True)
    """
    procs = [_script(body, wattprint_env) for _ in range(8)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    run_ids = [line.split()[1] for out in outputs for line in out.splitlines() if line.startswith("RUN")]
    assert len(run_ids) == 8 and all("[]" in out for out in outputs)
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        runs = {r.run_id: r for r in store.list()}
    assert set(run_ids) == set(runs)
    assert all(r.status == "finished" and r.ended_at is not None for r in runs.values())
    import sqlite3

    con = sqlite3.connect(wattprint_env / "wattprint.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_import_is_light() -> None:
    code = (
        "import sys, json, wattprint; "
        "print(json.dumps(sorted(m for m in ('torch', 'pandas', 'numpy', 'sqlalchemy', 'typer') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_tracker_start_path_is_light() -> None:
    """The tracker module and its constructor stay clear of pydantic and SQLAlchemy (start-up budget);
    the record is built on first use, normally by the store thread."""
    code = (
        "import sys, json; from wattprint import Tracker; t = Tracker('x'); "
        "print(json.dumps(sorted(m for m in ('pydantic', 'sqlalchemy', 'httpx', 'torch') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_record_is_built_on_first_use() -> None:
    t = wattprint.Tracker("lazy", interval=0.05)
    assert t.record is None
    t.start()
    t.log(accuracy=0.5)
    assert t.record is not None and t.record.metrics == {"accuracy": 0.5} and t.record.status == "running"
    rec = t.stop()
    assert rec is t.record and rec.status == "finished" and len(rec.run_id) == 32


def test_carbon_accounting_on_the_record() -> None:
    with wattprint.track("acct", region="DE", interval=0.05) as t:
        t.set_functional_unit("sample", 1000)
        busy(0.3)
    rec = t.record
    assert rec.co2e_kg.embodied > 0 and "server" in rec.embodied_note
    assert rec.co2e_kg.total == pytest.approx(rec.co2e_kg.operational + rec.co2e_kg.embodied)
    assert rec.co2e_kg_range["low"] < rec.co2e_kg.total < rec.co2e_kg_range["high"]
    assert rec.sci["unit"] == "sample"
    assert rec.sci["g_per_unit"] == pytest.approx(rec.co2e_kg.total * 1000 / 1000)


def test_running_checkpoints_price_carbon_as_the_final_accounting_does() -> None:
    """Checkpoints use coefficients (wattprint.accounting.running), kept while their inputs hold and derived
    again when one changes; the figures must be those the full accounting gives for the same energy,
    duration and CPU share, at the region's yearly intensity."""
    from wattprint.accounting.embodied import run_embodied
    from wattprint.accounting.footprint import integrate_operational
    from wattprint.accounting.uncertainty import record_range

    t = Tracker("linear", region="DE", pue=1.4, interval=3600, checkpoint=3600).start()  # no sampler tick meanwhile
    yearly = t._region["intensity_g_per_kwh"]
    kept = []
    try:
        t.set_functional_unit("sample", 500)
        for step in range(3):
            if step == 2:  # as if the CPU figure became a measurement: the range must follow
                t.record.methods["cpu"] = {"method": "measured", "source": "rapl"}  # type: ignore[union-attr]
            busy(0.3)
            t.monitor.sample()  # type: ignore[union-attr]
            rec = t._update_record("running")
            kept.append(t._carbon._linear[1])  # type: ignore[index]
            share = rec.attribution["host_share"]  # what the run holds of the machine (x a VM's share of its host)
            energy = {"cpu": rec.energy_kwh.cpu, "gpu": rec.energy_kwh.gpu, "ram": rec.energy_kwh.ram}
            methods = {c: (rec.methods.get(c) or {}).get("method") for c in energy}
            op = integrate_operational([(rec.started_at, rec.started_at, rec.energy_kwh.total)], yearly, 1.4)
            emb = run_embodied(rec.duration_s, host="server", host_share=share)
            band = record_range(
                energy,
                methods,
                yearly,
                1.4,
                embodied_kg=(emb.co2e_kg_low, emb.co2e_kg_high),
                intensity_range_g_per_kwh=(op.intensity_low_g_per_kwh, op.intensity_high_g_per_kwh),
            )
            assert rec.energy_kwh.total > 0 and 0 < share <= 1
            assert rec.intensity_g_per_kwh == yearly
            assert rec.co2e_kg.operational == pytest.approx(op.co2e_kg, rel=1e-12)
            assert rec.co2e_kg.embodied == pytest.approx(emb.co2e_kg, rel=1e-12)
            assert rec.embodied_note == emb.note
            assert rec.co2e_kg_range["low"] == pytest.approx(band["co2e_kg_low"], rel=1e-12)
            assert rec.co2e_kg_range["high"] == pytest.approx(band["co2e_kg_high"], rel=1e-12)
            assert rec.sci["g_per_unit"] == pytest.approx(rec.co2e_kg.total * 1000 / 500, rel=1e-12)
    finally:
        t.stop()
    assert kept[0] is kept[1] and kept[2] is not kept[1]  # derived once, again only when the methods changed


def test_time_resolved_intensity_from_a_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trace whose intensity jumps mid-run: the record's effective intensity lies between the two."""
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    trace = tmp_path / "trace.csv"
    rows = ["Time,Carbon Intensity"]
    for i in range(-20, 40):
        when = now + timedelta(seconds=i * 0.1)
        rows.append(f"{when:%Y-%m-%d %H:%M:%S.%f},{100.0 if i < 6 else 500.0}")
    trace.write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("WATTPRINT_INTENSITY_PROVIDER", "trace")
    monkeypatch.setenv("WATTPRINT_INTENSITY_TRACE", str(trace))
    with wattprint.track("trace", region="DE", interval=0.05, checkpoint=0.1) as t:
        busy(1.2)
    rec = t.record
    assert 100.0 < rec.intensity_g_per_kwh < 500.0, rec.intensity_note
    assert rec.co2e_kg.operational == pytest.approx(rec.facility_energy_kwh * rec.intensity_g_per_kwh / 1000)
    # the series came from the trace (a failure would say "yearly average used"); naive times read as UTC
    assert rec.intensity_note == "timestamps without a zone read as UTC (give tz= for local time)", rec.intensity_note
    assert "trace.csv" in rec.intensity_source, rec.intensity_source


def test_prediction_from_epoch_windows() -> None:
    with wattprint.track("predict", interval=0.05) as t:
        for epoch in range(3):
            t.begin_window(f"epoch-{epoch}")
            busy(0.15)
            t.end_window(f"epoch-{epoch}")
        prediction = t.predict(total_epochs=30)
    done = sum(w["energy_kwh"]["total"] for w in t.record.windows)
    # three equal epochs of thirty: the whole run is ten times what was done, inside the interval
    assert prediction.energy_kwh.value == pytest.approx(done * 10, rel=0.01)
    assert prediction.energy_kwh.low < prediction.energy_kwh.value < prediction.energy_kwh.high
    # the windows to count can be named; with none matching, the error says what counts and what there is
    named = t.predict(total_epochs=30, windows=["epoch-0", "epoch-1", "epoch-2"])
    assert named.energy_kwh.value == prediction.energy_kwh.value
    with pytest.raises(WattprintInputError, match=r"^prefix: no closed window whose name starts with 'step'.*epoch-0"):
        t.predict(total_epochs=30, prefix="step")
    with pytest.raises(WattprintInputError, match=r"^windows: no closed window named \['train'\]"):
        t.predict(total_epochs=30, windows=["train"])


def test_hooks_for_integrations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTPRINT_HOST", "container-7")
    t = wattprint.Tracker("hooks", interval=0.05, checkpoint=0.1, run_id="job-42").start()
    t.begin_window("step")
    busy(0.2)
    t.end_window("step", record=False)
    t.begin_window("epoch 1")
    busy(0.2)
    t.end_window("epoch 1")
    so_far = t.energy_so_far_kwh()
    assert so_far["total"] > 0 and so_far["total"] == pytest.approx(so_far["cpu"] + so_far["gpu"] + so_far["ram"])
    t.flag("prometheus", "push failed")
    time.sleep(0.3)  # checkpoints rebuild `degraded`: the flag must survive them
    rec = t.stop()
    assert rec.run_id == "job-42" and rec.host == "container-7"
    assert [w["name"] for w in rec.windows] == ["epoch 1"]
    assert rec.degraded["prometheus"] == "push failed"
    assert rec.energy_kwh.total >= so_far["total"]
    with pytest.raises(WattprintInputError, match="run_id"):
        wattprint.Tracker("bad", run_id="  ")


@pytest.mark.parametrize(
    ("checkpoint_s", "interval_s", "every"),
    [(5.0, 1.0, 5), (2.5, 1.0, 3), (5.0, 0.1, 10), (0.5, 1.0, 1), (13.0, 1.0, 1), (1e6, 1.0, 10), (1.0, 0.3, 4)],
)
def test_callbacks_fall_on_every_checkpoint_tick(checkpoint_s: float, interval_s: float, every: int) -> None:
    """Ticks per checkpoint: 5, 3, 50, 1, 13 (prime: every tick), 10**6, 4 (3.33 rounded up)."""
    assert callback_every(checkpoint_s, interval_s) == every


FORK_CHILD = """
import os, sys, time
import wattprint
from wattprint.store import open_store
with wattprint.track("fork", interval=0.05, checkpoint=0.2) as t:
    pid = os.fork()
    if pid == 0:
        sys.exit(0)  # the child unwinds through the with block and runs the inherited atexit hooks
    os.waitpid(pid, 0)
    time.sleep(0.2)
    ticks = t.monitor.ticks
    time.sleep(0.5)
    print(t.monitor.ticks - ticks, open_store(t.settings.db_url).get(t.record.run_id).status)
print(t.record.status)
"""


def test_a_forked_child_leaving_the_tracked_block_leaves_the_parents_run_alone() -> None:
    """The child must not stop the parent's sampler (they share its wake-up pipe), write to the parent's
    store, or wait on locks the parent's threads held at fork time (it hung there before)."""
    done = subprocess.run([sys.executable, "-c", FORK_CHILD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    advanced, stored_status, final_status = done.stdout.split()
    assert int(advanced) >= 5  # the parent's sampler kept ticking at 0.05 s
    assert stored_status == "running" and final_status == "finished"


def test_methods_that_measure_need_start_and_say_so(wattprint_env: Path) -> None:
    from wattprint.errors import TrackerNotStartedError, WattprintError
    from wattprint.tracking.distributed import DistributedTracker

    for tracker in (wattprint.Tracker("early"), DistributedTracker("early")):
        for call in (
            lambda t=tracker: t.begin_window("w"),
            lambda t=tracker: t.end_window("w"),
            lambda t=tracker: t.energy_so_far_kwh(),
            lambda t=tracker: t.stop(),
        ):
            with pytest.raises(TrackerNotStartedError, match="is not started: call start()") as err:
                call()
            assert isinstance(err.value, RuntimeError) and isinstance(err.value, WattprintError)


def test_both_trackers_are_what_the_integrations_use() -> None:
    from wattprint.tracking.base import TrackerLike
    from wattprint.tracking.distributed import DistributedTracker

    assert isinstance(wattprint.Tracker("a"), TrackerLike) and isinstance(DistributedTracker("b"), TrackerLike)
    assert DistributedTracker("b").monitor is None  # before start, as Tracker's


def test_window_edges_leave_no_zero_watt_points_in_the_timeline() -> None:
    """A window's fresh sample comes moments after a tick; its millisecond interval used to be stored (and
    drawn) as a 0 W point at every edge. Busy all along, the stored power never drops to 0 (issue 15)."""
    with wattprint.track("edges", interval=0.1) as t:
        for epoch in range(4):
            t.begin_window(f"epoch-{epoch}")
            busy(0.25)
            t.end_window(f"epoch-{epoch}")
    timeline = t.record.timeline
    assert len(timeline["t_s"]) >= 5
    assert min(timeline["cpu_w"]) > 0, timeline
    gaps = [b - a for a, b in zip(timeline["t_s"], timeline["t_s"][1:], strict=False)]
    assert min(gaps) >= 0.02, gaps


def test_timeline_points_merge_short_intervals_by_energy() -> None:
    """Short intervals join the next point weighted by their length, the rest joins the last point, and a run
    shorter than an interval keeps one point: nothing is dropped, only merged."""
    from wattprint.tracking.tracker import timeline_points

    # 1 s ticks with a 1 ms edge sample after each: the edges' 0 W merge in, the power stays ~100 W
    points = []
    for i in range(1, 6):
        points += [(float(i), 100.0, 10.0, 5.0), (i + 0.001, 0.0, 0.0, 0.0)]
    kept = timeline_points(points, 1.0)
    assert len(kept) == 5 and min(p[1] for p in kept) > 99.0
    energy = sum((b[0] - a[0]) * b[1] for a, b in zip([(0.0, 0, 0, 0), *points], points, strict=False))
    energy_kept = sum((b[0] - a[0]) * b[1] for a, b in zip([(0.0, 0, 0, 0), *kept], kept, strict=False))
    assert energy_kept == pytest.approx(energy)  # merged, not lost
    many = [(0.03 * i, 50.0, 0.0, 0.0) for i in range(1, 200)]  # windows every 30 ms at a 0.5 s interval
    assert len(timeline_points(many, 0.5)) >= 40 and all(
        p[1] == pytest.approx(50.0) for p in timeline_points(many, 0.5)
    )
    assert timeline_points([(0.05, 20.0, 0.0, 0.0)], 2.0) == [(0.05, 20.0, 0.0, 0.0)]  # a run shorter than a tick
    assert timeline_points([], 1.0) == []
