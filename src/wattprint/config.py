"""Settings, resolved in one place.

Precedence: explicit argument (CLI flag) > environment variable WATTPRINT_* > top-level keys of
./wattprint.toml > `[tool.wattprint]` in ./pyproject.toml > defaults; the two files merge key by key.
An invalid value raises `WattprintInputError` naming where it came from (flag, variable or file) and
what is accepted.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from wattprint.errors import WattprintInputError

ENV_PREFIX = "WATTPRINT_"
# the intensity providers' names, for settings; `intensity.PROVIDERS` maps each to its class
IntensityProviderName = Literal["static", "trace", "electricitymaps", "watttime", "ukgrid"]
INTENSITY_PROVIDERS: tuple[str, ...] = get_args(IntensityProviderName)

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
    "host": ("HOST", "--host-name"),
    "virtual": ("VIRTUAL", "--virtual"),
    "instance_type": ("INSTANCE_TYPE", "--instance-type"),
    "host_vcpus": ("HOST_VCPUS", "--host-vcpus"),
}

_ACCEPTED: dict[str, str] = {
    "home": "a directory path",
    "db": "an SQLAlchemy URL such as sqlite:///runs.db or postgresql+psycopg://user@host/db",
    "interval": "seconds from 0.01 to 86400 (the kernel counts CPU time in 10 ms ticks)",
    "checkpoint": "seconds from 0.1 to 86400",
    "region": "an ISO country code (FR, FRA), a US state (US-CA) or a cloud region (gcp:europe-west9)",
    "pue": "a number from 1.0 to 10",
    "cpu_tdp_w": "watts, > 0 and at most 10000",
    "attribution": "'process' (the tracked process tree's share) or 'machine' (whole machine)",
    "intensity_provider": f"one of {', '.join(INTENSITY_PROVIDERS)}",
    "intensity_trace": "a CSV or Parquet file of intensity over time (with intensity_provider=trace)",
    "detect_cloud": "true or false (ask the cloud metadata service for the region and instance type)",
    "host": "the machine's name on records (default: the host name), e.g. for containers in a team store",
    "virtual": "'auto' (detect a virtual machine), 'guest' (charge this machine as a VM's vCPUs) or 'host' (whole)",
    "instance_type": "a cloud instance type of the bundled table, e.g. m5.large, aws:m5.large, gcp:n2-standard-4, "
    "Standard_D2s_v3",
    "host_vcpus": "the number of vCPUs of the host this virtual machine runs on, from 1 to 100000",
}


_CHOICES: dict[str, tuple[str, ...]] = {
    "attribution": ("process", "machine"),
    "intensity_provider": INTENSITY_PROVIDERS,
    "virtual": ("auto", "guest", "host"),
}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Use `load_settings()` rather than building this directly.

    A plain frozen dataclass validated by `load_settings`: it sits on the tracker's start path,
    where importing pydantic would cost more than the whole start-up budget.
    """

    home: Path = field(default_factory=lambda: Path("~/.wattprint").expanduser())
    db: str | None = None
    interval: float = 1.0
    checkpoint: float = 5.0
    region: str | None = None
    pue: float | None = None
    cpu_tdp_w: float | None = None
    attribution: Literal["process", "machine"] = "process"
    intensity_provider: IntensityProviderName = "static"
    intensity_trace: Path | None = None
    detect_cloud: bool = False
    host: str | None = None
    virtual: Literal["auto", "guest", "host"] = "auto"
    instance_type: str | None = None
    host_vcpus: float | None = None

    @property
    def db_url(self) -> str:
        """The store's SQLAlchemy URL: WATTPRINT_DB, or an SQLite file under WATTPRINT_HOME."""
        return self.db or f"sqlite:///{self.home / 'wattprint.db'}"


def _number(value: Any, minimum: float, inclusive: bool, maximum: float) -> float:
    if isinstance(value, bool):
        raise ValueError("not a number")
    number = float(value)  # ValueError/TypeError for text that is not a number
    if not math.isfinite(number) or number < minimum or (number == minimum and not inclusive) or number > maximum:
        raise ValueError("out of range")
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a boolean")


def _text(value: Any) -> str:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ValueError("empty")
    return str(value).strip()


def _parse(key: str, value: Any) -> Any:
    """One setting's value, converted and checked; ValueError/TypeError when it is not acceptable."""
    if key == "interval":
        return _number(value, 0.01, inclusive=True, maximum=86400.0)
    if key == "checkpoint":
        return _number(value, 0.1, inclusive=True, maximum=86400.0)
    if key == "cpu_tdp_w":
        return _number(value, 0.0, inclusive=False, maximum=10000.0)
    if key == "pue":
        return _number(value, 1.0, inclusive=True, maximum=10.0)
    if key in ("region", "db", "host"):
        return _text(value)
    if key == "instance_type":
        from wattprint.data.instances import find_instance  # reads its table only when the setting is used

        if find_instance(_text(value)) is None:
            raise ValueError("unknown instance type")
        return _text(value)
    if key == "host_vcpus":
        return _number(value, 1.0, inclusive=True, maximum=100000.0)
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            raise ValueError("not a choice")
        return value
    if key == "detect_cloud":
        return _flag(value)
    if key in ("home", "intensity_trace"):
        return Path(_text(value)).expanduser()
    raise KeyError(key)


def _file_settings(cwd: Path) -> dict[str, tuple[Any, str]]:
    """Settings from ./pyproject.toml ([tool.wattprint]) and ./wattprint.toml (top level), merged key by key,
    wattprint.toml's winning: setting -> (value, the file it came from)."""
    merged: dict[str, tuple[Any, str]] = {}
    for path, section in ((cwd / "pyproject.toml", "tool.wattprint"), (cwd / "wattprint.toml", None)):
        if not path.is_file():
            continue
        if sys.version_info >= (3, 11):
            import tomllib  # imported only when a settings file exists
        else:  # pragma: no cover - exercised on Python 3.10 only
            import tomli as tomllib
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise WattprintInputError(str(path), f"not readable TOML ({exc})") from None
        if section:
            for key in section.split("."):
                data = data.get(key, {}) if isinstance(data, dict) else {}
        if isinstance(data, dict):
            merged.update({key: (value, str(path)) for key, value in data.items()})
    return merged


def load_settings(cwd: Path | None = None, **overrides: Any) -> Settings:
    """Resolve settings; `overrides` are explicit values (CLI flags, API arguments), None meaning unset."""
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, (value, file_name) in _file_settings(cwd or Path.cwd()).items():
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
    values: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            values[key] = _parse(key, value)
        except (TypeError, ValueError):
            raise WattprintInputError(origin[key], f"got {value!r}; expected {_ACCEPTED[key]}") from None
    return Settings(**values)
