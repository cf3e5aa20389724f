"""Helpers shared by CLI commands: settings, the store, output files, errors."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from wattprint.errors import WattprintInputError


def fail(field: str, message: str) -> NoReturn:
    """Bad input: one line on stderr, exit code 2."""
    raise WattprintInputError(field, message)


def split_list(text: str | None, field: str) -> list[str] | None:
    """A comma-separated option as a list (None when not given); an empty item is bad input."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        fail(field, f"{text!r} has an empty item; accepted: a comma-separated list")
    return parts


def parse_batch_sizes(text: str | None, field: str = "--batch-sizes") -> list[int] | None:
    """`--batch-sizes 1,8,32` as integers (None when not given); range checks are the library's."""
    parts = split_list(text, field)
    if parts is None:
        return None
    sizes = []
    for part in parts:
        try:
            sizes.append(int(part))
        except ValueError:
            fail(field, f"{part!r} is not an integer; accepted: integers >= 1, e.g. 1,32")
    return sizes


def check_output_path(
    path: Path, field: str = "-o", *, force: bool = False, also: Callable[[Any], bool] | None = None
) -> Path:
    """Fail early (before any work) if `path` cannot be written, or holds a file wattprint did not write and
    `force` is off (`also` recognises a format of ours that has no room for a mark)."""
    from wattprint.files import check_overwrite, check_replaceable

    path = path.expanduser()
    if path.is_dir():
        fail(field, f"{str(path)!r} is a directory; expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        fail(field, f"directory {str(parent)!r} does not exist")
    check_replaceable(path, field)
    check_overwrite(path, field, force, also)
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        fail(field, f"{str(path)!r} is not writable")
    return path


def write_atomic(path: Path, text: str, field: str = "-o") -> None:
    """Write via a temporary file and rename, so a reader never sees half a file (see wattprint.files)."""
    from wattprint.files import write_atomic as write

    try:
        write(path, text, field)
    except OSError as exc:  # a path the checks could not foresee (/proc, a full disk): one line, nothing written
        fail(field, f"cannot write {str(path)!r} ({exc.strerror or type(exc).__name__})")


def write_record(output: Path | None, record: Any) -> None:
    """The run record as JSON to `-o` FILE, when one was given. A failed write is a warning, not an error:
    the run is in the store either way, and the command's exit code stands."""
    if output is None:
        return
    try:
        write_atomic(output, json.dumps(record.to_json_dict(), indent=2) + "\n")
    except (OSError, WattprintInputError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(
            f"wattprint: warning: -o: could not write {str(output)!r} ({reason}); the record is in the store "
            f"as run {record.run_id}",
            file=sys.stderr,
        )


def print_json(document: Any) -> None:
    """One valid JSON document on stdout: a non-finite number (an overflow) is printed as null."""
    sys.stdout.write(json.dumps(finite(document), indent=2, allow_nan=False) + "\n")


def finite(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def open_configured_store(db: str | None = None) -> Any:
    """The configured store, read-only: the commands that use this only show runs, and never write."""
    from wattprint.config import load_settings
    from wattprint.store import open_store

    settings = load_settings(db=db)
    return open_store(settings.db_url, host=settings.host, read_only=True)
