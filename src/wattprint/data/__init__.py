"""Bundled tables (see SOURCES.md). Read lazily, once per process."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def data_text(name: str) -> str:
    """The text of the bundled file `name` (the package is installed as files, never zipped)."""
    return (_HERE / name).read_text(encoding="utf-8")


@cache
def read_table(name: str) -> tuple[dict[str, str], ...]:
    """Rows of the bundled CSV `name` as dicts; cached because the tables never change at run time."""
    return tuple(csv.DictReader(data_text(name).splitlines()))
