"""Library errors name Python parameters (`power_w`); the CLI shows them as the flags of the command that
was run (`--power-w`), taken from the command's own parameters, never from a hand-kept table."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from wattprint.errors import WattprintError

_QUOTED_NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")  # how messages quote a parameter they mention


def command_flags(app: Any, argv: Sequence[str]) -> dict[str, str]:
    """Parameter name -> what the user types for it (`--power-w`, or `CMD` for an argument) in the command
    that `argv` runs."""
    import typer.main

    command: Any = typer.main.get_command(app)
    tokens = iter(argv)
    for token in tokens:
        if not hasattr(command, "list_commands"):  # not a group: this command runs
            break
        if token.startswith("-"):  # a group's own option; one that takes a value takes the next token too
            option = next((p for p in command.params if token.split("=", 1)[0] in p.opts), None)
            if option is not None and "=" not in token and not getattr(option, "is_flag", False):
                next(tokens, None)
            continue
        sub = command.get_command(None, token)  # the groups here load commands lazily, without a context
        if sub is None:
            break
        command = sub
    flags = {}
    for param in getattr(command, "params", []):
        if param.name is None:
            continue
        long_opts = [opt for opt in param.opts if opt.startswith("--")]
        is_option = param.param_type_name == "option"
        flags[param.name] = (long_opts or list(param.opts))[0] if is_option else param.name.upper()
    return flags


def shown_with_flags(exc: WattprintError, flags: dict[str, str]) -> str:
    """The error's one line with its field and the parameters its message quotes shown as flags."""

    def flag(name: str) -> str | None:
        for candidate in (name, name.removesuffix("_s")):  # pause_cost_s is --pause-cost
            if candidate in flags:
                return flags[candidate]
        return None

    message = _QUOTED_NAME.sub(lambda m: flag(m.group(1)) or m.group(1), exc.message)
    if not exc.field:
        return message
    head, sep, rest = exc.field.partition(": ")  # "trace: tz": a part of one input
    return f"{flag(head) or head}{sep}{rest}: {message}"
