"""Reports and the dashboard load matplotlib, Jinja2, Starlette and uvicorn only when used."""

from __future__ import annotations

import subprocess
import sys

from tests.report.records import fixture_records, save_records

HEAVY = ("matplotlib", "jinja2", "starlette", "uvicorn")


def test_importing_the_modules_loads_no_optional_library() -> None:
    code = (
        "import sys, wattprint, wattprint.report, wattprint.ui.app, wattprint.ui.server, "
        "wattprint.cli.report, wattprint.cli.ui\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_extra_is_one_line_naming_it(tmp_path: object) -> None:
    save_records(fixture_records())
    code = (
        "import sys; sys.modules['jinja2'] = None\n"
        "from wattprint.cli.main import main\n"
        "main(['report', 'aaaa', '--html', 'r.html'])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "wattprint: error: --html: HTML reports needs 'jinja2': pip install 'wattprint[report]'\n"
    # the Markdown table needs no extra
    code = code.replace("'--html', 'r.html'", "'--md', 'r.md'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode == 0
