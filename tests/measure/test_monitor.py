from __future__ import annotations

import select
import subprocess
import sys
import threading
import time

import pytest

from tests.measure.scripted import ScriptedSource
from wattprint.measure.base import Domain, Reading
from wattprint.measure.cpu_model import CpuInfo, CpuModelSource
from wattprint.measure.monitor import DRAIN_EVERY, EnergyMonitor, Sleeper
from wattprint.measure.process import ProcessTree, TreeSample

BUSY = "import time\nt=time.time()\nwhile time.time()-t<30: pass"
SLEEP = "import time; time.sleep(30)"


def test_integrates_cumulative_counters_exactly() -> None:
    src = ScriptedSource([100.0, 110.0, 125.0, 160.0])
    mon = EnergyMonitor([src], attribution="machine")
    for _ in range(3):
        mon.sample()
    attributed, machine = mon.by_component(mon.totals())
    assert machine["cpu"] == attributed["cpu"] == 60.0
    assert mon.samples == 3 and not mon.degraded


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (RuntimeError("sensor exploded"), "RuntimeError: sensor exploded"),
        (float("nan"), "non-finite"),
        (float("inf"), "non-finite"),
        (5.0, "counter went backwards"),
    ],
)
def test_faults_are_flagged_not_raised(fault: object, reason: str) -> None:
    # 0 -> 10 -> fault -> 20 -> 30: nothing raises; a cumulative counter recovers the energy of a
    # failed read at the next good one, and a counter that went backwards restarts from its new value
    src = ScriptedSource([0.0, 10.0, fault, 20.0, 30.0])
    mon = EnergyMonitor([src], attribution="machine")
    for _ in range(4):
        mon.sample()
    assert reason in mon.degraded["scripted:0"]
    _attributed, machine = mon.by_component(mon.totals())
    expected = 10 + 15 + 10 if reason == "counter went backwards" else 30
    assert machine["cpu"] == pytest.approx(expected)


def test_broken_source_at_start_and_a_good_one_beside_it() -> None:
    bad = ScriptedSource([OSError("permission denied")], name="bad")
    good = ScriptedSource([0.0, 5.0, 9.0], name="good", component="gpu")
    mon = EnergyMonitor([bad, good], attribution="machine")
    mon.sample()
    mon.sample()
    attributed, _ = mon.by_component(mon.totals())
    assert attributed == {"cpu": 0.0, "gpu": 9.0, "ram": 0.0}
    assert "permission denied" in mon.degraded["bad:0"]


def test_windows_nest_and_overlap() -> None:
    # each read advances the counter by 10 J
    src = ScriptedSource([float(10 * i) for i in range(100)])
    mon = EnergyMonitor([src], attribution="machine")  # prime: 0
    mon.begin_window("outer")  # sample -> 10 J total
    mon.sample()  # 20
    mon.begin_window("inner")  # 30
    mon.begin_window("overlap")  # 40
    inner = mon.end_window("inner")  # 50
    mon.sample()  # 60
    outer = mon.end_window("outer")  # 70
    overlap = mon.end_window("overlap")  # 80
    assert inner.energy_j["cpu"] == 20.0
    assert outer.energy_j["cpu"] == 60.0
    assert overlap.energy_j["cpu"] == 40.0
    with pytest.raises(ValueError, match="not open"):
        mon.end_window("outer")
    mon.begin_window("again")
    with pytest.raises(ValueError, match="already open"):
        mon.begin_window("again")


def test_sampler_thread_samples_and_stops() -> None:
    src = ScriptedSource([float(i) for i in range(10_000)])
    seen = []
    mon = EnergyMonitor([src], interval_s=0.02, attribution="machine", on_sample=lambda m: seen.append(m.samples))
    mon.start()
    time.sleep(0.3)
    mon.stop()
    mon.close()
    assert len(seen) >= 5 and seen == sorted(seen)
    assert src.closed == 1


def test_stop_wakes_a_sampler_with_a_long_interval() -> None:
    src = ScriptedSource([float(i) for i in range(100)])
    mon = EnergyMonitor([src], interval_s=30.0, attribution="machine").start()
    thread = mon._thread
    time.sleep(0.05)
    began = time.monotonic()
    mon.stop()
    assert time.monotonic() - began < 2.0  # not the 30 s interval, nor the join timeout
    assert thread is not None and not thread.is_alive()
    mon.close()


class _Lockstep:
    """Stands in for the Sleeper: before each wake-up, four explicit samples (as per-step windows take);
    after `wakeups` wake-ups, stop."""

    def __init__(self, monitor: EnergyMonitor, wakeups: int) -> None:
        self.monitor, self.left = monitor, wakeups

    def wait(self, timeout_s: float) -> bool:
        if self.left == 0:
            return True
        self.left -= 1
        for _ in range(4):
            self.monitor.sample()
        return False

    def wake(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_callbacks_count_wake_ups_not_the_samples_windows_take_in_between() -> None:
    src = ScriptedSource([float(i) for i in range(1000)])
    calls: list[int] = []
    mon = EnergyMonitor([src], attribution="machine", on_sample=lambda m: calls.append(m.ticks), on_sample_every=5)
    mon.sample()  # one explicit sample first: counting every sample, 5 per wake-up, would never hit a multiple of 5
    mon._sleeper = _Lockstep(mon, wakeups=20)  # type: ignore[assignment]
    mon._run()  # the sampler thread's loop, here in this thread
    assert len(calls) == 4  # the 5th, 10th, 15th and 20th wake-ups: the tracker's checkpoints keep coming
    mon.close()


def test_reaped_cpu_time_lands_after_the_queued_ticks() -> None:
    busy = iter([(float(i), 10.0 * i) for i in range(10)])  # the machine busy 1 s per tick
    tree = _ScriptedTree([0.0] * 10)
    source = ScriptedSource([10.0 * i for i in range(10)])
    monitor = EnergyMonitor([source], tree=tree, machine_cpu=lambda: next(busy))
    for _ in range(3):
        monitor._tick()  # queued, not yet integrated
    monitor.note_root_reaped(0.5)  # the child was reaped with 0.5 s of CPU time that /proc no longer shows
    monitor.sample()
    timeline = monitor.timeline
    joules = [q[1] * (q[0] - p[0]) for p, q in zip(timeline, timeline[1:], strict=False)]  # intervals 2-4
    assert joules == pytest.approx([0.0, 0.0, 5.0])  # 10 J x share 0.5, in the last interval only


@pytest.mark.parametrize("without_poll", [False, True], ids=["poll", "event (no poll(2), as on Windows)"])
def test_sleeper_times_out_wakes_and_stays_woken(monkeypatch: pytest.MonkeyPatch, without_poll: bool) -> None:
    if without_poll:
        monkeypatch.delattr(select, "poll")
    sleeper = Sleeper()
    began = time.monotonic()
    assert sleeper.wait(0.05) is False
    assert 0.04 <= time.monotonic() - began < 1.0
    threading.Timer(0.05, sleeper.wake).start()
    began = time.monotonic()
    assert sleeper.wait(10.0) is True
    assert time.monotonic() - began < 2.0
    assert sleeper.wait(10.0) is True  # once woken, never sleeps again
    sleeper.close()
    sleeper.close()
    assert sleeper.wait(10.0) is True


def test_callback_failure_does_not_stop_sampling() -> None:
    src = ScriptedSource([float(i) for i in range(10_000)])

    def boom(_m: EnergyMonitor) -> None:
        raise RuntimeError("callback broke")

    mon = EnergyMonitor([src], interval_s=0.02, attribution="machine", on_sample=boom)
    mon.start()
    time.sleep(0.2)
    mon.stop()
    assert mon.samples >= 4


def test_timeline_is_bounded() -> None:
    src = ScriptedSource([float(i) for i in range(5000)])
    mon = EnergyMonitor([src], attribution="machine")
    for _ in range(3000):
        mon.sample()
    assert 256 <= len(mon.timeline) < 1024


def test_bad_interval() -> None:
    with pytest.raises(ValueError):
        EnergyMonitor([], interval_s=0)


def _spawn(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def test_process_share_charges_only_the_tracked_tree() -> None:
    """A sleeping tracked process beside a busy neighbour gets ~0 of the CPU; the busy one most."""
    sleeper, busy = _spawn(SLEEP), _spawn(BUSY)
    try:
        time.sleep(0.3)
        src_a = ScriptedSource([float(100 * i) for i in range(1000)])
        src_b = ScriptedSource([float(100 * i) for i in range(1000)])
        mon_sleep = EnergyMonitor([src_a], tree=ProcessTree(sleeper.pid))
        mon_busy = EnergyMonitor([src_b], tree=ProcessTree(busy.pid))
        for _ in range(8):
            time.sleep(0.1)
            mon_sleep.sample()
            mon_busy.sample()
        a_sleep, m_sleep = mon_sleep.by_component(mon_sleep.totals())
        a_busy, m_busy = mon_busy.by_component(mon_busy.totals())
    finally:
        for p in (sleeper, busy):
            p.kill()
            p.wait()
    assert m_sleep["cpu"] == m_busy["cpu"] == 800.0  # machine totals are the same
    assert a_sleep["cpu"] < 0.05 * m_sleep["cpu"]
    # one busy core of two is ~0.5 on an idle machine; neighbours (a parallel test run) can halve it
    assert a_busy["cpu"] > 0.2 * m_busy["cpu"]
    assert mon_busy.mean_cpu_share() > 0.2


def test_process_tree_counts_grandchildren_and_reaped_children() -> None:
    # the child spins for 0.6 s of CPU time, not wall time: on a loaded machine it may take longer
    cpu_busy = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.6: pass"
    code = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {cpu_busy!r}])\nimport time; time.sleep(30)"
    parent = _spawn(code)
    try:
        tree = ProcessTree(parent.pid, refresh_every=1)
        first = tree.sample().cpu_s
        time.sleep(0.3)
        mid = tree.sample()
        assert len(mid.pids) == 2  # the parent and its running child
        deadline = time.monotonic() + 30
        after = tree.sample()
        while len(after.pids) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            after = tree.sample()
    finally:
        parent.kill()
        parent.wait()
    assert len(after.pids) == 1  # child ended and was reaped
    assert after.cpu_s - first > 0.4  # its CPU time stayed in the tree


class _ScriptedTree:
    """A process tree whose cumulative CPU seconds are scripted (a child found late arrives at once)."""

    root_pid = 1

    def __init__(self, cpu_s: list[float]) -> None:
        self._cpu_s = cpu_s
        self._i = 0

    def read_raw(self) -> float:
        value = self._cpu_s[min(self._i, len(self._cpu_s) - 1)]
        self._i += 1
        return value

    def from_raw(self, value: float) -> TreeSample:
        self._floor = max(getattr(self, "_floor", 0.0), value)
        return TreeSample(self._floor, 0, frozenset({1}))

    def note_root_reaped(self, total_cpu_s: float) -> None:
        self._floor = max(getattr(self, "_floor", 0.0), total_cpu_s)

    def close(self) -> None:
        pass


def test_cpu_time_found_late_is_carried_not_clipped() -> None:
    # machine busy 1 s per sample, 10 J per sample; the tree's 2 s of earlier CPU time shows up at once
    busy = iter([(0.0, 10.0), (1.0, 12.0), (2.0, 14.0), (3.0, 16.0), (4.0, 18.0)])
    source = ScriptedSource([0.0, 10.0, 20.0, 30.0, 40.0])
    monitor = EnergyMonitor([source], tree=_ScriptedTree([0.0, 0.0, 2.5, 2.5, 2.5]), machine_cpu=lambda: next(busy))
    for _ in range(4):
        monitor.sample()
    attributed, machine = monitor.by_component(monitor.totals())
    assert machine["cpu"] == pytest.approx(40.0)
    # 2.5 s of the tree's CPU over 4 s of machine time: 25 J, not the 10 J that clipping at 1.0 would leave
    assert attributed["cpu"] == pytest.approx(25.0)


class _ScriptedStat:
    """A machine CPU reader with raw()/parse(), like the kept-open /proc/stat: read on time, parsed later."""

    def __init__(self, rows: list[tuple[float, float]]) -> None:
        self._rows = iter(rows)
        self.parsed = 0

    def raw(self) -> bytes:
        busy, total = next(self._rows)
        return f"{busy} {total}".encode()

    def parse(self, raw: bytes) -> tuple[float, float]:
        self.parsed += 1
        busy, total = raw.split()
        return float(busy), float(total)

    def __call__(self) -> tuple[float, float]:
        return self.parse(self.raw())


def test_ticks_are_queued_unparsed_and_integrated_each_with_its_own_readings() -> None:
    utilisations = [0.5, 1.0, 0.0, 0.25, 0.75]
    rows = [(0.0, 0.0)]
    for u in utilisations:
        rows.append((rows[-1][0] + 10 * u, rows[-1][1] + 10))
    stat = _ScriptedStat(rows)
    info = CpuInfo("test", sockets=1, logical_cpus=2, tdp_w=100.0, tdp_source="test")
    counter = ScriptedSource([0.0, 3.0, 5.0, 6.0, 10.0, 11.0], component="gpu")
    mon = EnergyMonitor([CpuModelSource(info, idle_fraction=0.1), counter], attribution="machine", machine_cpu=stat)
    for _ in utilisations:
        mon._tick()  # what the sampler thread does each interval
    assert stat.parsed == 1 and counter.reads == 6  # counters read on time; the CPU times wait, unparsed
    timeline = mon.timeline  # reading a result integrates the queue
    assert stat.parsed == 6 and mon.samples == 5
    # each interval has its own utilisation: 100 W x (0.1 + 0.9 u)
    assert [p[1] for p in timeline] == pytest.approx([100 * (0.1 + 0.9 * u) for u in utilisations], rel=1e-6)
    joules = [q[2] * (q[0] - p[0]) for p, q in zip(timeline, timeline[1:], strict=False)]
    assert joules == pytest.approx([2, 1, 4, 1], rel=1e-6)  # the counter's own steps, interval by interval
    attributed, _machine = mon.by_component(mon.totals())
    assert attributed["gpu"] == pytest.approx(11.0)


def test_the_queue_is_integrated_every_drain_every_ticks() -> None:
    src = ScriptedSource([float(i) for i in range(100)])
    mon = EnergyMonitor([src], attribution="machine")
    for _ in range(DRAIN_EVERY - 1):
        mon._tick()
    assert mon._samples == 0  # private: reading `samples` would integrate the queue
    mon._tick()
    assert mon._samples == DRAIN_EVERY


class _ClockCounter:
    """A counter that only ever goes up: cumulative joules = 10 W x monotonic time."""

    name = "clock"

    def domains(self) -> tuple[Domain, ...]:
        return (Domain("clock:0", "cpu", "measured"),)

    def __init__(self) -> None:
        self.reads: list[float] = []

    def read(self) -> Reading:
        now = time.monotonic()
        self.reads.append(now)
        return Reading(now, {"clock:0": 10.0 * now})

    def close(self) -> None:
        pass


def test_samples_from_two_threads_at_once_never_see_a_counter_run_backwards() -> None:
    counter = _ClockCounter()
    mon = EnergyMonitor([counter], interval_s=0.0005, attribution="machine").start()
    for _ in range(3000):
        mon.sample()  # as begin_window/end_window do, while the sampler thread ticks
    mon.stop()
    mon.close()
    assert mon.degraded == {}
    attributed, _machine = mon.by_component(mon.totals())
    # no interval skipped: the integral is exactly the counter's span, from the first reading to the latest
    assert attributed["cpu"] == pytest.approx(10.0 * (max(counter.reads) - counter.reads[0]), rel=1e-9)


def test_gpus_that_list_no_processes_go_by_cpu_share_for_one_of_many_runs() -> None:
    # the run has a quarter of the machine's busy CPU time; a Jetson-like GPU rail draws 10 J per sample
    busy = iter([(0.0, 10.0), (4.0, 20.0), (8.0, 30.0)])
    gpu = ScriptedSource([0.0, 10.0, 20.0], name="jetson", component="gpu")
    monitor = EnergyMonitor([gpu], tree=_ScriptedTree([0.0, 1.0, 2.0]), machine_cpu=lambda: next(busy))
    monitor.charge_unseen_gpus = False  # one cgroup of many, as `wattprint node` runs it
    assert monitor.gpu_selection()[0] == set()  # nobody says who uses it: without a rule it would be dropped
    monitor.share_gpus_by_cpu({"jetson:0"})
    for _ in range(2):
        monitor.sample()
    gpus, why = monitor.gpu_selection()
    assert gpus == {"jetson:0"} and "by CPU share" in why
    attributed, machine = monitor.by_component(monitor.totals())
    assert machine["gpu"] == pytest.approx(20.0)
    assert attributed["gpu"] == pytest.approx(5.0)  # a quarter of it, not all and not nothing


def test_held_share_is_the_trees_part_of_the_machines_capacity_not_of_its_busy_time() -> None:
    # a 4-CPU machine: 4 CPU seconds per 1 s interval, 1 of them busy, all of it the tracked tree's
    stat = iter([(float(i), 4.0 * i) for i in range(6)])
    source = ScriptedSource([0.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    monitor = EnergyMonitor([source], tree=_ScriptedTree([float(i) for i in range(6)]), machine_cpu=lambda: next(stat))
    for _ in range(5):
        monitor.sample()
    assert monitor.mean_cpu_share() == pytest.approx(1.0)  # all the busy time: its energy share
    assert monitor.mean_held_share() == pytest.approx(0.25)  # one core of four: what it holds, for embodied
    machine_wide = EnergyMonitor([ScriptedSource([0.0, 1.0])], tree=_ScriptedTree([0.0]), attribution="machine")
    machine_wide.sample()
    assert machine_wide.mean_held_share() == 1.0
