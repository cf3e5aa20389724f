"""Exceptions wattprint raises to its callers.

`WattprintInputError` is bad user input: the CLI turns it into one line on stderr and exit code 2.
Its message always names the field and what is accepted.
"""

from __future__ import annotations


class WattprintError(Exception):
    """Base class of wattprint's own errors."""


class WattprintInputError(WattprintError, ValueError):
    """Bad input from the user: a setting, a flag or an argument. Exit code 2 on the CLI."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class PowerSourceError(WattprintError):
    """A power source could not be opened or read (missing hardware, permissions)."""


class StoreUnavailableError(WattprintInputError):
    """The store's URL is well formed and its driver loads, but the database cannot be opened now (server down,
    disk full, read-only file system, damaged file). Commands that only read report it (exit code 2);
    `wattprint run` and the tracker run the job anyway and store the record once the store answers."""
