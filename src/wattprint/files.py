"""Writing the user's output files: whole or not at all, and never over something that is not a regular file.

A temporary file beside the target is renamed over it, so a reader never sees half a file. The rename would
also replace a symlink, a FIFO or a device node (as root, `--md /dev/full` turned the device into a regular
file): the target is checked first with lstat, and anything but a regular file (or nothing) is refused.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from wattprint.errors import WattprintInputError

_KINDS = (
    (stat.S_ISLNK, "symbolic link"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISDIR, "directory"),
)


def check_replaceable(path: Path, field: str) -> None:
    """Refuse (WattprintInputError naming `field`) a `path` that exists and is not a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise WattprintInputError(field, f"{str(path)!r} cannot be inspected ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "special file")
        raise WattprintInputError(
            field,
            f"{str(path)!r} is a {kind}; expected a regular file or a new path "
            "(wattprint never replaces anything else)",
        )


def write_atomic(path: Path, text: str, field: str = "path", mode: int = 0o644) -> None:
    """Write `text` to `path` through a temporary file and a rename; OSError on failure, nothing half-written."""
    check_replaceable(path, field)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C too: no temporary file left behind; re-raised
        Path(tmp).unlink(missing_ok=True)
        raise
