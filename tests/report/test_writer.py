"""Report paths: names from runs are sanitised, nothing is written outside the chosen directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wattprint.errors import WattprintInputError
from wattprint.report.writer import is_inside, output_path, safe_filename, write_report


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/x", "etc_x"),
        ("..", "run"),
        ("", "run"),
        ("/abs/path", "abs_path"),
        (".hidden", "hidden"),
        ("a..b", "a.b"),
        ("résumé v2 (final)", "r_sum_v2_final"),
        ("nul\x00byte\nline", "nul_byte_line"),
        ("C:\\Windows\\x", "C_Windows_x"),
        ("ok-name_1.0", "ok-name_1.0"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected
    assert "/" not in safe_filename(name) and not safe_filename(name).startswith(".")


def test_safe_filename_is_bounded() -> None:
    assert len(safe_filename("x" * 500)) == 80


def test_crafted_run_name_stays_in_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for template in ("{name}.html", "{run_id}-{name}.tex", "sub{name}.md"):
        path = output_path(
            template, field="--html", out_dir=out, default_name="x.html", name="../../etc/x", run_id="../../id"
        )
        assert is_inside(path, out)
        assert path.parent == out
    with pytest.raises(WattprintInputError, match="does not exist"):
        output_path("{name}/r.html", field="--html", out_dir=out, default_name="x", name="sub", run_id="i")


@pytest.mark.parametrize("value", ["../escape.html", "a/../../escape.html", "..", "/etc/passwd", "."])
def test_explicit_paths_outside_out_dir_are_refused(tmp_path: Path, value: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(WattprintInputError) as info:
        output_path(value, field="--html", out_dir=out, default_name="x.html", name="n", run_id="i")
    assert info.value.field == "--html"
    assert not (tmp_path / "escape.html").exists()


def test_symlink_leading_out_is_refused(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)
    with pytest.raises(WattprintInputError, match="outside the output directory"):
        output_path("link/r.html", field="--html", out_dir=out, default_name="x", name="n", run_id="i")


def test_without_out_dir_the_files_own_directory_is_chosen(tmp_path: Path) -> None:
    path = output_path(
        str(tmp_path / "{name}.html"),
        field="--html",
        out_dir=None,
        default_name="x",
        name="../../etc/passwd",
        run_id="i",
    )
    assert path == tmp_path / "etc_passwd.html"
    with pytest.raises(WattprintInputError, match="only in the file name"):
        output_path(
            str(tmp_path / "{name}" / "r.html"), field="--md", out_dir=None, default_name="x", name="n", run_id="i"
        )
    with pytest.raises(WattprintInputError, match="does not exist"):
        output_path(
            str(tmp_path / "nope" / "r.html"), field="--md", out_dir=None, default_name="x", name="n", run_id="i"
        )


def test_write_is_atomic_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "r.md"
    target.write_text("old")
    write_report(target, "new", directory=tmp_path)
    assert target.read_text() == "new"

    with pytest.raises(TypeError):
        write_report(target, 12345, directory=tmp_path)  # type: ignore[arg-type]
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    with pytest.raises(WattprintInputError):
        write_report(tmp_path.parent / "x.md", "x", directory=tmp_path)
    assert not (tmp_path.parent / "x.md").exists()


def test_written_file_is_readable(tmp_path: Path) -> None:
    path = write_report(tmp_path / "r.html", "<p>x</p>")
    assert os.stat(path).st_mode & 0o444 == 0o444
