"""A team store: several machines write runs to one PostgreSQL database (WATTPRINT_DB).

The server is real (tests/postgres_server.py); the writers are real `wattprint run` processes, each
named as its own machine by WATTPRINT_HOST (the name records carry, as containers on one host would
set it), which is what tells machines apart in a team store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.postgres_server import create_database, postgres_url  # noqa: F401  (fixture)
from wattprint.store import open_store

pytestmark = pytest.mark.postgres

BUSY = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: sum(range(1000))\n"
WATTPRINT = [sys.executable, "-m", "wattprint.cli.main"]


@pytest.fixture
def team_db(postgres_url: str) -> str:  # noqa: F811
    return create_database(postgres_url)


def _env(db: str, host: str | None = None) -> dict[str, str]:
    """The environment of a `wattprint` process on machine `host` (this machine's own name if None)."""
    env = {k: v for k, v in os.environ.items() if k != "WATTPRINT_HOST"} | {"WATTPRINT_DB": db}
    return env | ({"WATTPRINT_HOST": host} if host is not None else {})


def _runs_list(db: str) -> list[dict]:
    result = subprocess.run(
        [*WATTPRINT, "runs", "list", "--json"], capture_output=True, text=True, timeout=60, env=_env(db)
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_concurrent_writers_on_several_hosts(team_db: str, tmp_path: Path) -> None:
    hosts = [f"node-{i}" for i in range(4)]
    procs = [
        subprocess.Popen(
            [
                *WATTPRINT,
                "run",
                "--name",
                f"team-{host}",
                "--interval",
                "0.1",
                "--checkpoint",
                "0.1",
                "-q",
                "-o",
                str(tmp_path / f"{host}.json"),
                "--",
                sys.executable,
                "-c",
                BUSY.format(s=1.5),
            ],
            env=_env(team_db, host),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host in hosts
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    listed = {r["run_id"]: r for r in _runs_list(team_db)}
    assert len(listed) == 4
    for host in hosts:
        written = json.loads((tmp_path / f"{host}.json").read_text())
        assert written["host"] == host
        # stored exactly as the writer finished it: no torn or interleaved checkpoint
        assert listed[written["run_id"]] == written
        assert written["status"] == "finished" and written["energy_kwh"]["total"] > 0
        assert written["samples"] >= 5  # it checkpointed while the others did
    assert {r["host"] for r in listed.values()} == set(hosts)
    with open_store(team_db) as store:
        assert {r.name for r in store.list(status="finished")} == {f"team-{h}" for h in hosts}


def test_a_run_on_another_host_is_seen_running_not_interrupted(team_db: str, tmp_path: Path) -> None:
    out = tmp_path / "far.json"
    proc = subprocess.Popen(
        [
            *WATTPRINT,
            "run",
            "--name",
            "far",
            "--interval",
            "0.1",
            "--checkpoint",
            "0.2",
            "-q",
            "-o",
            str(out),
            "--",
            sys.executable,
            "-c",
            BUSY.format(s=4.0),
        ],
        env=_env(team_db, "far-away"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        seen: list[dict] = []
        while time.monotonic() < deadline and not seen and proc.poll() is None:
            seen = [r for r in _runs_list(team_db) if r["name"] == "far"]
            time.sleep(0.2)
        # its pid means nothing here: another host's run is judged by its heartbeat, which is fresh
        assert seen and seen[0]["status"] == "running" and seen[0]["host"] == "far-away"
    finally:
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    (final,) = [r for r in _runs_list(team_db) if r["name"] == "far"]
    assert final == json.loads(out.read_text()) and final["status"] == "finished"
