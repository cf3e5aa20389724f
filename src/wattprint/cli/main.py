"""The `wattprint` command. Thin: parse, call the library, print.

Every `--json` prints exactly one JSON document on stdout. Bad input prints one line on stderr
and exits with code 2.

Commands load lazily: `COMMANDS` names each one's module, and only the module of the command that runs is
imported (the top-level `--help` lists them from the table), so `wattprint run` does not pay for the
imports of `bench` or `schedule`.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import Any, NamedTuple

import typer
from typer.core import TyperGroup

from wattprint.errors import WattprintError


class Command(NamedTuple):
    """Where a command lives: `attr` of `module` is a command function or a Typer app of subcommands."""

    module: str
    attr: str
    short_help: str  # for the command list, which an 80-column terminal would cut mid-sentence
    context_settings: dict[str, Any] | None = None


# the order is the order of `wattprint --help`
COMMANDS: dict[str, Command] = {
    "run": Command(
        "wattprint.cli.run",
        "run",
        "Run a command, tracking its energy and carbon.",
        {"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
    ),
    "watch": Command("wattprint.cli.watch", "watch", "Track a process that is already running, until it exits."),
    "node": Command("wattprint.cli.node", "node", "For admins: one run per child cgroup (jobs, containers, pods)."),
    "estimate": Command("wattprint.cli.estimate", "estimate", "Energy and CO2e of hardware before running."),
    "bench": Command("wattprint.cli.bench", "bench", "Energy per query and per token of a model, per batch size."),
    "doctor": Command("wattprint.cli.doctor", "doctor", "Which power source each component uses here, and why."),
    "rapld": Command("wattprint.cli.rapld", "rapld", "For root: serve RAPL counters to a group's users."),
    "optimize": Command("wattprint.cli.optimize", "optimize", "Try efficiency recipes on a model, keep the best."),
    "report": Command("wattprint.cli.report", "report", "Report runs: HTML, Markdown, LaTeX, model card."),
    "ui": Command("wattprint.cli.ui", "ui", "Serve a local dashboard of the stored runs."),
    "runs": Command("wattprint.cli.runs", "app", "List, show and export stored runs."),
    "schedule": Command("wattprint.cli.schedule", "app", "Plan a job for the cleanest hours; backtest."),
    "import": Command("wattprint.cli.importing", "app", "Bring other tools' runs into the store (CodeCarbon)."),
}


def load_command(name: str) -> Any:
    """The click command for `name`, built from its module (imported now) the way Typer builds it."""
    import typer.main

    spec = COMMANDS[name]
    target = getattr(importlib.import_module(spec.module), spec.attr)
    command: Any
    if isinstance(target, typer.Typer):  # a group of subcommands
        command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
        single.command(name, context_settings=spec.context_settings)(target)
        command = typer.main.get_command(single)
    command.name, command.short_help = name, spec.short_help
    return command


class LazyGroup(TyperGroup):
    """The root group: commands from `COMMANDS`, each built on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as exc:  # "No such command": suggest from the table, not the loaded ones
            message = getattr(exc, "message", None)
            close = difflib.get_close_matches(args[0], list(COMMANDS)) if args else []
            if isinstance(message, str) and close and "Did you mean" not in message:
                exc.message = f"{message.rstrip('.')}. Did you mean {', '.join(repr(m) for m in close)}?"
            raise

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list from the table, without importing any command."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, spec.short_help) for name, spec in COMMANDS.items()])


# plain (click) help: typer's rich help costs ~50 ms of imports at every `--help`, two thirds of its start-up
HELP_SETTINGS: dict[str, Any] = {"max_content_width": 110}
app = typer.Typer(
    name="wattprint",
    cls=LazyGroup,
    help="Measure, account for, report and reduce the energy and carbon of ML work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP_SETTINGS,
)


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
