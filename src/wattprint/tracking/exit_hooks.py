"""Nothing lost at process exit: trackers still running when the interpreter exits, or when SIGTERM arrives
and nobody else handles it, are stopped and stored (finished, failed or interrupted) before the process goes."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wattprint.status import Status
    from wattprint.tracking.tracker import Tracker

log = logging.getLogger("wattprint")

_ACTIVE: weakref.WeakSet[Tracker] = weakref.WeakSet()  # started, not yet stopped


def _stop_all(status: Status, exit_code: int | None = None) -> None:
    for tracker in list(_ACTIVE):  # in a forked child, stop() leaves the parent's runs alone
        try:
            tracker.stop(status, exit_code)
        except Exception as exc:  # at exit: one run's fault must not keep the others from finishing
            log.error("wattprint: could not finish run %s: %s", tracker.name, exc)


def _on_exit() -> None:
    _stop_all("failed" if hasattr(sys, "last_value") else "finished")


def _on_sigterm(signum: int, frame: Any) -> None:
    _stop_all("interrupted", exit_code=128 + signum)
    # then die of the signal as the process would have without us
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@functools.cache
def _install_exit_hooks() -> None:
    """Once per process: finish open runs at exit, and on SIGTERM when nobody else handles it."""
    atexit.register(_on_exit)
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):
            pass


def watch(tracker: Tracker) -> None:
    """Stop `tracker` at exit or on SIGTERM unless it is stopped before (installs the hooks once)."""
    _ACTIVE.add(tracker)
    _install_exit_hooks()


def forget(tracker: Tracker) -> None:
    """`tracker` has stopped: nothing left to do for it at exit."""
    _ACTIVE.discard(tracker)
