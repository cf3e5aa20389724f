"""Writing report files safely: names from runs are sanitised, paths must stay in the chosen directory.

A run's name is user data (it may be "../../etc/x"); it only ever becomes a file name after
:func:`safe_filename`, and every output path is resolved (symlinks included) and refused when it
lands outside the chosen directory. Files are written to a temporary file in the same directory and
renamed over the target, so a reader never sees half a report and a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from wattprint.errors import WattprintInputError
from wattprint.files import check_replaceable, write_atomic

MAX_NAME_CHARS = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
PLACEHOLDERS = ("{name}", "{run_id}")


def safe_filename(text: str, default: str = "run") -> str:
    """`text` as one harmless path component: [A-Za-z0-9._-] only, no leading dots, at most 80 chars.

    Separators, '..', control characters and anything else collapse to '_', so the result can never
    name a parent directory, a hidden file or a path in another directory.
    """
    name = _UNSAFE.sub("_", text).strip("._-")
    name = re.sub(r"\.{2,}", ".", name)[:MAX_NAME_CHARS].rstrip("._-")
    return name or default


def is_inside(path: Path, directory: Path) -> bool:
    """Whether resolved `path` is strictly below resolved `directory`."""
    path, directory = path.resolve(), directory.resolve()
    return path != directory and directory in path.parents


def expand(template: str, *, name: str, run_id: str) -> str:
    """Fill {name} and {run_id} with sanitised values; other braces are kept as they are."""
    return template.replace("{name}", safe_filename(name)).replace("{run_id}", safe_filename(run_id, "id"))


def output_path(
    value: str | None,
    *,
    field: str,
    out_dir: Path | None,
    default_name: str,
    name: str,
    run_id: str,
) -> Path:
    """Where one report goes, validated.

    - `value` given, `out_dir` given: `value` is relative to `out_dir` (an absolute path must lie in it).
    - `value` given, no `out_dir`: the chosen directory is the one `value` names (current dir if none).
    - no `value`: `default_name` (already safe) in `out_dir`.
    {name} and {run_id} in `value` are replaced by sanitised values; the result must stay inside the
    chosen directory, which must exist. Raises WattprintInputError(field, ...) otherwise.
    """
    if value is None:
        if out_dir is None:
            raise ValueError("a default file name needs an output directory")
        template, base = default_name, out_dir
    else:
        if not value.strip():
            raise WattprintInputError(field, "empty path; expected a file name such as report.html")
        raw = Path(value).expanduser()
        if out_dir is not None:
            base = out_dir
            template = str(raw)
        else:
            base = raw.parent
            template = raw.name
            if any(p in str(base) for p in PLACEHOLDERS):
                raise WattprintInputError(field, f"{value!r}: {{name}} and {{run_id}} may appear only in the file name")
    base = base if str(base) else Path(".")
    if not base.is_dir():
        raise WattprintInputError(field, f"directory {str(base)!r} does not exist")
    target = base / expand(template, name=name, run_id=run_id)
    if not is_inside(target, base):
        raise WattprintInputError(
            field,
            f"{str(value if value is not None else default_name)!r} resolves to {str(target.resolve())!r}, outside the "
            f"output directory {str(base.resolve())!r}; give a file name inside it",
        )
    if not target.parent.is_dir():
        raise WattprintInputError(field, f"directory {str(target.parent)!r} does not exist")
    if target.is_dir():
        raise WattprintInputError(field, f"{str(target)!r} is a directory; expected a file path")
    check_replaceable(target, field)
    if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise WattprintInputError(field, f"{str(target)!r} is not writable")
    return target


def write_report(path: Path, text: str, *, directory: Path | None = None) -> Path:
    """Write `text` to `path` atomically (temporary file + rename); refuse a path outside `directory`."""
    if directory is not None and not is_inside(path, directory):
        raise WattprintInputError("path", f"{str(path)!r} is outside the output directory {str(directory)!r}")
    write_atomic(path, text)
    return path
