"""`wattprint estimate`: energy and carbon of a job before running it (hardware x time x region).

Thin: parse, call `wattprint.accounting.estimate.estimate`, print. `--json` prints exactly one JSON
document (the contract in DESIGN.md, plus "range" and, for strubell, "co2e_lbs"); bad input is one
line on stderr and exit code 2.
"""

from __future__ import annotations

from typing import Any

import typer

from wattprint.cli.common import print_json


def estimate(
    hardware: str = typer.Option(..., "--hardware", help="Accelerator or CPU: V100, A100-SXM4, h100 sxm, TPUv3, ..."),
    count: int = typer.Option(1, "--count", help="Number of devices."),
    hours: float = typer.Option(None, "--hours", help="Duration in hours (or --days)."),
    days: float = typer.Option(None, "--days", help="Duration in days (or --hours)."),
    power_w: float = typer.Option(None, "--power-w", help="Average power per device, W (default: TDP)."),
    pue: float = typer.Option(None, "--pue", help="Power usage effectiveness (default 1.0; GCP regions 1.10)."),
    intensity: float = typer.Option(None, "--intensity", help="Grid intensity, gCO2e/kWh (or --region)."),
    region: str = typer.Option(None, "--region", help="Grid region: FR, US-CA, gcp:europe-west9, ..."),
    embodied_kg_per_device: float = typer.Option(
        None, "--embodied-kg-per-device", help="Embodied kgCO2e per device (with --lifetime-years)."
    ),
    lifetime_years: float = typer.Option(None, "--lifetime-years", help="Device lifetime, years."),
    embodied_from_table: bool = typer.Option(
        False, "--embodied-table", help="Use the bundled embodied figure of the hardware."
    ),
    method: str = typer.Option("patterson", "--method", help="patterson (default), mlco2 or strubell."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Estimate energy and CO2e of COUNT devices for a duration, before running anything."""
    from wattprint.accounting.estimate import estimate as compute

    result = compute(
        hardware,
        count=count,
        hours=hours,
        days=days,
        power_w=power_w,
        pue=pue,
        intensity=intensity,
        region=region,
        embodied_kg_per_device=embodied_kg_per_device,
        lifetime_years=lifetime_years,
        embodied_from_table=embodied_from_table,
        method=method,
    )
    document = result.to_dict()
    if as_json:
        print_json(document)
        return
    from wattprint.cli.render import print_table

    print_table(_table(document))


def _table(doc: dict[str, Any]) -> Any:
    """A two-column rich table of an estimate document."""
    from rich.table import Table

    from wattprint.report.values import fmt_energy, fmt_mass

    inputs, co2e, rng = doc["inputs"], doc["co2e_kg"], doc["range"]
    table = Table(title=f"wattprint estimate ({inputs['method']})", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    device = f"{inputs['hardware']} ({inputs['hardware_kind']}, TDP {inputs['tdp_w']:g} W)"
    low, high = fmt_mass(rng["co2e_kg_low"]), fmt_mass(rng["co2e_kg_high"])
    rows = [
        ("hardware", f"{inputs['count']} x {device}"),
        ("duration", f"{inputs['hours']:,.4g} h"),
        ("power per device", f"{inputs['power_w']:g} W ({inputs['power_source']})"),
        ("energy (hardware)", fmt_energy(doc["energy_kwh"])),
        (
            "facility energy (x PUE)",
            f"{fmt_energy(doc['facility_energy_kwh'])} (PUE {inputs['pue']:g}, {inputs['pue_source']})",
        ),
        ("grid intensity", f"{inputs['intensity_g_per_kwh']:.4g} gCO2e/kWh ({inputs['intensity_source']})"),
        ("CO2e operational", fmt_mass(co2e["operational"])),
        (
            "CO2e embodied",
            fmt_mass(co2e["embodied"]) + ("" if "embodied_source" in inputs else " (not included)"),
        ),
        ("CO2e total", f"{fmt_mass(co2e['total'])} (range {low} - {high})"),
    ]
    if "co2e_lbs" in doc:
        rows.append(("CO2e total, lbs", f"{doc['co2e_lbs']['total']:,.4g} lbs"))
    rows.append(("method", inputs["formula"]))
    for label, value in rows:
        table.add_row(label, value)
    return table
