"""Optional extras: import a heavy or optional library, or say which extra installs it.

    mlflow = require("mlflow", extra="mlflow")

A missing extra is the user's set-up, not a wattprint fault: the error names the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An optional library is not installed; the message names the wattprint extra that installs it."""

    def __init__(self, module: str, extra: str, feature: str | None = None) -> None:
        self.module = module
        self.extra = extra
        what = feature or "this feature of wattprint"
        super().__init__(f"{what} needs {module!r}: pip install 'wattprint[{extra}]'")


def require(module: str, *, extra: str, feature: str | None = None) -> ModuleType:
    """Import `module`, or raise MissingExtraError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # only a missing top-level package means "extra not installed"; other import errors are real faults
        top = module.split(".")[0]
        if getattr(exc, "name", None) not in (top, module):
            raise
        raise MissingExtraError(module, extra, feature) from exc
