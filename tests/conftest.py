"""Shared fixtures: every test gets its own WATTPRINT_HOME and a clean WATTPRINT_* environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


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
