"""`wattprint rapld`: for root, serve this machine's RAPL counters read-only to the members of one group.

Thin: open `wattprint.measure.rapld.RapldServer`, serve until Ctrl-C or SIGTERM, remove the socket.
"""

from __future__ import annotations

import signal
import sys
import threading

import typer


def rapld(
    group: str = typer.Option(..., "--group", help="The group whose members may read the counters (name or gid)."),
    socket_path: str = typer.Option(
        None, "--socket", help="The Unix socket to serve on (default /run/wattprint/rapld.sock)."
    ),
    powercap_root: str = typer.Option(
        None, "--powercap-root", help="Where the RAPL zones are (default /sys/class/powercap)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Serve the RAPL energy counters (read-only) on a Unix socket that root and GROUP's members may open,
    so their trackers measure CPU and DRAM energy instead of estimating it. Run by root, e.g. as a systemd
    unit; runs until Ctrl-C or SIGTERM."""
    from wattprint.cli.common import fail
    from wattprint.errors import PowerSourceError
    from wattprint.measure.rapl import DEFAULT_ROOT, RAPLD_SOCKET
    from wattprint.measure.rapld import RapldServer, resolve_group

    socket_path = socket_path or RAPLD_SOCKET
    powercap_root = powercap_root or DEFAULT_ROOT

    try:
        gid = resolve_group(group)
    except PowerSourceError as exc:
        fail("--group", f"{exc.message}; accepted: a group name or a numeric gid")
    try:
        server = RapldServer(socket_path, gid, powercap_root)
    except OSError as exc:  # not root, a read-only /run, a group this user may not give the socket to
        fail("--socket", f"cannot serve on {socket_path}: {exc.strerror or exc}; run as root (see --help)")
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, name="wattprint-rapld", daemon=True)
    try:
        thread.start()
        if not quiet:
            print(
                f"wattprint rapld: serving {len(server.zones_info)} RAPL zone(s) on {socket_path} to group {group}",
                file=sys.stderr,
                flush=True,
            )
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        for s, handler in previous.items():
            signal.signal(s, handler)
