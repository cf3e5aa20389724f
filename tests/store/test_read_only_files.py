"""The views on a store that cannot be written (a read-only file in a read-only folder, as on a read-only
mount or another user's store), and `run` with a read-only home: real CLI processes, real permissions.

As root, permissions bind only once the capabilities that bypass them are dropped: the commands then run
under `setpriv` without them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import wattprint
from wattprint.store import open_store

CAPS = "-dac_override,-dac_read_search,-fowner"


def _unprivileged_prefix() -> list[str]:
    """What makes permissions bind for a command of this process: nothing, or setpriv for root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    prefix = [setpriv, f"--bounding-set={CAPS}", f"--inh-caps={CAPS}"] if setpriv else []
    if not prefix or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root and the capabilities that bypass file permissions cannot be dropped here")
    return prefix


def _cli(prefix: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "wattprint.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def read_only_home(wattprint_env: Path) -> Iterator[Path]:
    """A home whose store holds a finished run and a run whose process is gone, then made read-only."""
    with wattprint.track("done", interval=0.05):
        pass
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        (done,) = store.list()
        gone = done.model_copy(
            update={
                "run_id": "gone0001",
                "name": "gone",
                "status": "running",
                "ended_at": None,
                "pid": 2**22 + 7,
                "pid_create_time": 1.0,
                "started_at": datetime.now(timezone.utc) - timedelta(minutes=5),
            }
        )
        store.save(gone, checkpoint_s=5.0)
    for path in wattprint_env.iterdir():  # the WAL checkpointed into the file: nothing beside it
        if path.name != "wattprint.db":
            path.unlink()
    (wattprint_env / "wattprint.db").chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    wattprint_env.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        yield wattprint_env
    finally:
        wattprint_env.chmod(stat.S_IRWXU)


def test_views_read_a_read_only_store_and_write_nothing(read_only_home: Path, tmp_path: Path) -> None:
    prefix = _unprivileged_prefix()
    before = _digest(read_only_home)
    listed = _cli(prefix, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = {r["name"]: r for r in json.loads(listed.stdout)}
    assert runs["done"]["status"] == "finished"
    assert runs["gone"]["status"] == "interrupted"  # judged in memory, not stored so
    shown = _cli(prefix, "runs", "show", "gone0001", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "interrupted", shown.stderr
    out = tmp_path / "report.md"
    reported = _cli(prefix, "report", runs["done"]["run_id"], "--md", str(out))
    assert reported.returncode == 0, reported.stderr
    assert "| done |" in out.read_text()  # the run's row, by its name
    assert _digest(read_only_home) == before  # not a byte written, no -wal or -shm file created


def test_a_view_of_a_store_never_written_in_a_read_only_folder_is_empty(wattprint_env: Path, tmp_path: Path) -> None:
    prefix = _unprivileged_prefix()
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        env_home = folder / "home"
        listed = subprocess.run(
            [*prefix, sys.executable, "-m", "wattprint.cli.main", "runs", "list", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ, WATTPRINT_HOME=str(env_home)),
        )
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
        assert not env_home.exists()
    finally:
        folder.chmod(stat.S_IRWXU)


def test_run_with_a_read_only_home_runs_the_job_and_keeps_its_exit_code(read_only_home: Path) -> None:
    prefix = _unprivileged_prefix()
    done = _cli(prefix, "run", "-q", "--", sys.executable, "-c", "import sys; sys.exit(3)")
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot write the store at sqlite:///{read_only_home / 'wattprint.db'} now" in done.stderr
    assert "readonly database" in done.stderr
