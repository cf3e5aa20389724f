"""Optional extras: import a heavy or optional library, or say which extra installs it.

    mlflow = require("mlflow", extra="mlflow")

A missing extra is the user's set-up, not a wattprint fault: the error names the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from wattprint.errors import MissingExtraError as MissingExtraError  # where callers have always found it


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
