"""`wattprint watch --pid PID | --cgroup PATH`: track a running process tree, or a cgroup, until it ends or Ctrl-C.

Energy counts from the moment of attaching: what the process used before is not known. The process is not
wattprint's child, so its exit code cannot be read; the record says how watching ended
(`attribution.watch_end`). Exit code 0 when the process exited (the cgroup emptied), 130 when watching was
stopped (Ctrl-C or SIGTERM: the process itself runs on). A cgroup is charged by its own CPU time
(`measure.cgroup`).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import typer

from wattprint.cli.common import check_output_path, write_record
from wattprint.errors import WattprintInputError

POLL_S = 0.2


def watch(
    pid: int = typer.Option(None, "--pid", help="The process to track (its children too)."),
    cgroup: str = typer.Option(
        None, "--cgroup", help="Or a cgroup (v2) to track: a Slurm job, a container, a pod (path or /sys/fs/...)."
    ),
    name: str = typer.Option(None, "--name", "-n", help="Run name (default: the process's or cgroup's name)."),
    interval: float = typer.Option(None, "--interval", help="Sampling interval, s (default 1)."),
    region: str = typer.Option(None, "--region", help="Grid region: FR, US-CA, gcp:europe-west9, ..."),
    pue: float = typer.Option(None, "--pue", help="Power usage effectiveness (default 1.0 locally)."),
    checkpoint: float = typer.Option(None, "--checkpoint", help="Store checkpoint period, s (default 5)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the run record (JSON) to this file."),
    force: bool = typer.Option(False, "--force", help="Replace an output file that wattprint did not write."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Track the energy and carbon of process PID (and its children), or of a cgroup, from now until it exits
    (the cgroup: until it is empty) or Ctrl-C."""
    from wattprint.cli.common import fail
    from wattprint.config import load_settings
    from wattprint.tracking.tracker import Tracker

    if (pid is None) == (cgroup is None):
        fail("--pid", "give one of --pid PID or --cgroup PATH")
    settings = load_settings(interval=interval, region=region, pue=pue, checkpoint=checkpoint)
    if output is not None:
        output = check_output_path(output, force=force)
    if pid is not None:
        label, tracker, alive, what = _process_target(pid, name, settings)
    else:
        tracker = Tracker(name or Path(cgroup).name or "cgroup", cgroup=cgroup, settings=settings)
        label, what = tracker.name, f"cgroup {tracker.cgroup.path}"
        alive = lambda: not tracker.cgroup.is_empty()  # noqa: E731
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:  # the handlers stay ours until the record is stored: a second Ctrl-C must not cut that short
        tracker.start()
        if not quiet:
            print(f"wattprint: watching {what} ({label}); Ctrl-C stops watching", file=sys.stderr, flush=True)
        while not stop.is_set() and alive():
            stop.wait(POLL_S)
        exited = not alive()
        gone = "the process exited" if pid is not None else "the cgroup is empty"
        end = gone if exited else "watching stopped; it runs on"
        record = tracker.stop("finished", annotate=lambda rec: rec.attribution.update(watch_end=end))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    write_record(output, record)
    if not quiet:
        from wattprint.cli.render import summary_line

        print(f"{summary_line(record)} ({end})", file=sys.stderr)
    raise typer.Exit(0 if exited else 130)


def _process_target(pid: int, name: str | None, settings: Any) -> tuple[str, Any, Any, str]:
    """(label, tracker, is-it-alive, description) for `--pid`."""
    import psutil

    from wattprint.measure.process import check_readable_pid
    from wattprint.tracking.tracker import Tracker

    check_readable_pid(pid)
    try:
        process = psutil.Process(pid)  # keeps the process's start time: a reused PID is not mistaken for it
        command = process.cmdline() or [process.name()]
    except psutil.NoSuchProcess:
        raise WattprintInputError("pid", f"got {pid}: the process exited") from None
    except psutil.Error:
        command = None
    label = name or (Path(command[0]).name if command else f"pid {pid}")
    tracker = Tracker(label, pid=pid, command=command, settings=settings)
    return label, tracker, lambda: _alive(process), f"pid {pid}"


def _alive(process: Any) -> bool:
    import psutil

    try:
        return bool(process.is_running()) and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
