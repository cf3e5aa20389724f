"""`wattprint rapld` for real: the daemon serves a fake powercap tree over a Unix socket, trackers read it as
`nobody` (when the tests run as root), and a dead, slow or refusing daemon falls back to the model, flagged."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.measure.test_rapl import PKG_RANGE, build_tree, set_energy
from tests.measure.unprivileged import as_unprivileged
from wattprint.errors import PowerSourceError
from wattprint.measure.detect import detect_sources
from wattprint.measure.doctor import diagnose
from wattprint.measure.monitor import EnergyMonitor
from wattprint.measure.rapl import RaplSource
from wattprint.measure.rapld import SOCKET_MODE, RapldServer, RapldSource

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="permissions bind only for a user other than root")
GROUP = 4242  # the group the daemon serves; needs no entry in /etc/group


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory an unprivileged user can traverse (pytest's tmp_path is private to its owner)."""
    base = Path(tempfile.mkdtemp(prefix="wattprint-rapld-"))
    try:
        base.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tree(shared: Path) -> Path:
    """A powercap tree whose counters only root may read, as on Linux >= 5.10."""
    root = build_tree(shared / "sys")
    for energy in root.glob("*/energy_uj"):
        energy.resolve().chmod(0o400)
    return root


def serve(tree: Path, socket_path: Path, gid: int = GROUP, min_read_interval_s: float = 0.0) -> RapldServer:
    """A daemon in a thread; counters read afresh at every request unless `min_read_interval_s` says otherwise."""
    gid = gid if os.geteuid() == 0 else os.getegid()
    server = RapldServer(socket_path, gid, tree, min_read_interval_s=min_read_interval_s)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def stop(server: RapldServer) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def daemon(tree: Path, shared: Path) -> Iterator[tuple[RapldServer, Path]]:
    socket_path = shared / "run" / "rapld.sock"
    server = serve(tree, socket_path)
    try:
        yield server, socket_path
    finally:
        stop(server)


def ask(socket_path: Path, payload: bytes, replies: int | None = None) -> list[dict]:
    """The daemon's replies to `payload`: `replies` of them, or all it sends until it hangs up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(str(socket_path))
        conn.sendall(payload)
        data = b""
        while (replies is None or data.count(b"\n") < replies) and (chunk := conn.recv(65536)):
            data += chunk
        return [json.loads(line) for line in data.splitlines()]


def test_the_socket_is_root_and_the_groups_only(daemon: tuple[RapldServer, Path]) -> None:
    _, socket_path = daemon
    info = socket_path.stat()
    assert info.st_mode & 0o777 == SOCKET_MODE == 0o660
    assert info.st_uid == os.geteuid()
    assert info.st_gid == (GROUP if os.geteuid() == 0 else os.getegid())


def test_same_domains_and_joules_as_reading_the_files(daemon: tuple[RapldServer, Path], tree: Path) -> None:
    _, socket_path = daemon
    direct, served = RaplSource(tree), RapldSource(socket_path, timeout_s=5)
    try:
        assert served.name == "rapld"
        assert served.domains() == direct.domains()
        set_energy(tree, "intel-rapl:0", 1_000_000 + 7_500_000)
        set_energy(tree, "intel-rapl:1", 1_000)  # wrapped: from 2 J to the top of the range, then to 1 mJ
        first = (direct.read().energy_j, served.read().energy_j)
        assert first[0] == first[1]
        assert first[1]["rapl:package-0"] == pytest.approx(7.5)
        assert first[1]["rapl:package-1"] == pytest.approx((PKG_RANGE - 2_000_000 + 1_000) / 1e6)
    finally:
        direct.close()
        served.close()
        served.close()  # twice is fine


def _tracker_in_the_group(tree: Path, socket_path: Path, to_parent: int, from_parent: int) -> str:
    """As `nobody` in GROUP: the tracker's own choice of sources, then two readings around a change."""
    choice = detect_sources(powercap_root=str(tree), rapld_socket=str(socket_path))
    (source,) = [s for s in choice.sources if s.name == "rapld"]
    source.read()
    os.write(to_parent, b"r")
    os.read(from_parent, 1)  # the parent has moved the counters
    energy = source.read().energy_j
    for other in choice.sources:
        other.close()
    return json.dumps({"measurement": choice.measurement, "cpu": choice.methods["cpu"], "energy_j": energy})


@ROOT_ONLY
def test_an_unprivileged_tracker_measures_what_root_measures(daemon: tuple[RapldServer, Path], tree: Path) -> None:
    _, socket_path = daemon
    direct = RaplSource(tree)
    direct.read()
    to_parent, child_out = os.pipe()
    parent_in, from_parent = os.pipe()

    def parent_side() -> None:
        os.read(to_parent, 1)
        set_energy(tree, "intel-rapl:0", 1_000_000 + 3_250_000)
        set_energy(tree, "intel-rapl:0/intel-rapl:0:1", 200_000 + 900_000)
        os.write(from_parent, b"g")

    helper = threading.Thread(target=parent_side, daemon=True)
    helper.start()
    try:
        outcome = json.loads(
            as_unprivileged(lambda: _tracker_in_the_group(tree, socket_path, child_out, parent_in), (GROUP,))
        )
    finally:
        for fd in (to_parent, child_out, parent_in, from_parent):
            os.close(fd)
    helper.join(5)
    assert outcome["measurement"]["cpu"] == outcome["measurement"]["ram"] == "rapld"
    assert outcome["cpu"]["method"] == "measured" and str(socket_path) in outcome["cpu"]["detail"]
    assert outcome["energy_j"] == direct.read().energy_j  # the same counter reads, the same joules
    assert outcome["energy_j"]["rapl:package-0"] == pytest.approx(3.25)
    direct.close()


def _open_source(socket_path: Path) -> str:
    try:
        RapldSource(socket_path, timeout_s=5).close()
        return "opened"
    except PowerSourceError as exc:
        return f"{exc.reason}: {exc} (fix: {exc.fix})"


@ROOT_ONLY
def test_a_user_outside_the_group_gets_nothing_and_the_daemon_keeps_serving(
    daemon: tuple[RapldServer, Path], tree: Path
) -> None:
    _, socket_path = daemon
    outcome = as_unprivileged(lambda: _open_source(socket_path))
    assert outcome.startswith("permission: ") and "permission denied" in outcome
    assert "add this user to the group" in outcome
    # the mode loosened by mistake: the daemon's own check of the peer still refuses
    socket_path.chmod(0o666)
    outcome = as_unprivileged(lambda: _open_source(socket_path))
    assert outcome.startswith("permission: ") and "not allowed" in outcome
    assert as_unprivileged(lambda: _open_source(socket_path), (GROUP,)) == "opened"
    assert _open_source(socket_path) == "opened"


def test_malformed_requests_get_an_error_and_the_daemon_keeps_serving(daemon: tuple[RapldServer, Path]) -> None:
    _, socket_path = daemon
    for payload in (b"hello\n", b"\xff\xfe\n", b"r" * 5000, b"zones\nwrite 0\n"):
        reply = ask(socket_path, payload)[-1]  # then the daemon hangs up
        assert reply["reason"] == "request" and "accepted: 'zones' or 'read'" in reply["error"]
    zones, read = ask(socket_path, b"zones\nread\n", replies=2)
    assert [zone["name"] for zone in zones["zones"]] == ["package-0", "core", "dram", "package-1", "core", "dram"]
    assert read["energy_uj"] == [1_000_000, 500_000, 200_000, 2_000_000, 700_000, 300_000]


def test_a_client_that_hangs_up_or_never_asks_does_not_stop_the_others(daemon: tuple[RapldServer, Path]) -> None:
    _, socket_path = daemon
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(socket_path))
    rude = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    rude.connect(str(socket_path))
    rude.sendall(b"re")
    rude.close()
    source = RapldSource(socket_path, timeout_s=5)
    try:
        assert source.read().energy_j["rapl:package-0"] == 0.0
    finally:
        source.close()
        silent.close()


def test_a_vanished_counter_is_said_and_the_next_read_resumes(daemon: tuple[RapldServer, Path], tree: Path) -> None:
    _, socket_path = daemon
    source = RapldSource(socket_path, timeout_s=5)
    energy = (tree / "intel-rapl:1" / "energy_uj").resolve()
    try:
        energy.rename(energy.with_name("gone"))
        server, _ = daemon
        (zone,) = [z for z in server._rapl._zones if z.zone_id == "intel-rapl:1"]
        pipe_r, pipe_w = os.pipe()  # the kept descriptor still reads the renamed file: make it fail, as an
        os.dup2(pipe_r, zone.fd)  # unplugged device's would (pread on a pipe: ESPIPE), then reopen by path
        os.close(pipe_r)
        os.close(pipe_w)
        with pytest.raises(PowerSourceError, match="counter read failed"):
            source.read()
        energy.with_name("gone").rename(energy)
        set_energy(tree, "intel-rapl:1", 2_000_000 + 4_000_000)
        assert source.read().energy_j["rapl:package-1"] == pytest.approx(4.0)
    finally:
        source.close()


def test_a_dead_daemon_leaves_the_model_and_says_so(tree: Path, shared: Path) -> None:
    socket_path = shared / "dead.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))  # a socket file nobody listens on: what a killed daemon leaves
    listener.close()
    outcome = as_unprivileged(lambda: _choice_as_json(tree, socket_path))
    doc = json.loads(outcome)
    assert doc["measurement"]["cpu"] == "model" and doc["cpu"]["method"] == "estimated"
    assert f"rapld at {socket_path}" in doc["cpu"]["detail"]
    assert f"rapld at {socket_path}" in doc["doctor"]["reason"]


def _choice_as_json(tree: Path, socket_path: Path) -> str:
    choice = detect_sources(powercap_root=str(tree), rapld_socket=str(socket_path))
    doc = diagnose(choice)
    for source in choice.sources:
        source.close()
    return json.dumps(
        {"measurement": choice.measurement, "cpu": choice.methods["cpu"], "doctor": doc["components"]["cpu"]}
    )


def test_a_slow_daemon_counts_as_not_answering(shared: Path) -> None:
    socket_path = shared / "slow.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(4)  # connections are queued, never answered
    try:
        started = time.monotonic()
        with pytest.raises(PowerSourceError, match=r"did not answer within 0\.2 s"):
            RapldSource(socket_path, timeout_s=0.2)
        assert time.monotonic() - started < 2
    finally:
        listener.close()


def test_no_daemon_socket_keeps_the_direct_error_and_names_rapld_in_the_fix(tree: Path, shared: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("permissions bind only for a user other than root")
    doc = json.loads(as_unprivileged(lambda: _choice_as_json(tree, shared / "absent.sock")))
    assert doc["measurement"]["cpu"] == "model"
    assert "wattprint rapld --group" in doc["doctor"]["fix"] and "chmod o+r" in doc["doctor"]["fix"]


def test_a_daemon_that_dies_mid_run_is_flagged_and_its_return_resumes_the_count(tree: Path, shared: Path) -> None:
    socket_path = shared / "run" / "rapld.sock"
    server = serve(tree, socket_path)
    source = RapldSource(socket_path, timeout_s=5)
    monitor = EnergyMonitor([source], interval_s=60)
    try:
        set_energy(tree, "intel-rapl:0", 1_000_000 + 2_000_000)
        monitor.sample()
        stop(server)
        monitor.sample()  # never raises: the domains are marked degraded
        assert "rapl:package-0" in monitor.degraded
        set_energy(tree, "intel-rapl:0", 1_000_000 + 5_000_000)
        server = serve(tree, socket_path)  # restarted: the raw counters carry on, nothing is lost
        monitor.sample()
        assert monitor.totals().machine_j["rapl:package-0"] == pytest.approx(5.0)
    finally:
        stop(server)
        monitor.close()


def test_a_second_daemon_on_a_live_socket_refuses_and_a_stale_one_is_replaced(
    daemon: tuple[RapldServer, Path], tree: Path, shared: Path
) -> None:
    _, socket_path = daemon
    with pytest.raises(PowerSourceError, match="already answers"):
        RapldServer(socket_path, os.getegid(), tree)
    stale = shared / "stale.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(stale))
    listener.close()
    server = serve(tree, stale)
    try:
        assert _open_source(stale) == "opened"
    finally:
        stop(server)
    assert not stale.exists()  # removed on close


def _wattprint(*args: str) -> list[str]:
    return [sys.executable, "-c", "from wattprint.cli.main import main; main()", *args]


def test_the_command_serves_until_sigterm_and_removes_its_socket(tree: Path, shared: Path) -> None:
    socket_path = shared / "cli" / "rapld.sock"
    group = str(GROUP if os.geteuid() == 0 else os.getegid())
    proc = subprocess.Popen(
        _wattprint("rapld", "--group", group, "--socket", str(socket_path), "--powercap-root", str(tree)),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while _open_source(socket_path) != "opened":
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stderr is not None
        assert f"serving 6 RAPL zone(s) on {socket_path} to group {group}" in proc.stderr.read()
        assert not socket_path.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_unknown_group_is_bad_input(tree: Path, shared: Path) -> None:
    done = subprocess.run(
        _wattprint("rapld", "--group", "no-such-group-here", "--socket", str(shared / "x.sock")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "wattprint: error: --group: no group named 'no-such-group-here' on this machine; "
        "accepted: a group name or a numeric gid"
    ]
    assert not (shared / "x.sock").exists()


def test_counters_are_read_at_most_ten_times_a_second_for_everyone(tree: Path, shared: Path) -> None:
    server = serve(tree, shared / "throttled.sock", min_read_interval_s=0.5)
    try:
        first, *_ = ask(shared / "throttled.sock", b"read\n", replies=1)
        set_energy(tree, "intel-rapl:0", 1_000_000 + 5_000_000)
        again, *_ = ask(shared / "throttled.sock", b"read\n", replies=1)
        assert again == first  # within the interval: the last values, whoever asks
        time.sleep(0.6)
        (later,) = ask(shared / "throttled.sock", b"read\n", replies=1)
        assert later["energy_uj"][0] == 6_000_000
    finally:
        stop(server)


def test_one_user_gets_a_few_connections_not_every_slot(daemon: tuple[RapldServer, Path]) -> None:
    from wattprint.measure.rapld import MAX_PER_USER

    server, socket_path = daemon
    me = os.geteuid()
    if me == 0:
        pytest.skip("root is not limited (it can read the counters itself)")
    held = []
    try:
        for _ in range(MAX_PER_USER):
            held.append(RapldSource(socket_path, timeout_s=5))
        with pytest.raises(PowerSourceError, match=f"already has {MAX_PER_USER} connections"):
            RapldSource(socket_path, timeout_s=5)
    finally:
        for source in held:
            source.close()
    RapldSource(socket_path, timeout_s=5).close()  # slots come back when connections close


def _hold_connections(socket_path: Path, count: int) -> str:
    """As `nobody` in GROUP: open `count` sources at once; what the last attempt said."""
    held = []
    try:
        for _ in range(count):
            held.append(RapldSource(socket_path, timeout_s=5))
        return "all opened"
    except PowerSourceError as exc:
        return f"{len(held)} opened; then {exc}"
    finally:
        for source in held:
            source.close()


@ROOT_ONLY
def test_one_member_cannot_take_every_slot(daemon: tuple[RapldServer, Path]) -> None:
    from wattprint.measure.rapld import MAX_PER_USER

    _, socket_path = daemon
    outcome = as_unprivileged(lambda: _hold_connections(socket_path, MAX_PER_USER + 1), (GROUP,))
    assert outcome.startswith(f"{MAX_PER_USER} opened; then") and "connections open" in outcome
    assert _open_source(socket_path) == "opened"  # others are still served


def test_a_path_that_is_not_a_socket_is_never_replaced(tree: Path, shared: Path) -> None:
    precious = shared / "precious.txt"
    precious.write_text("keep me\n")
    with pytest.raises(PowerSourceError, match="exists and is not a socket"):
        RapldServer(precious, os.getegid(), tree)
    assert precious.read_text() == "keep me\n"


def test_a_directory_others_may_write_is_refused(tree: Path, shared: Path) -> None:
    open_dir = shared / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(PowerSourceError, match="writable by no one else"):
        RapldServer(open_dir / "rapld.sock", os.getegid(), tree)
    assert list(open_dir.iterdir()) == []


def test_a_socket_it_cannot_create_is_one_line(tree: Path, shared: Path) -> None:
    blocked = shared / "file-not-dir"
    blocked.write_text("")
    done = subprocess.run(
        _wattprint("rapld", "--group", str(os.getegid()), "--socket", str(blocked / "rapld.sock"),
                   "--powercap-root", str(tree)),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"wattprint: error: --socket: cannot serve on {blocked / 'rapld.sock'}")
