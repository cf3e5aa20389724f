"""Commands load lazily: a command imports its own module, not the other commands' (issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wattprint.cli.main import COMMANDS

# prints, at exit, the command modules and heavy libraries the process loaded
PROBE = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print(json.dumps(sorted(m for m in sys.modules if m.startswith('wattprint.cli.') "
    "or m in ('rich', 'sqlalchemy', 'torch')))))\n"
    "from wattprint.cli.main import main\n"
    "main(sys.argv[1:])\n"
)


def _loaded(args: list[str], tmp_path: Path) -> set[str]:
    env = {"WATTPRINT_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_lists_every_command_without_importing_any(tmp_path: Path) -> None:
    loaded = _loaded(["--help"], tmp_path)
    command_modules = {spec.module for spec in COMMANDS.values()}
    assert not loaded & command_modules, loaded
    assert not loaded & {"rich", "sqlalchemy", "torch"}, loaded


def test_help_shows_each_command_with_its_short_help(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wattprint.cli.main", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for name, spec in COMMANDS.items():
        assert any(line.split()[:1] == [name] and spec.short_help in line for line in done.stdout.splitlines()), name


def test_run_imports_its_own_module_and_not_the_others(tmp_path: Path) -> None:
    loaded = _loaded(["run", "-q", "--", "true"], tmp_path)
    assert "wattprint.cli.run" in loaded
    others = {spec.module for name, spec in COMMANDS.items() if name not in ("run", "schedule")}
    assert not loaded & others, loaded  # schedule: run's --within/--deadline options share its planner
    assert "sqlalchemy" not in loaded and "torch" not in loaded, loaded
