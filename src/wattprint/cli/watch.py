"""`wattprint watch --pid PID`: track a process tree that is already running, until it exits or Ctrl-C.

Energy counts from the moment of attaching: what the process used before is not known. The process is not
wattprint's child, so its exit code cannot be read; the record says how watching ended
(`attribution.watch_end`). Exit code 0 when the process exited, 130 when watching was stopped (Ctrl-C or
SIGTERM: the process itself runs on).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import typer

from wattprint.cli.common import check_output_path, write_atomic
from wattprint.errors import WattprintInputError

POLL_S = 0.2


def watch(
    pid: int = typer.Option(..., "--pid", help="The process to track (its children too)."),
    name: str = typer.Option(None, "--name", "-n", help="Run name (default: the process's name)."),
    interval: float = typer.Option(None, "--interval", help="Sampling interval, s (default 1)."),
    region: str = typer.Option(None, "--region", help="Grid region: FR, US-CA, gcp:europe-west9, ..."),
    pue: float = typer.Option(None, "--pue", help="Power usage effectiveness (default 1.0 locally)."),
    checkpoint: float = typer.Option(None, "--checkpoint", help="Store checkpoint period, s (default 5)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the run record (JSON) to this file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Track the energy and carbon of process PID (and its children) from now until it exits or Ctrl-C."""
    import psutil

    from wattprint.config import load_settings
    from wattprint.measure.process import check_readable_pid
    from wattprint.tracking.tracker import Tracker

    check_readable_pid(pid)
    settings = load_settings(interval=interval, region=region, pue=pue, checkpoint=checkpoint)
    if output is not None:
        output = check_output_path(output)
    process = psutil.Process(pid)  # keeps the process's start time: a reused PID is not mistaken for it
    try:
        command = process.cmdline() or [process.name()]
    except psutil.Error:
        command = None
    label = name or (Path(command[0]).name if command else f"pid {pid}")
    tracker = Tracker(label, pid=pid, command=command, settings=settings)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        tracker.start()
        if not quiet:
            print(f"wattprint: watching pid {pid} ({label}); Ctrl-C stops watching", file=sys.stderr, flush=True)
        while not stop.is_set() and _alive(process):
            stop.wait(POLL_S)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    exited = not _alive(process)
    end = "the process exited" if exited else "watching stopped; the process runs on"
    record = tracker.stop("finished", annotate=lambda rec: rec.attribution.update(watch_end=end))
    _write(output, record)
    if not quiet:
        from wattprint.cli.render import summary_line

        print(f"{summary_line(record)} ({end})", file=sys.stderr)
    raise typer.Exit(0 if exited else 130)


def _alive(process: Any) -> bool:
    import psutil

    try:
        return bool(process.is_running()) and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _write(output: Path | None, record: Any) -> None:
    if output is None:
        return
    try:
        write_atomic(output, json.dumps(record.to_json_dict(), indent=2) + "\n")
    except (OSError, WattprintInputError) as exc:  # the run is in the store either way
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(
            f"wattprint: warning: -o: could not write {str(output)!r} ({reason}); the record is in the store "
            f"as run {record.run_id}",
            file=sys.stderr,
        )
