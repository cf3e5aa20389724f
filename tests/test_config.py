from __future__ import annotations

from pathlib import Path

import pytest

from wattprint.config import load_settings
from wattprint.errors import WattprintInputError


def test_defaults(wattprint_env: Path) -> None:
    s = load_settings()
    assert s.interval == 1.0 and s.checkpoint == 5.0
    assert s.region is None and s.pue is None and s.attribution == "process"
    assert s.home == wattprint_env
    assert s.db_url == f"sqlite:///{wattprint_env / 'wattprint.db'}"


def test_precedence_flag_over_env_over_file(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("pyproject.toml").write_text('[tool.wattprint]\ninterval = 3\nregion = "DE"\npue = 1.2\n')
    s = load_settings()
    assert (s.interval, s.region, s.pue) == (3.0, "DE", 1.2)
    monkeypatch.setenv("WATTPRINT_INTERVAL", "0.5")
    monkeypatch.setenv("WATTPRINT_REGION", "FR")
    s = load_settings()
    assert (s.interval, s.region, s.pue) == (0.5, "FR", 1.2)
    s = load_settings(interval=2, region=None)
    assert (s.interval, s.region) == (2.0, "FR")


def test_wattprint_toml_wins_over_pyproject() -> None:
    Path("pyproject.toml").write_text("[tool.wattprint]\ncheckpoint = 9\n")
    Path("wattprint.toml").write_text("checkpoint = 7\n")
    assert load_settings().checkpoint == 7.0


@pytest.mark.parametrize(
    ("kwargs", "env", "field"),
    [
        ({"interval": -1}, {}, "--interval"),
        ({"interval": float("nan")}, {}, "--interval"),
        ({}, {"WATTPRINT_INTERVAL": "fast"}, "WATTPRINT_INTERVAL"),
        ({}, {"WATTPRINT_PUE": "0.9"}, "WATTPRINT_PUE"),
        ({"checkpoint": 0}, {}, "--checkpoint"),
        ({}, {"WATTPRINT_ATTRIBUTION": "everything"}, "WATTPRINT_ATTRIBUTION"),
        ({"region": "  "}, {}, "--region"),
    ],
)
def test_bad_values_name_their_origin(
    kwargs: dict, env: dict, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(WattprintInputError) as err:
        load_settings(**kwargs)
    message = str(err.value)
    assert message.startswith(field + ":")
    assert "expected" in message and "\n" not in message


def test_unknown_key_in_file_is_rejected() -> None:
    Path("wattprint.toml").write_text("intervall = 3\n")
    with pytest.raises(WattprintInputError, match="unknown setting"):
        load_settings()


def test_broken_toml_is_rejected() -> None:
    Path("wattprint.toml").write_text("interval = = 3\n")
    with pytest.raises(WattprintInputError, match="not readable TOML"):
        load_settings()
