"""The `wattprint` command. Thin: parse, call the library, print.

Every `--json` prints exactly one JSON document on stdout. Bad input prints one line on stderr
and exits with code 2.
"""

from __future__ import annotations

import sys

import typer

from wattprint.cli import estimate as estimate_cmd
from wattprint.cli import optimize as optimize_cmd
from wattprint.cli import report as report_cmd
from wattprint.cli import run as run_cmd
from wattprint.cli import runs as runs_cmd
from wattprint.cli import schedule as schedule_cmd
from wattprint.cli import ui as ui_cmd
from wattprint.errors import WattprintInputError

app = typer.Typer(
    name="wattprint",
    help="Measure, account for, report and reduce the energy and carbon of ML work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
)(run_cmd.run)
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(schedule_cmd.app, name="schedule")
app.command("estimate")(estimate_cmd.estimate)
app.command("optimize")(optimize_cmd.optimize)
app.command("report")(report_cmd.report)
app.command("ui")(ui_cmd.ui)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        from wattprint import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning bad input into one line on stderr and exit code 2."""
    try:
        app(args=argv, standalone_mode=True)
    except WattprintInputError as exc:
        print(f"wattprint: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
