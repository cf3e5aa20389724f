"""`wattprint node --root CGROUP`: for admins, one run per child cgroup (each Slurm job, container or pod).

Thin: build a `wattprint.tracking.node.NodeMonitor`, optionally serve its per-cgroup energy to Prometheus,
run until Ctrl-C or SIGTERM (or `--duration`), stop every run.
"""

from __future__ import annotations

import math
import signal
import sys
import threading

import typer


def node(
    root: str = typer.Option(
        ..., "--root", help="The cgroup whose children are tracked, e.g. /sys/fs/cgroup/system.slice."
    ),
    scan_s: float = typer.Option(5.0, "--scan", help="Seconds between looks for new and finished cgroups."),
    interval: float = typer.Option(None, "--interval", help="Sampling interval, s (default 1)."),
    region: str = typer.Option(None, "--region", help="Grid region: FR, US-CA, gcp:europe-west9, ..."),
    prometheus_port: int = typer.Option(None, "--prometheus-port", help="Serve per-cgroup energy on this port."),
    prometheus_addr: str = typer.Option("127.0.0.1", "--prometheus-addr", help="Address to serve metrics on."),
    duration: float = typer.Option(None, "--duration", help="Stop after this many seconds (default: Ctrl-C)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Track every child cgroup of ROOT as a run of its own, until Ctrl-C."""
    from wattprint.cli.common import fail
    from wattprint.config import load_settings
    from wattprint.tracking.node import NodeMonitor

    if duration is not None and not (math.isfinite(duration) and duration > 0):
        fail("--duration", f"{duration}; accepted: seconds > 0 (leave it out to run until Ctrl-C)")
    settings = load_settings(interval=interval, region=region)
    monitor = NodeMonitor(root, scan_s=scan_s, settings=settings)
    server = None
    if prometheus_port is not None:
        from wattprint.integrations.prometheus import serve_node

        server = serve_node(monitor, prometheus_port, prometheus_addr)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:  # the handlers stay ours until every run is stopped: a second Ctrl-C must not cut that short
        try:
            monitor.start()
            if not quiet:
                where = f"; metrics at http://{prometheus_addr}:{server.server_port}/metrics" if server else ""
                print(f"wattprint: tracking the child cgroups of {monitor.root}{where}", file=sys.stderr, flush=True)
            stop.wait(duration)
        finally:
            try:
                records = monitor.stop()
            finally:
                if server is not None:
                    server.shutdown()
                    server.server_close()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if not quiet:
        from wattprint.cli.render import summary_line

        for record in records:
            print(summary_line(record), file=sys.stderr)
