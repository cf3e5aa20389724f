"""`wattprint doctor`: what each component will be measured with on this machine, why, and what would help.

Thin: call `wattprint.measure.doctor.diagnose`, print a table (or one JSON document with --json).
"""

from __future__ import annotations

from typing import Any

import typer

from wattprint.cli.common import print_json


def doctor(as_json: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Say which power source each component (CPU, RAM, GPU) will use here, why, and the step that would
    turn an estimate into a measurement."""
    from wattprint.config import load_settings
    from wattprint.measure.doctor import diagnose

    settings = load_settings()
    document = diagnose(
        cpu_tdp_w=settings.cpu_tdp_w,
        virtual=settings.virtual,
        instance_type=settings.instance_type,
        host_vcpus=settings.host_vcpus,
    )
    if as_json:
        print_json(document)
        return
    from wattprint.cli.render import print_table

    print_table(_table(document))


def _table(doc: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="wattprint doctor", show_lines=True)
    for column in ("component", "source", "method", "why", "to measure it"):
        table.add_column(column)
    for name, row in doc["components"].items():
        table.add_row(name, row["source"] or "-", row["method"] or "-", row["reason"], row["fix"] or "-")
    table.caption = "; ".join(doc["notes"]) or None
    return table
