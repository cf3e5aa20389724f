"""`wattprint run --prometheus-port / --pushgateway`: a real `wattprint run` subprocess, scraped over real HTTP on
loopback, and pushing to a tiny real HTTP server started here that records every request."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.net import free_port

BUSY = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: sum(range(1000))\n"


def samples(text: str) -> list[Any]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(found: list[Any], name: str, **labels: str) -> float:
    matches = [s.value for s in found if s.name == name and labels.items() <= s.labels.items()]
    assert len(matches) == 1, (name, labels, matches)
    return float(matches[0])


def test_scrape_while_the_command_runs(wattprint_cmd: list[str], tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "run.json"
    cmd = [
        *wattprint_cmd,
        "run",
        "--name",
        "scraped",
        "--interval",
        "0.2",
        "--prometheus-port",
        str(port),
        "--prometheus-linger",
        "0",
        "-o",
        str(out),
        "--",
        sys.executable,
        "-c",
        BUSY.format(s=4.0),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scrapes: list[list[Any]] = []
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline and len(scrapes) < 2:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    found = samples(response.read().decode())
            except OSError:
                time.sleep(0.1)
                continue
            if any(s.name == "wattprint_energy_joules_total" and s.value > 0 for s in found):
                scrapes.append(found)
                time.sleep(1.0)
            else:
                time.sleep(0.1)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert f"metrics at http://127.0.0.1:{port}/metrics" in stderr
    assert len(scrapes) == 2, "never scraped a running tracker twice"
    record = json.loads(out.read_text())
    first, second = scrapes
    cpu = {"component": "cpu", "run_name": "scraped", "run_id": record["run_id"]}
    cpu_j1, cpu_j2 = (
        sum(s.value for s in found if s.name == "wattprint_energy_joules_total" and cpu.items() <= s.labels.items())
        for found in (first, second)
    )
    assert 0 < cpu_j1 < cpu_j2 <= record["energy_kwh"]["cpu"] * 3.6e6 * (1 + 1e-9)
    method = record["methods"]["cpu"]["method"]
    assert all(
        s.labels["method"] == method
        for s in second
        if s.name == "wattprint_power_watts" and s.labels["component"] == "cpu"
    )
    assert value(second, "wattprint_energy_kwh", component="total") <= record["energy_kwh"]["total"] * (1 + 1e-9)
    assert sum(s.value for s in second if s.name == "wattprint_power_watts") > 0
    assert value(second, "wattprint_run_info", run_id=record["run_id"], status="running") == 1.0
    with pytest.raises(OSError):  # the server is gone with the run
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_short_jobs_final_values_are_served_for_the_grace_period(wattprint_cmd: list[str], tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "run.json"
    cmd = [*wattprint_cmd, "run", "--prometheus-port", str(port), "--prometheus-linger", "4", "-o", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--", sys.executable, "-c", BUSY.format(s=0.3)], stderr=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # the job has ended and its record is written once this line is out
            lines.append(line)
            if "serving the final metrics for 4 s more" in line:
                break
        ended = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            found = samples(response.read().decode())
        rest, _ = proc.communicate(timeout=60)
        waited = time.monotonic() - ended
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + rest
    record = json.loads(out.read_text())
    assert value(found, "wattprint_run_info", run_id=record["run_id"], status="finished") == 1.0
    assert value(found, "wattprint_energy_kwh", component="total") == pytest.approx(record["energy_kwh"]["total"])
    assert value(found, "wattprint_co2e_kg", kind="total") == pytest.approx(record["co2e_kg"]["total"])
    assert 2.0 < waited < 30.0  # it served for the grace period, then exited
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_port_in_use_fails_before_the_command_starts(wattprint_cmd: list[str], tmp_path: Path) -> None:
    marker = tmp_path / "started"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                *wattprint_cmd,
                "run",
                "--prometheus-port",
                str(port),
                "--",
                sys.executable,
                "-c",
                f"open({str(marker)!r}, 'w').close()",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(
        rf"wattprint: error: --prometheus-port: cannot listen on 127.0.0.1:{port}", lines[0]
    ), result.stderr
    assert not marker.exists()


def test_bad_pushgateway_url_is_bad_input(wattprint_cmd: list[str]) -> None:
    result = subprocess.run(
        [*wattprint_cmd, "run", "--pushgateway", "pushgw:9091", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stderr.startswith("wattprint: error: --pushgateway: ")


class Recorder(BaseHTTPRequestHandler):
    """A stand-in Pushgateway: stores method, path and body of every request, answers 200."""

    requests: list[tuple[str, str, str]] = []

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        type(self).requests.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    do_PUT = do_POST = _record

    def log_message(self, *args: Any) -> None:
        pass


def test_push_to_a_pushgateway(wattprint_cmd: list[str], tmp_path: Path) -> None:
    Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tmp_path / "run.json"
    try:
        result = subprocess.run(
            [
                *wattprint_cmd,
                "run",
                "--name",
                "pushed",
                "--interval",
                "0.2",
                "--checkpoint",
                "0.5",
                "--pushgateway",
                f"http://127.0.0.1:{server.server_port}",
                "-o",
                str(out),
                "--",
                sys.executable,
                "-c",
                BUSY.format(s=1.5),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    pushes = Recorder.requests
    assert len(pushes) >= 2  # periodic pushes and a final one
    assert all(
        method == "PUT" and path == f"/metrics/job/wattprint/run_id/{record['run_id']}" for method, path, _ in pushes
    )
    last = samples(pushes[-1][2])
    assert value(last, "wattprint_run_info", status="finished") == 1.0
    assert value(last, "wattprint_energy_kwh", component="total") == pytest.approx(record["energy_kwh"]["total"])
    assert value(last, "wattprint_co2e_kg", kind="total") == pytest.approx(record["co2e_kg"]["total"])
