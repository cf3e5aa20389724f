"""`wattprint report` as a real subprocess: outputs, exit codes, and paths that cannot escape."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.report.records import fixture_records, make_record, save_records


def run(cmd: list[str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, "report", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_markdown_to_stdout_by_prefix(wattprint_cmd: list[str]) -> None:
    save_records(fixture_records())
    result = run(wattprint_cmd, "aaaa", "bbbb2222")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| Model | Accuracy ↑ |")
    assert lines[2].startswith("| ResNet-18 | 0.93 |") and lines[3].startswith("| mlp_small | 0.871 |")


def test_unknown_and_ambiguous_ids_exit_2_with_one_line(wattprint_cmd: list[str], tmp_path: Path) -> None:
    save_records([*fixture_records(), make_record("aaaa9999", "twin", energy_kwh=0.1, co2e_kg=0.01)])
    out = tmp_path / "out"
    for args, expected in ((["nope"], "no run with id or id prefix 'nope'"), (["aaaa"], "is ambiguous")):
        result = run(wattprint_cmd, *args, "--out-dir", str(out))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and expected in result.stderr
        assert result.stdout == ""
    assert not out.exists()  # nothing created for a failed report


def test_crafted_run_name_cannot_write_outside_out_dir(wattprint_cmd: list[str], tmp_path: Path) -> None:
    save_records([make_record("evil0001", "../../etc/x", energy_kwh=0.01, co2e_kg=0.001)])
    out = tmp_path / "a" / "b" / "out"
    result = run(wattprint_cmd, "evil", "--out-dir", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "etc_x-evil0001-model-card.md",
        "etc_x-evil0001.html",
        "etc_x-evil0001.md",
        "etc_x-evil0001.tex",
    ]
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - {p for p in (tmp_path / "wp-home").rglob("*")}
    assert written == set(out.iterdir())  # nothing anywhere else, e.g. no tmp_path/a/etc/x*
    # the name also cannot escape through a placeholder
    result = run(wattprint_cmd, "evil", "--out-dir", str(out), "--html", "{name}.html")
    assert result.returncode == 0 and (out / "etc_x.html").is_file()


def test_explicit_path_outside_out_dir_exits_2(wattprint_cmd: list[str], tmp_path: Path) -> None:
    save_records(fixture_records())
    out = tmp_path / "out"
    out.mkdir()
    for flag, value in (("--html", "../escape.html"), ("--latex", "/etc/wattprint.tex"), ("--md", "..")):
        result = run(wattprint_cmd, "aaaa", "--out-dir", str(out), flag, value)
        assert result.returncode == 2, (flag, result.stderr)
        assert result.stderr.startswith(f"wattprint: error: {flag}:")
        assert "outside the output directory" in result.stderr
    assert sorted(tmp_path.iterdir()) == sorted([out, tmp_path / "work", tmp_path / "wp-home"])
    assert list(out.iterdir()) == []


def test_each_format_to_chosen_files(wattprint_cmd: list[str], tmp_path: Path) -> None:
    save_records(fixture_records())
    result = run(
        wattprint_cmd,
        "aaaa",
        "bbbb",
        "cccc",
        "--html",
        "c.html",
        "--md",
        "c.md",
        "--latex",
        "c.tex",
        "--model-card",
        "README.md",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Comparison of 3 runs" in (tmp_path / "c.html").read_text()
    assert (tmp_path / "c.md").read_text().startswith("| Model |")
    assert r"\begin{tabular}" in (tmp_path / "c.tex").read_text()
    assert "## Environmental Impact" in (tmp_path / "README.md").read_text()
    assert len(result.stdout.splitlines()) == 4


def test_metric_option_and_same_file_twice(wattprint_cmd: list[str], tmp_path: Path) -> None:
    save_records(
        [
            make_record("l1", "a", energy_kwh=0.1, co2e_kg=0.01, metrics={"loss": 0.3}),
            make_record("l2", "b", energy_kwh=0.2, co2e_kg=0.01, metrics={"loss": 0.2}),
        ]
    )
    result = run(wattprint_cmd, "l1", "l2", "--metric", "loss", "--lower-is-better")
    assert result.returncode == 0 and "| Loss ↓ |" in result.stdout
    result = run(wattprint_cmd, "l1", "--md", "x.md", "--latex", "x.md", cwd=tmp_path)
    assert result.returncode == 2 and "--latex" in result.stderr and not (tmp_path / "x.md").exists()
    result = run(wattprint_cmd, "l1", "--metric", " ")
    assert result.returncode == 2 and "--metric" in result.stderr


def test_model_card_into_an_existing_readme_keeps_it_after_two_reports(
    wattprint_cmd: list[str], tmp_path: Path
) -> None:
    """The README's own example: an existing card keeps its front matter and prose; a second report changes
    nothing more (issue 15)."""
    from tests.report.test_model_card import USER_CARD

    save_records(fixture_records())
    card = tmp_path / "README.md"
    card.write_text(USER_CARD)
    first = run(wattprint_cmd, "aaaa", "--model-card", "README.md", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "merged into the existing card" in first.stdout
    once = card.read_text()
    assert once.startswith("---\nlicense: mit\n") and "Some prose the user wrote." in once and "@misc{me}" in once
    assert "An older section." not in once and "## Environmental Impact" in once
    assert run(wattprint_cmd, "aaaa", "--model-card", "README.md", cwd=tmp_path).returncode == 0
    assert card.read_text() == once
    card.write_bytes(b"\xff\xfe not utf-8")
    bad = run(wattprint_cmd, "aaaa", "--model-card", "README.md", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--model-card" in bad.stderr
    assert card.read_bytes() == b"\xff\xfe not utf-8"  # untouched
