"""Helpers shared by CLI commands: settings, the store, output files, errors."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from wattprint.errors import WattprintInputError


def fail(field: str, message: str) -> NoReturn:
    """Bad input: one line on stderr, exit code 2."""
    raise WattprintInputError(field, message)


def check_output_path(path: Path, field: str = "-o") -> Path:
    """Fail early (before any work) if `path` cannot be written."""
    path = path.expanduser()
    if path.is_dir():
        fail(field, f"{str(path)!r} is a directory; expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        fail(field, f"directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        fail(field, f"{str(path)!r} is not writable")
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def open_configured_store(db: str | None = None) -> Any:
    from wattprint.config import load_settings
    from wattprint.store import open_store

    settings = load_settings(db=db)
    return open_store(settings.db_url, host=settings.host)
