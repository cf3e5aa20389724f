"""`wattprint rapld`: RAPL counters for users who may not read them, and the source that reads them there.

Since Linux 5.10 `energy_uj` is readable by root only. Rather than `chmod o+r` for everybody, root runs
this small daemon: it opens the counters once and answers read-only requests on a Unix socket that only
root and members of one group may open (mode 0660, group set at start), and it checks each client's
credentials again (SO_PEERCRED) in case the socket's mode is loosened later.

Protocol, one line per request and one JSON line per reply, on a connection the client keeps open:
    zones\\n  -> {"zones": [{"id": "intel-rapl:0", "name": "package-0", "max_energy_range_uj": N}, ...]}
    read\\n   -> {"energy_uj": [raw, raw, ...]}       (the zones' raw counters, in the order of `zones`)
anything else -> {"error": "..."} and the connection is closed; the daemon keeps serving the others.

The daemon hands out raw counters only; `RapldSource` integrates them exactly as `RaplSource` does (same
wrap-around, same domain names), so an unprivileged tracker measures what root would.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import socket
import socketserver
import stat
import struct
import threading
import time
from pathlib import Path
from typing import Any

from wattprint.errors import PowerSourceError
from wattprint.measure.rapl import DEFAULT_ROOT, RAPLD_SOCKET, RaplSource, _Zone

DEFAULT_SOCKET = RAPLD_SOCKET
SOCKET_MODE = 0o660  # what bind() creates under the daemon's umask
MAX_REQUEST_BYTES = 64  # the longest request is 6 bytes; more is a malformed client
IDLE_TIMEOUT_S = 60.0  # a tracker reads every second; a connection silent this long is dropped (it reconnects)
MAX_CLIENTS = 64  # connections served at once; more are refused so a flood cannot exhaust descriptors
MAX_PER_USER = 4  # connections of one user at once: one member cannot take every slot from the others
# counters are read from the hardware at most this often; faster requests get the last values. Fine-grained
# RAPL readings are a side channel (PLATYPUS, CVE-2020-8694, why Linux 5.10 made them root-only): energy
# accounting needs a reading a second, an attacker thousands
MIN_READ_INTERVAL_S = 0.1
CLIENT_TIMEOUT_S = 0.5  # a daemon slower than this counts as not answering
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13: the peer's groups, from its credentials


def _peer_groups(connection: socket.socket) -> set[int]:
    """Supplementary groups of the peer as of connect() (SO_PEERGROUPS), empty where the kernel lacks it."""
    size = struct.calcsize("I")
    try:
        data = connection.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 256 * size)
    except OSError:
        return set()
    return {gid for (gid,) in struct.iter_unpack("I", data[: len(data) // size * size])}


def resolve_group(group: str | int) -> int:
    """A group's gid from its name or number; PowerSourceError names the group when there is none."""
    text = str(group).strip()
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise PowerSourceError(f"no group named {text!r} on this machine", reason="unreadable") from None


class _Handler(socketserver.StreamRequestHandler):
    server: RapldServer
    timeout = IDLE_TIMEOUT_S

    def handle(self) -> None:
        uid = self.server.allowed(self.request)
        refusal = None
        if uid is None:
            refusal = {"error": "not allowed: this user is not root nor in the daemon's group", "reason": "permission"}
        elif not self.server.enter(uid):
            refusal = {"error": f"this user already has {MAX_PER_USER} connections open", "reason": "busy"}
        if refusal is not None:
            # its request is read first, so the refusal does not race the client's send (which would see EPIPE)
            self.request.settimeout(2.0)
            self.rfile.readline(MAX_REQUEST_BYTES + 1)
            self._reply(refusal)
            return
        assert uid is not None
        try:
            self._serve()
        finally:
            self.server.leave(uid)

    def _serve(self) -> None:
        while True:
            line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
            if not line:
                return  # the client closed
            request = line.strip()
            if request == b"read":
                try:
                    reply: dict[str, Any] = {"energy_uj": self.server.read_raws()}
                except (OSError, PowerSourceError) as exc:  # a counter that vanished: said, and the next read may work
                    reply = {"error": f"counter read failed: {exc}", "reason": "unreadable"}
            elif request == b"zones":
                reply = {"zones": self.server.zones_info}
            else:
                self._reply(
                    {"error": "unknown request; accepted: 'zones' or 'read', one per line", "reason": "request"}
                )
                return
            self._reply(reply)

    def _reply(self, document: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(document).encode() + b"\n")


class RapldServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The daemon: the RAPL zones under `powercap_root`, served on `socket_path` to root and `gid`'s members."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(
        self,
        socket_path: str | Path,
        gid: int,
        powercap_root: str | Path = DEFAULT_ROOT,
        *,
        min_read_interval_s: float = MIN_READ_INTERVAL_S,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.gid = gid
        self.min_read_interval_s = min_read_interval_s
        self._read_lock = threading.Lock()  # one pread per zone at a time: the descriptors are shared
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._clients: set[socket.socket] = set()
        self._per_user: dict[int, int] = {}
        self._cached: tuple[float, list[int]] | None = None
        self._rapl = RaplSource(powercap_root)  # opened as the daemon's user: root on a real machine
        try:
            self.zones_info = [
                {"id": zone.zone_id, "name": _zone_name(zone), "max_energy_range_uj": zone.max_range_uj}
                for zone in self._rapl._zones
            ]
            self.socket_path.parent.mkdir(parents=True, exist_ok=True)
            _check_directory(self.socket_path.parent)
            _clear_stale(self.socket_path)
            old_umask = os.umask(0o117)  # bound as 0660 from its first instant, never wider
            try:
                super().__init__(str(self.socket_path), _Handler)
            finally:
                os.umask(old_umask)
            os.chown(self.socket_path, -1, gid, follow_symlinks=False)
        except BaseException:
            self._rapl.close()
            raise

    def allowed(self, connection: socket.socket) -> int | None:
        """The peer's uid if it is root, the daemon's own user, or a member of the group (primary or not)."""
        try:
            creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("iII"))
            _pid, uid, gid = struct.unpack("iII", creds)
        except OSError:
            return None
        if uid in (0, os.geteuid()) or gid == self.gid or self.gid in _peer_groups(connection):
            return int(uid)
        return None

    def enter(self, uid: int) -> bool:
        """Count one more connection of `uid`; False (nothing counted) when it has MAX_PER_USER already."""
        with self._read_lock:
            if self._per_user.get(uid, 0) >= MAX_PER_USER and uid != 0:
                return False
            self._per_user[uid] = self._per_user.get(uid, 0) + 1
            return True

    def leave(self, uid: int) -> None:
        with self._read_lock:
            self._per_user[uid] -= 1

    def read_raws(self) -> list[int]:
        """The raw counters, read afresh at most every `min_read_interval_s` (see MIN_READ_INTERVAL_S why)."""
        with self._read_lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.min_read_interval_s:
                self._cached = (now, self._rapl._read_raws())
            return list(self._cached[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # too many clients: this one is dropped, the others go on
            return
        with self._read_lock:
            self._clients.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._read_lock:
                self._clients.discard(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished or sent garbage costs its own connection only (no traceback on stderr)."""

    def server_close(self) -> None:
        """Stop listening, hang up on every client (they see the daemon gone), close the counters."""
        super().server_close()
        with self._read_lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
            self._rapl.close()
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.socket_path).st_mode):
                self.socket_path.unlink()


def _zone_name(zone: _Zone) -> str:
    with open(zone.path / "name", encoding="ascii", errors="replace") as handle:
        return handle.read().strip()


def _check_directory(directory: Path) -> None:
    """The socket's directory must be the daemon's own and closed to others: in one that another user may
    write, they could swap the socket for a link to a file that root would then hand to the group."""
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PowerSourceError(
            f"{directory} must be a directory owned by this user and writable by no one else "
            "(e.g. /run/wattprint, as systemd's RuntimeDirectory makes it)"
        )


def _clear_stale(path: Path) -> None:
    """Remove a socket left by a daemon that died; refuse to start beside one that answers, or where something
    other than a socket is."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise PowerSourceError(f"{path} exists and is not a socket; accepted: a free path for --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: a stale socket
        return
    finally:
        probe.close()
    raise PowerSourceError(f"a daemon already answers on {path}; stop it first or choose another --socket")


class RapldSource(RaplSource):
    """Measured RAPL energy read through `wattprint rapld`: the same zones, domains and arithmetic as
    `RaplSource`, with the raw counters coming from the daemon instead of the files."""

    name = "rapld"

    def __init__(self, socket_path: str | Path = DEFAULT_SOCKET, *, timeout_s: float = CLIENT_TIMEOUT_S) -> None:
        self.socket_path = Path(socket_path)
        self.root = self.socket_path
        self.timeout_s = timeout_s
        self._zones = []
        self._closed = False
        self._conn: socket.socket | None = None
        self._file: Any = None
        try:
            zones = self._ask(b"zones")["zones"]
            names = {str(zone["id"]): str(zone["name"]) for zone in zones}
            raws = self._ask(b"read")["energy_uj"]
            for zone, raw in zip(zones, raws, strict=True):
                zone_id = str(zone["id"])
                domain = self._domain(zone_id, names[zone_id], names)
                self._zones.append(
                    _Zone(zone_id, self.socket_path, domain, int(zone["max_energy_range_uj"]), -1, int(raw))
                )
        except PowerSourceError:
            self.close()
            raise
        except (KeyError, TypeError, ValueError) as exc:
            self.close()
            raise PowerSourceError(f"rapld at {self.socket_path} gave a malformed answer: {exc}") from None
        if not self._zones:
            self.close()
            raise PowerSourceError(f"rapld at {self.socket_path} serves no RAPL zones", reason="absent")
        self._domains = tuple(zone.domain for zone in self._zones)

    def _connect(self) -> None:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(self.timeout_s)
        try:
            conn.connect(str(self.socket_path))
        except BaseException:
            conn.close()
            raise
        self._conn, self._file = conn, conn.makefile("rb")

    def _disconnect(self) -> None:
        for handle in (self._file, self._conn):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        self._conn = self._file = None

    def _exchange(self, request: bytes) -> bytes:
        """Send one request and read its reply line; a connection the daemon dropped while it was idle (or a
        restarted daemon) is reconnected once."""
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._connect()
            assert self._conn is not None
            try:
                self._conn.sendall(request + b"\n")
                line: bytes = self._file.readline(1 << 20)
                if not line:
                    raise ConnectionError("the daemon closed the connection")
                return line
            except (ConnectionError, BrokenPipeError):
                self._disconnect()
                if not reused or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _ask(self, request: bytes) -> dict[str, Any]:
        """One request and its reply; any fault drops the connection (a late reply must not be read as the
        answer to the next request) and raises PowerSourceError."""
        try:
            line = self._exchange(request)
            reply = json.loads(line)
        except PermissionError:
            self._disconnect()
            raise PowerSourceError(
                f"cannot connect to rapld at {self.socket_path}: permission denied",
                reason="permission",
                fix="ask an admin to add this user to the group rapld serves (`wattprint rapld --group`)",
            ) from None
        except (OSError, ValueError) as exc:  # refused, gone, too slow (TimeoutError), not JSON
            self._disconnect()
            what = f"did not answer within {self.timeout_s:g} s" if isinstance(exc, TimeoutError) else exc
            raise PowerSourceError(f"rapld at {self.socket_path}: {what}") from None
        if not isinstance(reply, dict):
            self._disconnect()
            raise PowerSourceError(f"rapld at {self.socket_path} gave a malformed answer: {line[:60]!r}")
        if "error" in reply:
            if reply.get("reason") != "unreadable":  # the daemon closes the connection after any other error
                self._disconnect()
            reason = "permission" if reply.get("reason") == "permission" else "unreadable"
            raise PowerSourceError(f"rapld at {self.socket_path}: {reply['error']}", reason=reason)
        return reply

    def _read_raws(self) -> list[int]:
        raws = [int(raw) for raw in self._ask(b"read")["energy_uj"]]
        if len(raws) != len(self._zones):
            raise PowerSourceError(f"rapld at {self.socket_path} now serves {len(raws)} zones, not {len(self._zones)}")
        return raws

    def detail(self) -> str:
        return f"RAPL energy counters, served by wattprint rapld at {self.socket_path}"

    def zone_paths(self) -> dict[str, str]:
        return {zone.domain.name: f"{self.socket_path} ({zone.zone_id})" for zone in self._zones}

    def close(self) -> None:
        self._closed = True
        self._disconnect()
