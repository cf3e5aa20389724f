"""Settings, resolved in one place.

Precedence: explicit argument (CLI flag) > environment variable WATTPRINT_* > `[tool.wattprint]`
in ./pyproject.toml or top-level keys of ./wattprint.toml > defaults. An invalid value raises
`WattprintInputError` naming where it came from (flag, variable or file) and what is accepted.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wattprint.errors import WattprintInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ENV_PREFIX = "WATTPRINT_"

# setting key -> (environment variable suffix, CLI flag), both part of the public contract
_NAMES: dict[str, tuple[str, str]] = {
    "home": ("HOME", "--home"),
    "db": ("DB", "--db"),
    "interval": ("INTERVAL", "--interval"),
    "checkpoint": ("CHECKPOINT", "--checkpoint"),
    "region": ("REGION", "--region"),
    "pue": ("PUE", "--pue"),
    "cpu_tdp_w": ("CPU_TDP_W", "--cpu-tdp-w"),
    "attribution": ("ATTRIBUTION", "--attribution"),
    "intensity_provider": ("INTENSITY_PROVIDER", "--intensity-provider"),
    "intensity_trace": ("INTENSITY_TRACE", "--intensity-trace"),
    "detect_cloud": ("DETECT_CLOUD", "--detect-cloud"),
}

_ACCEPTED: dict[str, str] = {
    "home": "a directory path",
    "db": "an SQLAlchemy URL such as sqlite:///runs.db or postgresql+psycopg://user@host/db",
    "interval": "a finite number of seconds > 0",
    "checkpoint": "a finite number of seconds > 0",
    "region": "an ISO country code (FR, FRA), a US state (US-CA) or a cloud region (gcp:europe-west9)",
    "pue": "a finite number >= 1.0",
    "cpu_tdp_w": "a finite number of watts > 0",
    "attribution": "'process' (the tracked process tree's share) or 'machine' (whole machine)",
    "intensity_provider": "one of static, trace, electricitymaps, watttime, ukgrid",
    "intensity_trace": "a CSV or Parquet file of intensity over time (with intensity_provider=trace)",
    "detect_cloud": "true or false (ask the cloud metadata service for the region)",
}


class Settings(BaseModel):
    """Resolved settings. Use `load_settings()` rather than building this directly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Field(default_factory=lambda: Path("~/.wattprint").expanduser())
    db: str | None = None
    interval: float = 1.0
    checkpoint: float = 5.0
    region: str | None = None
    pue: float | None = None
    cpu_tdp_w: float | None = None
    attribution: Literal["process", "machine"] = "process"
    intensity_provider: Literal["static", "trace", "electricitymaps", "watttime", "ukgrid"] = "static"
    intensity_trace: Path | None = None
    detect_cloud: bool = False

    @field_validator("interval", "checkpoint", "cpu_tdp_w")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise ValueError("must be > 0")
        return value

    @field_validator("pue")
    @classmethod
    def _pue(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value < 1.0):
            raise ValueError("must be >= 1.0")
        return value

    @field_validator("region", "db")
    @classmethod
    def _non_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value.strip() if value is not None else None

    @property
    def db_url(self) -> str:
        """The store's SQLAlchemy URL: WATTPRINT_DB, or an SQLite file under WATTPRINT_HOME."""
        return self.db or f"sqlite:///{self.home / 'wattprint.db'}"


def _file_settings(cwd: Path) -> tuple[dict[str, Any], str]:
    """Settings from ./wattprint.toml (top level) or ./pyproject.toml ([tool.wattprint])."""
    for path, section in ((cwd / "wattprint.toml", None), (cwd / "pyproject.toml", "tool.wattprint")):
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise WattprintInputError(str(path), f"not readable TOML ({exc})") from None
        if section:
            for key in section.split("."):
                data = data.get(key, {}) if isinstance(data, dict) else {}
        if data:
            return dict(data), str(path)
    return {}, ""


def load_settings(cwd: Path | None = None, **overrides: Any) -> Settings:
    """Resolve settings; `overrides` are explicit values (CLI flags, API arguments), None meaning unset."""
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}
    file_values, file_name = _file_settings(cwd or Path.cwd())
    for key, value in file_values.items():
        if key not in _NAMES:
            raise WattprintInputError(f"{file_name}: {key}", f"unknown setting; accepted: {', '.join(_NAMES)}")
        raw[key], origin[key] = value, f"{file_name}: {key}"
    for key, (suffix, _flag) in _NAMES.items():
        env_value = os.environ.get(ENV_PREFIX + suffix)
        if env_value is not None and env_value != "":
            raw[key], origin[key] = env_value, ENV_PREFIX + suffix
    for key, value in overrides.items():
        if key not in _NAMES:
            raise TypeError(f"unknown setting {key!r}")
        if value is not None:
            raw[key], origin[key] = value, _NAMES[key][1]
    if "home" in raw:
        raw["home"] = Path(str(raw["home"])).expanduser()
    try:
        return Settings(**raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "settings"
        label = origin.get(key, key)
        expected = _ACCEPTED.get(key, "a valid value")
        raise WattprintInputError(label, f"got {raw.get(key)!r}; expected {expected}") from None
