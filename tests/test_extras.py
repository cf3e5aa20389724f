"""The optional-extra guard: a missing library names the extra; a broken one is not hidden."""

from __future__ import annotations

import sys

import pytest

from wattprint._extras import MissingExtraError, require


def test_present_module_is_returned() -> None:
    assert require("json", extra="none").dumps([1]) == "[1]"


def test_missing_module_names_the_extra() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'wattprint\[lightning\]'"):
        require("wattprint_no_such_module_xyz", extra="lightning", feature="the Lightning callback")


def test_import_error_inside_an_installed_module_is_not_hidden(tmp_path, monkeypatch) -> None:
    (tmp_path / "wp_broken_mod.py").write_text("import wattprint_missing_dependency_abc\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as info:
        require("wp_broken_mod", extra="x")
    assert not isinstance(info.value, MissingExtraError)
    sys.modules.pop("wp_broken_mod", None)
