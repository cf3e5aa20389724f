"""Running a command at the planned time: wait (with a countdown), then run, pausing if interruptible.

    ex = Executor(FileForecast("forecast.csv", load), duration_s=3600, deadline=deadline, interruptible=True)
    ex.wait_for_start()            # blocks until the plan's start; raises Cancelled on Ctrl-C / SIGTERM
    child = subprocess.Popen(cmd)
    returncode = ex.supervise(child)   # pauses and resumes the process tree along the plan's slots

Pausing defaults to SIGSTOP/SIGCONT of the whole process tree (`TreePauser`); a checkpointing job
can be paused its own way with `CallbackPauser(on_pause, on_resume)`. When the forecast source has
a fresher forecast (for a file: its modification time or size changed), the remaining work is
re-planned from now to the same deadline. If the remaining work no longer fits before the deadline
(e.g. the machine was suspended) the job runs without pausing. A job that outlives its planned
duration runs on without pausing after its last slot.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol, TextIO

from wattprint.errors import WattprintError
from wattprint.intensity.base import IntensitySeries
from wattprint.schedule.grid import Grid
from wattprint.schedule.planning import Plan, Window, plan_window
from wattprint.schedule.timeparse import format_duration, iso

TERMINATING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


class Cancelled(WattprintError):
    """The wait before the start was cancelled (Ctrl-C, SIGTERM): nothing was run."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"cancelled by {signal.Signals(signum).name} while waiting; nothing was run")


# -- forecasts --------------------------------------------------------------------------------------
class Forecast(Protocol):
    def load(self) -> IntensitySeries: ...

    def fresher(self) -> bool:
        """True when a newer forecast than the last `load` is available."""
        ...


class StaticForecast:
    """A fixed series (never refreshed)."""

    def __init__(self, series: IntensitySeries) -> None:
        self.series = series

    def load(self) -> IntensitySeries:
        return self.series

    def fresher(self) -> bool:
        return False


class FileForecast:
    """A forecast file, reloaded when it changes (modification time or size)."""

    def __init__(self, path: str | Path, loader: Callable[[Path], IntensitySeries]) -> None:
        self.path = Path(path)
        self.loader = loader
        self._stamp: tuple[int, int] | None = None

    def _current(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def load(self) -> IntensitySeries:
        stamp = self._current()
        series = self.loader(self.path)
        self._stamp = stamp
        return series

    def fresher(self) -> bool:
        stamp = self._current()
        return stamp is not None and stamp != self._stamp


# -- pausing ---------------------------------------------------------------------------------------
class Pauser(Protocol):
    def pause(self, child: subprocess.Popen) -> None: ...

    def resume(self, child: subprocess.Popen) -> None: ...

    def release(self, child: subprocess.Popen) -> None:
        """The job is over (or no longer paused): undo anything still paused."""
        ...


class TreePauser:
    """SIGSTOP / SIGCONT to the child and all its descendants (found with psutil)."""

    def __init__(self) -> None:
        self._stopped: dict[int, float] = {}  # pid -> create_time

    @staticmethod
    def _tree(pid: int) -> list[Any]:
        import psutil

        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def pause(self, child: subprocess.Popen) -> None:
        import psutil

        for _ in range(5):  # stop parents first, then whatever they forked meanwhile
            new = [p for p in self._tree(child.pid) if p.pid not in self._stopped]
            if not new:
                break
            for proc in new:
                try:
                    self._stopped[proc.pid] = proc.create_time()
                    proc.send_signal(signal.SIGSTOP)
                except psutil.Error:
                    self._stopped.pop(proc.pid, None)

    def resume(self, child: subprocess.Popen) -> None:
        import psutil

        targets = {p.pid: p for p in self._tree(child.pid)}
        for pid, created in self._stopped.items():
            if pid not in targets:
                try:
                    proc = psutil.Process(pid)
                    if abs(proc.create_time() - created) < 1e-3:
                        targets[pid] = proc
                except psutil.Error:
                    continue
        for proc in reversed(list(targets.values())):
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGCONT)
        self._stopped.clear()

    def release(self, child: subprocess.Popen) -> None:
        if self._stopped:
            self.resume(child)


class CallbackPauser:
    """Pause and resume with the user's callbacks (checkpoint, then stop; reload, then go on)."""

    def __init__(
        self, on_pause: Callable[[subprocess.Popen], None], on_resume: Callable[[subprocess.Popen], None]
    ) -> None:
        self.on_pause, self.on_resume = on_pause, on_resume
        self._paused = False

    def pause(self, child: subprocess.Popen) -> None:
        self.on_pause(child)
        self._paused = True

    def resume(self, child: subprocess.Popen) -> None:
        self._paused = False
        self.on_resume(child)

    def release(self, child: subprocess.Popen) -> None:
        if self._paused and child.poll() is None:
            self.resume(child)


# -- the executor ----------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(timezone.utc)


class Executor:
    """Plans a job on a forecast, waits for its start, and drives an interruptible job's pauses."""

    def __init__(
        self,
        forecast: Forecast,
        duration_s: float,
        deadline: datetime,
        *,
        earliest: datetime | None = None,
        interruptible: bool = False,
        min_chunk_s: float = 0.0,
        pause_cost_s: float = 0.0,
        pauser: Pauser | None = None,
        stream: TextIO | None = None,
        poll_s: float = 1.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.forecast = forecast
        self.duration_s = float(duration_s)
        self.deadline = deadline
        self.clock = clock
        now = clock()
        self.earliest = max(earliest, now) if earliest is not None else now
        self.interruptible = interruptible
        self.min_chunk_s = min_chunk_s
        self.pause_cost_s = pause_cost_s
        self.pauser: Pauser = pauser if pauser is not None else TreePauser()
        self.stream = stream if stream is not None else sys.stderr
        self.poll_s = poll_s
        self.cancelled = False
        self._lock = threading.RLock()  # on_signal runs in the main thread, maybe inside supervise
        self._paused = False
        self._child: subprocess.Popen | None = None
        self.replans = 0
        self.plan = self._plan(self.earliest, self.duration_s, self.forecast.load())  # bad input raises here

    def _plan(self, earliest: datetime, remaining_s: float, series: IntensitySeries) -> Plan:
        w = Window(earliest, self.deadline, timedelta(seconds=remaining_s))
        if remaining_s > (self.deadline - earliest).total_seconds():
            from wattprint.errors import WattprintInputError

            raise WattprintInputError(
                "duration",
                f"{format_duration(remaining_s)} does not fit before the deadline {_t(self.deadline)}",
            )
        return plan_window(
            Grid.from_series(series),
            w,
            interruptible=self.interruptible,
            min_chunk_s=self.min_chunk_s,
            pause_cost_s=self.pause_cost_s,
        )

    def _say(self, text: str) -> None:
        try:
            self.stream.write(f"wattprint: {text}\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _describe(self, p: Plan) -> str:
        return f"{p.mean_intensity:.0f} gCO2e/kWh vs {p.baseline_intensity:.0f} at once ({-p.savings_pct:+.0f}%)"

    def _refresh(self, remaining_s: float) -> bool:
        """Re-plan from now if a fresher forecast arrived. True when the plan changed."""
        if not self.forecast.fresher():
            return False
        now = self.clock()
        try:
            series = self.forecast.load()
            new = self._plan(max(now, self.earliest), remaining_s, series)
        except Exception as exc:  # a bad new forecast never stops the job: keep the current plan
            self._say(f"warning: fresher forecast not used: {exc}")
            return False
        self.replans += 1
        changed = new.slots != self.plan.slots
        self.plan = new
        if changed:
            self._say(f"fresher forecast: re-planned to start {_t(new.start)}: {self._describe(new)}")
        return changed

    # -- waiting ----------------------------------------------------------------------------------
    def wait_for_start(self) -> Plan:
        """Block until the plan's start (re-planning on fresher forecasts). Raises `Cancelled`."""
        main = threading.current_thread() is threading.main_thread()
        previous: dict[int, Any] = {}

        def cancel(signum: int, _frame: Any) -> None:
            raise Cancelled(signum)

        if main:
            for s in TERMINATING:
                previous[int(s)] = signal.signal(s, cancel)
        try:
            self._wait()
        except KeyboardInterrupt:
            raise Cancelled(signal.SIGINT) from None
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.plan

    def _wait(self) -> None:
        start = self.plan.start
        if start <= self.clock():
            self._say(f"starting now, the cleanest time before {_t(self.deadline)}: {self._describe(self.plan)}")
            return
        live = None
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        if tty:
            from rich.console import Console
            from rich.live import Live

            live = Live(console=Console(file=self.stream), transient=True, auto_refresh=False)
            live.start()
        else:
            self._say(
                f"waiting until {_t(start)} (in {format_duration((start - self.clock()).total_seconds())}) "
                f"for a cleaner grid: {self._describe(self.plan)}; Ctrl-C cancels"
            )
        try:
            while True:
                now = self.clock()
                start = self.plan.start
                left = (start - now).total_seconds()
                if left <= 0:
                    break
                if live is not None:
                    live.update(
                        f"[bold]wattprint[/]: waiting for a cleaner grid: starts {_t(start)}, in "
                        f"[bold]{_clock(left)}[/] - {self._describe(self.plan)} (Ctrl-C cancels)",
                        refresh=True,
                    )
                time.sleep(min(left, self.poll_s, 1.0))
                self._refresh(self.duration_s)
        finally:
            if live is not None:
                live.stop()
        if tty:
            self._say(f"starting at {_t(self.clock())}: {self._describe(self.plan)}")

    # -- running ----------------------------------------------------------------------------------
    def on_signal(self, signum: int) -> None:
        """A terminating signal is on its way to the job: wake it so it can act, and stop pausing."""
        if signum not in TERMINATING:
            return
        with self._lock:
            self.cancelled = True
            child = self._child
            if child is not None and self._paused:
                self._paused = False
                with contextlib.suppress(Exception):
                    self.pauser.resume(child)

    def supervise(self, child: subprocess.Popen) -> int:
        """Wait for `child`, pausing and resuming it along the plan's slots. Returns its returncode."""
        self._child = child
        if not self.interruptible:
            return child.wait()
        done = 0.0  # seconds of work so far
        mark = time.monotonic()
        try:
            while True:
                now = self.clock()
                running = not self._paused
                if running:
                    t = time.monotonic()
                    done += t - mark
                    mark = t
                want, until = self._wanted(now, done)
                with self._lock:
                    if want != running:
                        if want:
                            self.pauser.resume(child)
                            self._paused = False
                            mark = time.monotonic()
                            self._say(f"resumed at {_t(now)}")
                        else:
                            self.pauser.pause(child)
                            self._paused = True
                            self._say(
                                f"paused at {_t(now)} (dirty grid) until {_t(until)}"
                                if until
                                else f"paused at {_t(now)}"
                            )
                timeout = self.poll_s if until is None else max(0.01, min(self.poll_s, (until - now).total_seconds()))
                try:
                    return child.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
                if not self.cancelled:
                    remaining = self.duration_s - done
                    if remaining > 1.0 and self.plan.end > now:
                        self._refresh(remaining)
        finally:
            with self._lock:
                self._paused = False
                with contextlib.suppress(Exception):
                    self.pauser.release(child)

    def _wanted(self, now: datetime, done: float) -> tuple[bool, datetime | None]:
        """(run now?, when that changes)."""
        if self.cancelled:
            return True, None
        remaining = self.duration_s - done
        if remaining >= (self.deadline - now).total_seconds() - min(self.poll_s, 0.25):
            return True, None  # must run to meet the deadline
        slots = self.plan.slots
        if now >= slots[-1][1]:
            return True, None  # past the plan: the job took longer than planned
        for a, b in slots:
            if now < a:
                return False, a
            if now < b:
                return True, b
        return True, None


def _t(when: datetime) -> str:
    return iso(when.replace(microsecond=0))


def _clock(seconds: float) -> str:
    s = int(max(0, seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
