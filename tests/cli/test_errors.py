"""Bad command lines: one line on stderr and exit code 2, from our checks and from the parser alike; valid JSON."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wattprint.cli.main import main


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["estimate", "--hardware", "V100", "--count", "abc", "--hours", "1", "--intensity", "400"],
        ["run", "--interval", "2x", "--", "true"],
        ["run", "--interval", "1e-9", "--", "true"],
        ["run", "--checkpoint", "inf", "--", "true"],
        ["runs", "list", "--limit", "abc"],
        ["runs", "list", "--limit", "99999999999999999999"],
        ["runs", "list", "--nope"],
        ["run", "--nmae", "x", "--", "true"],
        ["nosuchcommand"],
        ["schedule", "backtest", "--trace", "x.csv", "--jobs", "adhoc:1h/8h:99999999999"],
    ],
)
def test_bad_command_lines_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _main(argv, capsys)
    assert code == 2, (argv, err)
    assert out == ""
    assert err.startswith("wattprint: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "╭" not in err


def test_no_arguments_prints_the_help_and_no_empty_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _main([], capsys)
    assert "wattprint: error: \n" not in err and "Usage" in out + err
    assert code in (0, 2)


def test_help_and_version_still_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(["--version"], capsys)
    assert code == 0 and out.strip()
    code, out, _ = _main(["runs", "--help"], capsys)
    assert code == 0 and "list" in out


def test_json_stays_valid_when_a_figure_overflows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _main(
        ["estimate", "--json", "--hardware", "V100", "--count", "10000", "--days", "1000", "--intensity", "1e308"],
        capsys,
    )
    if code == 2:  # refused as out of range: fine too, as one line
        assert err.count("\n") == 1
        return
    assert code == 0
    doc = json.loads(out)  # strict parser: no Infinity
    assert doc["co2e_kg"]["total"] is None or doc["co2e_kg"]["total"] < float("inf")


TOKENS = st.sampled_from(
    [
        "-1",
        "0",
        "1e-9",
        "1e308",
        "nan",
        "inf",
        "abc",
        "",
        "99999999999999999999",
        "2x",
        "9999-12-31T23:59",
        "1h",
        "-5m",
        "FR",
        "zz",
    ]
)
OPTIONS = {
    "estimate": ["--count", "--hours", "--days", "--power-w", "--pue", "--intensity", "--region", "--hardware"],
    "runs list": ["--limit", "--status", "--name"],
    "schedule": ["--duration", "--window", "--earliest", "--deadline", "--min-chunk"],
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(sorted(OPTIONS)), data=st.data())
def test_fuzzed_options_never_print_a_traceback(
    command: str, data: st.DataObject, capsys: pytest.CaptureFixture[str]
) -> None:
    options = data.draw(st.lists(st.sampled_from(OPTIONS[command]), min_size=1, max_size=3, unique=True))
    argv = command.split()
    for option in options:
        argv += [option, data.draw(TOKENS)]
    if command == "schedule":
        argv += ["--trace", str(Path(__file__).parent / "no-such-trace.csv")]
    code, out, err = _main(argv, capsys)
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err and "╭" not in err, (argv, err)
    if code == 2:
        assert err.startswith("wattprint: error: ") and err.count("\n") == 1, (argv, err)


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_output_never_replaces_a_special_file(wattprint_cmd: list[str], tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("keep")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    for target, kind in ((link, "symbolic link"), (_fifo(tmp_path), "FIFO")):
        proc = subprocess.run(
            [*wattprint_cmd, "run", "-o", str(target), "--", sys.executable, "-c", "print(1)"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr  # refused before the job ran
        assert f"is a {kind}" in proc.stderr and proc.stderr.count("\n") == 1
    assert real.read_text() == "keep" and link.is_symlink() and stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)


def test_a_failed_output_write_keeps_the_jobs_exit_code(wattprint_cmd: list[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "gone"
    out_dir.mkdir()
    job = f"import shutil, sys; shutil.rmtree({str(out_dir)!r}); sys.exit(7)"  # the folder vanishes meanwhile
    proc = subprocess.run(
        [*wattprint_cmd, "run", "-o", str(out_dir / "rec.json"), "--", sys.executable, "-c", job],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 7, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "wattprint: warning: -o: could not write" in proc.stderr and "in the store as run" in proc.stderr


def test_run_goes_on_when_the_store_is_down_at_launch(wattprint_cmd: list[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, WATTPRINT_DB=f"postgresql+psycopg://u:secret@127.0.0.1:{port}/db")
    proc = subprocess.run(
        [*wattprint_cmd, "run", "--", sys.executable, "-c", "print('ran'); raise SystemExit(3)"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 3 and proc.stdout == "ran\n", proc.stderr
    assert "cannot open the store" in proc.stderr and "secret" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_times_at_the_end_of_the_calendar_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "far.csv"
    trace.write_text("datetime,intensity\n9999-12-31 22:00,100\n9999-12-31 23:00,200\n")
    for argv in (
        [
            "schedule",
            "--json",
            "--trace",
            str(trace),
            "--duration",
            "1h",
            "--window",
            "2h",
            "--earliest",
            "9999-12-31T22:00",
        ],
        [
            "schedule",
            "--json",
            "--trace",
            str(trace),
            "--duration",
            "2h",
            "--window",
            "12h",
            "--earliest",
            "9999-12-31T23:59",
        ],
    ):
        code, out, err = _main(argv, capsys)
        assert code == 2 and out == "" and err.count("\n") == 1, (argv, err)
        assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["estimate", "--hardware", "V100", "--hours", "1", "--days", "1", "--intensity", "1"],
            "--days: give either --hours or --days, not both",
        ),
        (
            ["estimate", "--hardware", "V100", "--hours", "1", "--intensity", "1", "--power-w", "nan"],
            "--power-w: got nan; expected a positive number",
        ),
        (
            ["estimate", "--hardware", "V100", "--hours", "1", "--intensity", "1", "--embodied-kg-per-device", "9"],
            "--lifetime-years: embodied needs both --embodied-kg-per-device and --lifetime-years",
        ),
        (
            ["estimate", "--hardware", "V100", "--hours", "1", "--region", "FR", "--method", "mlco2", "--pue", "1.2"],
            "--pue: the mlco2 method uses no PUE; leave --pue out or use the patterson --method",
        ),
        (["ui", "--port", "70000"], "--port: got 70000; expected 0-65535 (0 picks a free port)"),
    ],
)
def test_library_errors_show_the_commands_flags(argv: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The library names its Python parameters (power_w); the CLI shows the flags of the command that ran."""
    code, _out, err = _main(argv, capsys)
    assert (code, err) == (2, f"wattprint: error: {line}\n")


def test_other_wattprint_errors_are_one_line_with_their_own_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from wattprint.cli import runs as runs_cli
    from wattprint.errors import PowerSourceError

    def broken(*_args: object, **_kwargs: object) -> None:
        raise PowerSourceError("no RAPL zones under /sys/class/powercap")

    monkeypatch.setattr(runs_cli, "open_configured_store", broken)
    code, _out, err = _main(["runs", "list"], capsys)
    assert (code, err) == (1, "wattprint: error: no RAPL zones under /sys/class/powercap\n")


COMMANDS = [["run"], ["watch"], ["node"], ["estimate"], ["bench"], ["doctor"], ["rapld"], ["optimize"], ["report"],
            ["ui"], ["runs", "list"], ["runs", "show"], ["runs", "export"], ["schedule"],
            ["schedule", "backtest"], ["import", "codecarbon"]]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_an_unknown_option_in_one_line(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The parser's own errors, for every command: one line on stderr naming the option, exit 2."""
    code, out, err = _main([*command, "--no-such-option"], capsys)
    assert code == 2, (command, err)
    assert err.count("\n") == 1 and err.startswith("wattprint: error: ") and "--no-such-option" in err, err
    assert out == ""


def test_a_mistyped_command_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    """Commands load lazily; the suggestion still comes from all of them, in the one error line."""
    code, _out, err = _main(["shedule", "backtest"], capsys)
    assert code == 2 and err == "wattprint: error: No such command 'shedule'. Did you mean 'schedule'?\n", err


def test_every_registered_command_is_in_that_list() -> None:
    from wattprint.cli.main import COMMANDS as REGISTERED
    from wattprint.cli.main import load_command

    assert set(REGISTERED) == {command[0] for command in COMMANDS}
    for name in REGISTERED:  # each entry names a module and attribute that build a command
        assert load_command(name).name == name


def test_a_group_option_with_a_value_before_the_subcommand_keeps_the_subcommands_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _out, err = _main(["schedule", "--trace", str(tmp_path / "t.csv"), "backtest", "--jobs", "garbage"], capsys)
    assert code == 2 and err.startswith("wattprint: error: --jobs: got 'garbage'"), err


def test_run_refuses_an_sqlite_path_it_can_never_create_before_the_job(
    wattprint_cmd: list[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("")  # a file where the database's folder should be
    marker = tmp_path / "ran"
    env = dict(os.environ, WATTPRINT_DB=f"sqlite:///{blocker}/x.db")
    done = subprocess.run([*wattprint_cmd, "run", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and not marker.exists(), done.stderr
    assert (
        done.stderr.startswith("wattprint: error: WATTPRINT_DB: cannot create the directory")
        and done.stderr.count("\n") == 1
    )
