"""The `wattprint` command. Thin: parse, call the library, print.

Every `--json` prints exactly one JSON document on stdout. Bad input prints one line on stderr
and exits with code 2.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from wattprint.cli import bench as bench_cmd
from wattprint.cli import doctor as doctor_cmd
from wattprint.cli import estimate as estimate_cmd
from wattprint.cli import node as node_cmd
from wattprint.cli import optimize as optimize_cmd
from wattprint.cli import rapld as rapld_cmd
from wattprint.cli import report as report_cmd
from wattprint.cli import run as run_cmd
from wattprint.cli import runs as runs_cmd
from wattprint.cli import schedule as schedule_cmd
from wattprint.cli import ui as ui_cmd
from wattprint.cli import watch as watch_cmd
from wattprint.errors import WattprintError

# plain (click) help: typer's rich help costs ~50 ms of imports at every `--help`, two thirds of its start-up
HELP_SETTINGS: dict[str, Any] = {"max_content_width": 110}
app = typer.Typer(
    name="wattprint",
    help="Measure, account for, report and reduce the energy and carbon of ML work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP_SETTINGS,
)
# short lines for the command list, which an 80-column terminal would cut mid-sentence
app.command(
    "run",
    short_help="Run a command, tracking its energy and carbon.",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
)(run_cmd.run)
app.command("watch", short_help="Track a process that is already running, until it exits.")(watch_cmd.watch)
app.command("node", short_help="For admins: one run per child cgroup (jobs, containers, pods).")(node_cmd.node)
app.add_typer(runs_cmd.app, name="runs", short_help="List, show and export stored runs.")
app.add_typer(schedule_cmd.app, name="schedule", short_help="Plan a job for the cleanest hours; backtest.")
app.command("estimate", short_help="Energy and CO2e of hardware before running.")(estimate_cmd.estimate)
app.command("bench", short_help="Energy per query and per token of a model, per batch size.")(bench_cmd.bench)
app.command("doctor", short_help="Which power source each component uses here, and why.")(doctor_cmd.doctor)
app.command("rapld", short_help="For root: serve RAPL counters to a group's users.")(rapld_cmd.rapld)
app.command("optimize", short_help="Try efficiency recipes on a model, keep the best.")(optimize_cmd.optimize)
app.command("report", short_help="Report runs: HTML, Markdown, LaTeX, model card.")(report_cmd.report)
app.command("ui", short_help="Serve a local dashboard of the stored runs.")(ui_cmd.ui)


def _print_version(value: bool) -> None:
    if value:
        from wattprint import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """Measure, account for, report and reduce the energy and carbon of ML work."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning bad input (ours or the parser's) into one line on stderr and exit
    code 2; --help, --version and a command's own exit code pass through."""
    try:
        code = app(args=argv, standalone_mode=False)
    except WattprintError as exc:  # ours: input (exit 2) or other (its own exit code), one line either way
        from wattprint.cli.flags import command_flags, shown_with_flags

        _error(shown_with_flags(exc, command_flags(app, sys.argv[1:] if argv is None else argv)), exc.exit_code)
    except typer.Abort:  # Ctrl-C at a prompt
        print("wattprint: aborted", file=sys.stderr)
        sys.exit(130)
    except OverflowError as exc:  # a number too large for what it feeds (a date, a count)
        _error(f"a value is out of range ({exc})")
    except Exception as exc:
        # the parser's own errors (a type, a missing value, an unknown option): click's ClickException, which
        # typer vendors under another module name, so it is recognised by its interface
        format_message, exit_code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
        if callable(format_message) and isinstance(exit_code, int):
            message = str(format_message())
            if not message.strip():  # no arguments: the help was printed, nothing to add
                sys.exit(exit_code)
            _error(message, exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _error(message: str, code: int = 2) -> None:
    text = " ".join(message.split())  # one line, whatever the message held
    print(f"wattprint: error: {text}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
