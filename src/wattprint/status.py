"""A run's statuses, apart from the record model: the CLI's option help needs them, not pydantic."""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal["running", "finished", "failed", "interrupted"]
STATUSES: tuple[str, ...] = get_args(Status)
