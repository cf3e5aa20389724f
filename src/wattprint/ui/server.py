"""Serving the dashboard: bind the socket ourselves (clear errors, port 0 = any free port), then uvicorn.

Binding first means "port in use" and "no such address" are reported before anything starts, and the
URL printed is the real one even when the port was picked by the system.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import signal
import socket
import threading
from typing import Any

from wattprint._extras import require
from wattprint.errors import WattprintInputError


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or WattprintInputError naming host or port."""
    if not 0 <= port <= 65535:
        raise WattprintInputError("port", f"got {port}; expected 0-65535 (0 picks a free port)")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WattprintInputError("host", f"cannot resolve {host!r}: {exc.strerror}") from None
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise WattprintInputError(
                "port", f"port {port} on {host} is already in use; choose another (0 picks a free one)"
            ) from None
        if exc.errno == errno.EACCES:
            why = f"no permission to listen on port {port}; use a port above 1023"
            raise WattprintInputError("port", why) from None
        raise WattprintInputError("host", f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(app: Any, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Run `app` on the bound socket until SIGINT/SIGTERM; uvicorn shuts down gracefully."""
    uvicorn = require("uvicorn", extra="ui", feature="the dashboard")
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on")
    # uvicorn shuts down gracefully, then re-raises the signal it caught: make that a quiet, clean exit
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_cleanly)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has already shut down gracefully
        uvicorn.Server(config).run(sockets=[sock])


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)
