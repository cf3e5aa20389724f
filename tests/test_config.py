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


def test_wattprint_toml_wins_over_pyproject_key_by_key() -> None:
    """Both files are read: wattprint.toml's value where both set a key, pyproject.toml's keys kept."""
    Path("pyproject.toml").write_text("[tool.wattprint]\ncheckpoint = 9\npue = 1.5\n")
    Path("wattprint.toml").write_text("checkpoint = 7\n")
    settings = load_settings()
    assert (settings.checkpoint, settings.pue) == (7.0, 1.5)
    Path("pyproject.toml").write_text("[tool.wattprint]\npue = 0.5\n")
    with pytest.raises(WattprintInputError, match=r"pyproject.toml: pue: got 0.5"):
        load_settings()  # each value's error names the file it came from


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
def test_bad_values_name_their_origin(kwargs: dict, env: dict, field: str, monkeypatch: pytest.MonkeyPatch) -> None:
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


@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), ("YES", True), ("off", False), ("0", False)])
def test_boolean_settings_from_the_environment(text: str, value: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTPRINT_DETECT_CLOUD", text)
    assert load_settings().detect_cloud is value


def test_bad_boolean_and_bad_types_name_their_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTPRINT_DETECT_CLOUD", "maybe")
    with pytest.raises(WattprintInputError, match=r"^WATTPRINT_DETECT_CLOUD: got 'maybe'; expected true or false"):
        load_settings()
    monkeypatch.delenv("WATTPRINT_DETECT_CLOUD")
    with pytest.raises(WattprintInputError, match=r"^--interval: got True"):
        load_settings(interval=True)
    Path("wattprint.toml").write_text("region = 7\n")
    with pytest.raises(WattprintInputError, match=r"wattprint.toml: region: got 7"):
        load_settings()


def test_settings_are_frozen_and_typed(wattprint_env: Path) -> None:
    s = load_settings(interval="0.25", pue="1.4", home=str(wattprint_env / "h"), intensity_trace="~/t.csv")
    assert s.interval == 0.25 and s.pue == 1.4 and s.home == wattprint_env / "h"
    assert s.intensity_trace == Path("~/t.csv").expanduser()
    with pytest.raises(AttributeError):
        s.interval = 3.0  # type: ignore[misc]
