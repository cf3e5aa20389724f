"""Start `wattprint ui` as a real subprocess on a free port and stop it after the test."""

from __future__ import annotations

import re
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

URL_LINE = re.compile(r"at (http://\S+/) ")


@contextmanager
def ui_process(cmd: list[str], *args: str, timeout_s: float = 30.0) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run `wattprint ui --port 0 --no-browser ARGS`; yield the process and the URL it printed."""
    proc = subprocess.Popen(
        [*cmd, "ui", "--port", "0", "--no-browser", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + timeout_s
        url = None
        assert proc.stdout is not None
        while url is None and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                line = proc.stdout.readline()
                if not line and proc.poll() is not None:
                    break
                found = URL_LINE.search(line)
                url = found.group(1) if found else None
        if url is None:
            proc.kill()
            raise AssertionError(f"wattprint ui did not start: {proc.communicate(timeout=10)}")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: uvicorn shuts down gracefully
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
