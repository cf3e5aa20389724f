"""get_provider: names, defaults and the error for an unknown name; import stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wattprint.errors import WattprintInputError
from wattprint.intensity import PROVIDERS, IntensityProvider, get_provider


@pytest.mark.parametrize("name", [None, "static", "electricitymaps", "watttime", "ukgrid", " UKGrid "])
def test_known_names(name: str | None) -> None:
    p = get_provider(name)
    assert isinstance(p, IntensityProvider)
    assert p.name == (name or "static").strip().lower()


def test_unknown_name_lists_the_accepted_ones() -> None:
    with pytest.raises(WattprintInputError, match="provider: unknown intensity provider 'co2signal'") as info:
        get_provider("co2signal")
    for name in PROVIDERS:
        assert name in str(info.value)


def test_import_pulls_no_http_or_arrow() -> None:
    code = (
        "import sys, wattprint.intensity, wattprint.intensity.static;"
        "print(sorted(m for m in ('httpx', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
