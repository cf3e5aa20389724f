"""Shared fixtures: every test gets its own WATTPRINT_HOME and a clean WATTPRINT_* environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_file(*parts: str) -> Path:
    """A file of ../shared (reference data beside the clone); the test is skipped, saying so, where it is
    absent: a clone in any folder must pass. Nothing at run time reads ../shared."""
    path = SHARED.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} is not here (../shared lies beside the project's own clones only)")
    return path


@pytest.fixture(autouse=True)
def wattprint_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate settings: a fresh home, no inherited WATTPRINT_* variables, a neutral working dir."""
    for key in list(os.environ):
        if key.startswith("WATTPRINT_"):
            monkeypatch.delenv(key)
    home = tmp_path / "wp-home"
    monkeypatch.setenv("WATTPRINT_HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


@pytest.fixture
def wattprint_cmd() -> list[str]:
    """The CLI as a real subprocess command line, using this interpreter."""
    return [sys.executable, "-m", "wattprint.cli.main"]
