"""`wattprint run -- CMD ...`: run any command, pass its I/O through, track its process tree."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from wattprint.cli.common import check_output_path, fail, write_record
from wattprint.errors import StoreUnavailableError, WattprintInputError

if TYPE_CHECKING:
    from wattprint.record import Status

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _terminal_sends_sigint() -> bool:
    """True when we are the terminal's foreground group: Ctrl-C then reaches the child directly."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def _start_exporter(tracker: Any, port: int | None, addr: str, pushgateway: str | None) -> Any:
    """The Prometheus exporter when asked for, serving before the command starts; None otherwise."""
    if port is None and pushgateway is None:
        return None
    from wattprint._extras import MissingExtraError

    flags = {"port": "--prometheus-port", "addr": "--prometheus-addr", "pushgateway": "--pushgateway"}
    try:
        from wattprint.integrations.prometheus import PrometheusExporter

        return PrometheusExporter(tracker, port=port, addr=addr, pushgateway=pushgateway).start()
    except MissingExtraError as exc:
        fail("--prometheus-port" if port is not None else "--pushgateway", str(exc))
    except WattprintInputError as exc:  # the exporter's parameters are this command's --prometheus-* flags
        fail(flags.get(exc.field or "", exc.field or "--prometheus-port"), exc.message)


def run(
    ctx: typer.Context,
    name: str = typer.Option(None, "--name", "-n", help="Run name (default: the command's name)."),
    interval: float = typer.Option(None, "--interval", help="Sampling interval, s (default 1)."),
    region: str = typer.Option(None, "--region", help="Grid region: FR, US-CA, gcp:europe-west9, ..."),
    pue: float = typer.Option(None, "--pue", help="Power usage effectiveness (default 1.0 locally)."),
    checkpoint: float = typer.Option(None, "--checkpoint", help="Store checkpoint period, s (default 5)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the run record (JSON) to this file."),
    force: bool = typer.Option(False, "--force", help="Replace an output file that wattprint did not write."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on stderr."),
    within: str = typer.Option(None, "--within", help="Run when cleanest within this (90m, 8h)."),
    deadline: str = typer.Option(None, "--deadline", help="Or done by this time (ISO-8601, naive = UTC)."),
    earliest: str = typer.Option(None, "--earliest", help="Not before this time (default now)."),
    interruptible: bool = typer.Option(False, "--interruptible", help="Pause the job in dirty periods."),
    min_chunk: str = typer.Option(None, "--min-chunk", help="Shortest run between pauses (90m, ...)."),
    trace: Path = typer.Option(
        None,
        "--trace",
        help="Intensity forecast to plan on (re-read on change); the run is also recorded at its intensity.",
    ),
    duration: str = typer.Option(None, "--duration", help="Expected run time (default: past runs)."),
    prometheus_port: int = typer.Option(
        None, "--prometheus-port", help="Serve Prometheus metrics on this port (0: any free port)."
    ),
    prometheus_addr: str = typer.Option("127.0.0.1", "--prometheus-addr", help="Address to serve metrics on."),
    prometheus_linger: float = typer.Option(
        15.0,
        "--prometheus-linger",
        help="Seconds to keep serving the final metrics after the command ends, for a scraper to read them.",
    ),
    pushgateway: str = typer.Option(None, "--pushgateway", help="Also push the metrics to this Pushgateway URL."),
) -> None:
    """Run CMD (after --), track its energy and carbon, exit with its exit code."""
    command = list(ctx.args)
    if command and command[0] == "--":
        command = command[1:]
    if not command or not command[0].strip():
        fail("CMD", "no command given; usage: wattprint run [OPTIONS] -- CMD [ARGS...]")
    if command[0].startswith("-"):  # an unknown option (a typo) lands here: no program is named "-..."
        fail(command[0], "no such option of wattprint run; usage: wattprint run [OPTIONS] -- CMD [ARGS...]")
    if not 0 <= prometheus_linger <= 3600:  # NaN fails too
        fail("--prometheus-linger", f"got {prometheus_linger}; expected seconds from 0 to 3600")

    from wattprint.config import load_settings
    from wattprint.store.first_row import check_sqlite_path, sqlite_file
    from wattprint.tracking.tracker import Tracker

    # a trace to plan on is also the intensity the run is charged at: planning on one figure and recording
    # another (the world average) told two stories
    from_trace: dict[str, Any] = {"intensity_provider": "trace", "intensity_trace": trace} if trace else {}
    settings = load_settings(interval=interval, region=region, pue=pue, checkpoint=checkpoint, **from_trace)
    configured = load_settings(region=region) if trace else None  # what the run is charged at without --trace
    if output is not None:
        output = check_output_path(output, force=force)
    store = None
    sqlite_path = sqlite_file(settings.db_url)
    if sqlite_path is not None and within is None and deadline is None:
        # the default SQLite file: the tracker writes it itself, without the store's SQLAlchemy (a third of a
        # short run's CPU); a fault is said when it happens, and the job runs anyway
        check_sqlite_path(sqlite_path)  # what the store would refuse at opening, refused before the job
    else:  # another URL, or a plan that reads past runs: the store, checked before the job starts
        from wattprint.store import open_store

        try:
            store = open_store(settings.db_url, host=settings.host)
        except StoreUnavailableError as exc:  # the job runs anyway; the tracker stores the record once it can
            print(
                f"wattprint: warning: {exc}; running the command, the record is stored when the store answers",
                file=sys.stderr,
            )
    tracker = Tracker(name or Path(command[0]).name, command=command, settings=settings, store=store)
    exporter = _start_exporter(tracker, prometheus_port, prometheus_addr, pushgateway)  # a busy port fails here
    if exporter is not None and exporter.port is not None and not quiet:
        print(f"wattprint: metrics at http://{prometheus_addr}:{exporter.port}/metrics", file=sys.stderr, flush=True)
    from wattprint.cli.schedule import start_when_clean

    executor = start_when_clean(  # None unless --within/--deadline: waits for the planned start
        within=within,
        deadline=deadline,
        earliest=earliest,
        interruptible=interruptible,
        min_chunk=min_chunk,
        trace=trace,
        duration=duration,
        name=tracker.name,
        store=store,
    )

    if configured is not None and not quiet:  # the plan is valid: say what --trace changed, once
        _say_trace_replaces(configured, trace)
    reaped_before_s = _reaped_children_cpu_s()
    try:
        child = subprocess.Popen(command)
    except FileNotFoundError:
        print(f"wattprint: error: CMD: command not found: {command[0]}", file=sys.stderr)
        raise typer.Exit(127) from None
    except PermissionError:
        print(f"wattprint: error: CMD: permission denied: {command[0]}", file=sys.stderr)
        raise typer.Exit(126) from None

    forward_sigint = not _terminal_sends_sigint()

    def forward(signum: int, _frame: Any) -> None:
        if executor is not None:
            executor.on_signal(signum)  # a paused job must wake up to receive it
        if signum == signal.SIGINT and not forward_sigint:
            return  # the terminal already delivered it to the child
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    tracker.pid = child.pid
    try:
        tracker.start()
    except Exception as exc:  # tracking must never stop the command
        print(f"wattprint: warning: tracking failed to start: {exc}", file=sys.stderr)
        tracker = None  # type: ignore[assignment]
    returncode = executor.supervise(child) if executor is not None else child.wait()
    for s, handler in previous.items():
        signal.signal(s, handler)

    exit_code = 128 - returncode if returncode < 0 else returncode
    if tracker is None:
        if exporter is not None:
            exporter.stop()
        raise typer.Exit(exit_code)
    status: Status = "finished" if returncode == 0 else ("interrupted" if returncode < 0 else "failed")
    # the child is gone from /proc now: its CPU time since the last sample is only in our rusage
    tracker.note_reaped_tree_cpu_s(_reaped_children_cpu_s() - reaped_before_s)
    record = tracker.stop(status, exit_code=exit_code)
    write_record(output, record)  # a failed write warns: the job's exit code stands
    if not quiet:
        from wattprint.cli.render import summary_line

        print(summary_line(record), file=sys.stderr)
    if exporter is not None:  # after the tracker: the last push and the lingering endpoint carry the final figures
        linger_s = prometheus_linger if exporter.port is not None else 0.0
        if linger_s > 0 and not quiet:
            print(
                f"wattprint: serving the final metrics for {linger_s:g} s more (--prometheus-linger; Ctrl-C ends it)",
                file=sys.stderr,
                flush=True,
            )
        exporter.stop(linger_s)
    raise typer.Exit(exit_code)


def _say_trace_replaces(configured: Any, trace: Path) -> None:
    """A note where --trace replaces a configured provider or a configured region's yearly figure (the region
    label stays); none where the world average was all there was."""
    if (configured.intensity_provider, configured.intensity_trace) == ("trace", trace):
        return
    if configured.intensity_provider != "static":
        instead = f"the configured {configured.intensity_provider} provider"
    elif configured.region is not None:
        instead = f"{configured.region}'s yearly average"
    else:
        return
    print(
        f"wattprint: note: the run is charged at --trace {trace}'s intensity, instead of {instead}; "
        f"its region label stays {configured.region or 'WORLD'}",
        file=sys.stderr,
    )


def _reaped_children_cpu_s() -> float:
    """User + system CPU seconds of this process's reaped children (and theirs); 0 where the OS does not say."""
    times = os.times()
    return times.children_user + times.children_system
