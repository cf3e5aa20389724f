"""A throwaway PostgreSQL server for tests: `postgres_url` (session fixture) and `create_database`.

The server is real: `initdb` into a temporary directory, `pg_ctl start` on 127.0.0.1 with a free port
(its unix socket stays in the temporary directory, fsync off), stopped and removed at the end.
initdb and postgres refuse to run as root, so as root they run as the `postgres` system user.

Without PostgreSQL binaries the tests skip locally, but fail when the CI environment variable is set:
CI must really test against PostgreSQL.

Use it from a test module with `from tests.postgres_server import postgres_url  # noqa: F401`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.net import free_port

PG_USER = "wattprint"
PG_DATABASE = "wattprint_test"
_START_TIMEOUT_S = 60


def _unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where PostgreSQL must be tested."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path)) or (0,)


def find_pg_bin() -> Path | None:
    """The directory holding `initdb` and `pg_ctl`: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    initdb = shutil.which("initdb")
    if initdb:
        folder = Path(os.path.realpath(initdb)).parent
        if (folder / "pg_ctl").exists():
            return folder
        if shutil.which("pg_ctl"):
            return Path(initdb).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


class _Runner:
    """Runs server commands as the current user, or as `postgres` when we are root."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.prefix: list[str] = []
        self.as_shell = False
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                _unavailable("running as root and there is no 'postgres' system user to run the server")
            os.chown(workdir, account.pw_uid, account.pw_gid)
            if shutil.which("runuser"):
                self.prefix = ["runuser", "-u", "postgres", "--"]
            elif shutil.which("su"):
                self.as_shell = True
            else:
                _unavailable("running as root and neither runuser nor su is available")

    def __call__(self, args: Sequence[str], timeout: float = _START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        command = (
            ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(args)] if self.as_shell else [*self.prefix, *args]
        )
        return subprocess.run(command, cwd=self.workdir, capture_output=True, text=True, timeout=timeout, check=False)


def _check(result: subprocess.CompletedProcess[str], what: str, log: Path | None = None) -> None:
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        if log is not None and log.exists():
            detail += "\n--- server log ---\n" + log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {detail}")


def create_database(url: str, name: str | None = None) -> str:
    """Create a fresh database on the server of `url`; return its URL (same user, host and port)."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host=base.host, port=base.port, user=base.username, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.set(database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def pg_server(max_connections: int = 50) -> Iterator[str]:
    """A real PostgreSQL server for as long as the block runs: yields a postgresql+psycopg URL to a new database
    (also used by benchmarks/bench_team_store_load.py). RuntimeError where the binaries are missing."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise RuntimeError("initdb/pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin")
    # As root the server user must reach the directory: pytest's own tmp dirs are private to root.
    parent = "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None
    workdir = Path(tempfile.mkdtemp(prefix="wattprint-pg-", dir=parent))
    data, sockets, log = workdir / "data", workdir / "sock", workdir / "server.log"
    started = False
    try:
        run = _Runner(workdir)
        _check(run(["mkdir", "-p", str(sockets)]), "mkdir")
        _check(
            run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    PG_USER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--locale=C",
                ]
            ),
            "initdb",
        )
        for _attempt in range(3):  # the free port may be taken between choosing and binding it
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
                f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections={max_connections}"
            )
            result = run(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    str(_START_TIMEOUT_S),
                    "-o",
                    options,
                    "start",
                ],
                timeout=_START_TIMEOUT_S + 10,
            )
            if result.returncode == 0:
                started = True
                break
        if not started:
            _check(result, "pg_ctl start", log)
        base = f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/postgres"
        yield create_database(base, PG_DATABASE)
    finally:
        if started:
            run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Start a real PostgreSQL server for the session; yield a postgresql+psycopg URL to a new database."""
    if find_pg_bin() is None:
        _unavailable("initdb/pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the psycopg driver is not installed (pip install 'psycopg[binary]')")
    with pg_server() as url:
        yield url
