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
    hardware: str = typer.Option(
        None, "--hardware", help="Accelerator or CPU: V100, A100-SXM4, h100 sxm, TPUv3, ... (or --training-run)."
    ),
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
    queries_per_day: float = typer.Option(
        None, "--queries-per-day", help="Lifetime: queries served per day after training (with --serving-days)."
    ),
    serving_days: float = typer.Option(None, "--serving-days", help="Lifetime: days the model is served."),
    j_per_query: float = typer.Option(None, "--j-per-query", help="Lifetime: energy per query, J (or --bench-run)."),
    bench_run: str = typer.Option(None, "--bench-run", help="Lifetime: a stored `wattprint bench` run (id or prefix)."),
    bench_batch_size: int = typer.Option(
        None, "--bench-batch-size", help="Lifetime: which batch size of --bench-run (default: the largest)."
    ),
    training_run: str = typer.Option(
        None, "--training-run", help="Lifetime: a stored training run (id or prefix) instead of --hardware."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Estimate energy and CO2e of COUNT devices for a duration, before running anything.

    With --queries-per-day and --serving-days: the lifetime footprint, training (this estimate or
    --training-run) plus serving (--j-per-query or --bench-run), and the day inference overtakes training.
    """
    from wattprint.accounting.estimate import estimate as compute

    lifetime_asked = any(v is not None for v in (queries_per_day, serving_days, j_per_query, bench_run, training_run))
    if lifetime_asked:
        document = _lifetime(
            queries_per_day, serving_days, j_per_query, bench_run, bench_batch_size, training_run,
            dict(hardware=hardware, count=count, hours=hours, days=days, power_w=power_w, pue=pue,
                 intensity=intensity, region=region, embodied_kg_per_device=embodied_kg_per_device,
                 lifetime_years=lifetime_years, embodied_from_table=embodied_from_table, method=method),
        )  # fmt: skip
        if as_json:
            print_json(document)
        else:
            from wattprint.cli.render import print_table

            print_table(_lifetime_table(document))
        return
    if hardware is None:
        from wattprint.cli.common import fail

        fail("--hardware", "missing; accepted: an accelerator or CPU name such as V100 or h100 sxm")
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
        *([("hardware note", inputs["hardware_note"])] if inputs.get("hardware_note") else []),
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


def _lifetime(
    queries_per_day: float | None,
    serving_days: float | None,
    j_per_query: float | None,
    bench_run: str | None,
    bench_batch_size: int | None,
    training_run: str | None,
    training_args: dict[str, Any],
) -> dict[str, Any]:
    """The lifetime document: training from a stored run or this estimate, inference from a benchmark."""
    from wattprint.accounting.estimate import estimate as compute
    from wattprint.accounting.estimate import grid_factor
    from wattprint.accounting.lifetime import Training, bench_j_per_query, lifetime
    from wattprint.cli.common import fail, open_configured_store

    if queries_per_day is None or serving_days is None:
        fail("--queries-per-day" if queries_per_day is None else "--serving-days", "missing; a lifetime needs both")
    if (j_per_query is None) == (bench_run is None):
        fail("--j-per-query", "give one of --j-per-query or --bench-run")
    if (training_run is None) == (training_args["hardware"] is None):
        fail("--training-run", "give one of --training-run or --hardware (an estimate of the training)")
    if bench_batch_size is not None and bench_run is None:
        fail("--bench-batch-size", "applies to --bench-run only")
    if training_run is not None:  # the run's own figures: the estimate's options would be silently ignored
        estimate_only = {"--count": training_args["count"] != 1 or None, "--hours": training_args["hours"],
                         "--days": training_args["days"], "--power-w": training_args["power_w"],
                         "--embodied-kg-per-device": training_args["embodied_kg_per_device"],
                         "--lifetime-years": training_args["lifetime_years"],
                         "--embodied-table": training_args["embodied_from_table"] or None,
                         "--method": training_args["method"] != "patterson" or None}  # fmt: skip
        for flag, value in estimate_only.items():
            if value is not None:
                fail(flag, "estimates a training; with --training-run the run's own figures are used")
    run_factor: float | None = None
    bench_factor: float | None = None
    inference_source = "given (--j-per-query)"
    if training_run is not None or bench_run is not None:
        with open_configured_store() as store:
            if training_run is not None:
                rec = store.get(training_run)
                training = Training(
                    rec.energy_kwh.total, rec.co2e_kg.total, f"run {rec.run_id[:12]} ({rec.name}, {rec.status})"
                )
                if rec.energy_kwh.total > 0:
                    run_factor = rec.co2e_kg.operational * 1000.0 / rec.energy_kwh.total
            if bench_run is not None:
                bench = store.get(bench_run)
                j_per_query, size, bench_factor = bench_j_per_query(bench.bench, bench_batch_size)
                inference_source = f"run {bench.run_id[:12]} ({bench.bench.get('model')}, batch size {size})"
    if training_run is None:
        result = compute(training_args.pop("hardware"), **training_args).to_dict()
        training = Training(result["energy_kwh"], result["co2e_kg"]["total"], "estimate (--hardware)")
    intensity, region, pue = training_args["intensity"], training_args["region"], training_args["pue"]
    if intensity is not None or region is not None:
        g_per_kwh, g_source = grid_factor(intensity, region, pue)
    elif bench_factor is not None:
        g_per_kwh, g_source = float(bench_factor), "the benchmark run's own (its region, intensity and PUE)"
    elif run_factor is not None:
        g_per_kwh, g_source = run_factor, "the training run's own (its region, intensity and PUE)"
    else:
        fail("--intensity", "the serving grid is unknown; accepted: --intensity G or --region R")
    assert j_per_query is not None and queries_per_day is not None and serving_days is not None
    document = lifetime(
        training,
        j_per_query=j_per_query,
        queries_per_day=queries_per_day,
        serving_days=serving_days,
        g_per_kwh=g_per_kwh,
        inference_source=inference_source,
    )
    document["inference"]["g_co2e_per_kwh_source"] = g_source
    return document


def _lifetime_table(doc: dict[str, Any]) -> Any:
    from rich.table import Table

    from wattprint.report.values import fmt_energy, fmt_mass

    train, serve, total = doc["training"], doc["inference"], doc["total"]
    table = Table(title="wattprint lifetime footprint", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    crossover = doc["crossover_day"]
    when = "never (nothing served)" if crossover is None else f"day {crossover:,}"
    if crossover is not None and not doc["within_period"]:
        when += f" (after the {serve['days']:,.0f} serving days)"
    rows = [
        ("training", f"{fmt_energy(train['energy_kwh'])}, {fmt_mass(train['co2e_kg'])} CO2e ({train['source']})"),
        (
            "inference",
            f"{serve['queries_per_day']:,.0f} queries/day x {serve['days']:,.0f} days at {serve['j_per_query']:.3g} J"
            f" = {fmt_energy(serve['energy_kwh'])}, {fmt_mass(serve['co2e_kg'])} CO2e ({serve['source']})",
        ),
        ("total", f"{fmt_energy(total['energy_kwh'])}, {fmt_mass(total['co2e_kg'])} CO2e"),
        (
            "inference share",
            f"{doc['inference_share']['energy']:.1%} of energy, {doc['inference_share']['co2e']:.1%} of CO2e",
        ),
        ("inference overtakes training", when),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table
