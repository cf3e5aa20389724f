"""`wattprint ui` as a real server process: loopback by default, clear errors, graceful stop."""

from __future__ import annotations

import signal
import socket
import subprocess

import httpx
import pytest

from tests.report.records import fixture_records, save_records
from tests.ui.server import ui_process


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serves_on_loopback_and_stops_cleanly(wattprint_cmd: list[str], stop: int) -> None:
    save_records(fixture_records())
    with ui_process(wattprint_cmd) as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "mlp_small" in page.text
        assert len(httpx.get(url + "api/runs", timeout=10).json()["runs"]) == 3
        refused = httpx.get(url, headers={"host": "attacker.example"}, timeout=10)
        assert refused.status_code == 400
        proc.send_signal(stop)
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        errors = proc.stderr.read()
        assert "warning" not in errors and "Traceback" not in errors


def test_port_in_use_exits_2_with_one_line(wattprint_cmd: list[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*wattprint_cmd, "ui", "--port", str(port), "--no-browser"], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 2
    assert result.stderr == (
        f"wattprint: error: --port: port {port} on 127.0.0.1 is already in use; choose another (0 picks a free one)\n"
    )


def test_bad_port_and_host_exit_2(wattprint_cmd: list[str]) -> None:
    for args, field in ((["--port", "70000"], "--port"), (["--host", "no-such-host.invalid"], "--host")):
        result = subprocess.run(
            [*wattprint_cmd, "ui", "--no-browser", *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2 and result.stderr.startswith(f"wattprint: error: {field}:"), result.stderr


def test_non_loopback_host_is_explicit_and_warned(wattprint_cmd: list[str]) -> None:
    with ui_process(wattprint_cmd, "--host", "0.0.0.0") as (proc, url):
        assert url.startswith("http://0.0.0.0:")
        port = url.rsplit(":", 1)[1].rstrip("/")
        # served to other names too: the user asked for the network
        page = httpx.get(f"http://127.0.0.1:{port}/", headers={"host": "myserver.lan"}, timeout=10)
        assert page.status_code == 200
        proc.terminate()
        proc.wait(timeout=15)
        assert proc.stderr is not None
        assert "warning: listening on 0.0.0.0, reachable from other machines" in proc.stderr.read()
