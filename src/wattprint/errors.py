"""Exceptions wattprint raises to its callers: one tree, one contract.

    WattprintError                      base: `message`, `field` (or None), `exit_code` for the CLI
    ├── WattprintInputError             bad input (a setting, a parameter, a flag): exit code 2
    │   └── StoreUnavailableError       the store's URL is fine but the database does not answer now
    ├── TrackerNotStartedError          a tracker method that needs start() first (also a RuntimeError)
    ├── PowerSourceError                a power source cannot be opened or read
    ├── ProviderError                   a live carbon-intensity provider gave no usable answer
    ├── MissingExtraError               an optional library is not installed (also an ImportError): exit 2
    └── schedule.execute.Cancelled      a wait before a planned start was cancelled: exit 128 + signal

Library code names the field as the Python parameter or setting it came from (`count`, `power_w`); the
CLI shows it as the flag of the command that was run (`--count`, `--power-w`), so a Python caller is never
told about flags. Failures of the libraries underneath (SQLAlchemy, httpx, NVML) are wrapped in one of
these where they cross into the caller; the tracker never raises them into a training loop at all.
"""

from __future__ import annotations


class WattprintError(Exception):
    """Base class of wattprint's own errors: `message` for people, `field` where one input is at fault,
    `exit_code` for the CLI to exit with."""

    exit_code: int = 1

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class WattprintInputError(WattprintError, ValueError):
    """Bad input from the user: a setting, a parameter or a flag. Its text is "field: what was wrong and
    what is accepted"; exit code 2 on the CLI."""

    exit_code: int = 2

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class StoreUnavailableError(WattprintInputError):
    """The store's URL is well formed and its driver loads, but the database cannot be opened now (server down,
    disk full, read-only file system, damaged file). Commands that only read report it (exit code 2);
    `wattprint run` and the tracker run the job anyway and store the record once the store answers."""


class TrackerNotStartedError(WattprintError, RuntimeError):
    """A tracker method that measures (a window, the energy so far, stop) was called before start()."""

    def __init__(self, what: str = "tracker") -> None:
        super().__init__(f"{what} is not started: call start() or enter its `with` block first")


class PowerSourceError(WattprintError):
    """A power source could not be opened or read. `reason` says why, for `wattprint doctor`: "absent" (no
    such hardware or driver here), "permission" (there, but not readable by this user), "missing-library"
    (a Python package is not installed) or "unreadable" (anything else); `fix` is the one step that would
    make it readable, where there is one."""

    def __init__(self, message: str, *, reason: str = "unreadable", fix: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.fix = fix


class MissingExtraError(WattprintError, ImportError):
    """An optional library is not installed; the message names the wattprint extra that installs it. The
    user's set-up, not a wattprint fault: exit code 2 on the CLI, as for bad input."""

    exit_code: int = 2

    def __init__(self, module: str, extra: str, feature: str | None = None) -> None:
        self.module = module
        self.extra = extra
        what = feature or "this feature of wattprint"
        super().__init__(f"{what} needs {module!r}: pip install 'wattprint[{extra}]'")


class ProviderError(WattprintError):
    """A live provider could not give an answer; `reason` is short, key-free and fit for a record."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
