"""`wattprint schedule`: when (and where) to run a job; `wattprint schedule backtest`: replay a trace.

    wattprint schedule --json --trace FILE --duration D (--deadline T | --window D)
        [--earliest T] [--interruptible [--min-chunk D]]
    wattprint schedule backtest --trace FILE [--jobs SPEC ...] [--forecast-error PCT] [--json]

Durations: 45s, 90m, 8h, 1h30m, 2d, PT2H. Times: ISO-8601; a time without a zone is UTC. Also the
helpers `wattprint run --within/--deadline` uses to wait for its planned start.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from wattprint.cli.common import fail, print_json
from wattprint.errors import WattprintInputError

if TYPE_CHECKING:
    from wattprint.intensity.base import IntensitySeries
    from wattprint.schedule.execute import Executor

# library fields that are not a parameter of these commands under their own name (the rest are mapped from
# the commands' parameters by cli/flags.py)
ALIASES = {"trace: tz": "--tz", "home": "--trace"}
TIME_HELP = "ISO-8601 time; without a zone it is UTC"
DUR_HELP = "duration: 45s, 90m, 8h, 1h30m, 2d or PT2H"

app = typer.Typer(
    help="Plan a job for when (and where) the grid is cleanest, before its deadline; backtest the planner.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@contextmanager
def flag_names() -> Iterator[None]:
    """Re-raise the library input errors whose field is no parameter of these commands under its name."""
    try:
        yield
    except WattprintInputError as exc:
        if exc.field not in ALIASES:
            raise
        raise WattprintInputError(ALIASES[exc.field], exc.message) from None


def _load_trace(path: Path, tz: str | None, region: str | None = None) -> IntensitySeries:
    from wattprint.intensity.trace import TraceProvider

    return TraceProvider(path, region=region, tz=tz).full_series


def _traces(specs: list[str], tz: str | None) -> dict[str, IntensitySeries]:
    """--trace FILE, or several --trace REGION=FILE for location shifting."""
    out: dict[str, IntensitySeries] = {}
    for spec in specs:
        region, sep, file = spec.partition("=")
        if sep and region and not Path(spec).exists():
            series = _load_trace(Path(file), tz, region.strip())
        else:
            series = _load_trace(Path(spec), tz)
        if series.region in out:
            fail("--trace", f"region {series.region!r} given twice; label traces REGION=FILE")
        out[series.region] = series
    return out


@app.callback(invoke_without_command=True)
def schedule(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print the plan as one JSON document."),
    trace: list[str] = typer.Option(
        None,
        "--trace",
        help="Intensity forecast or trace (CSV/Parquet); repeat as REGION=FILE to also choose where.",
    ),
    duration: str = typer.Option(None, "--duration", help=f"How long the job runs ({DUR_HELP})."),
    deadline: str = typer.Option(None, "--deadline", help=f"When it must be done ({TIME_HELP})."),
    window: str = typer.Option(None, "--window", help=f"Or: done within this long after --earliest ({DUR_HELP})."),
    earliest: str = typer.Option(None, "--earliest", help=f"Not before ({TIME_HELP}; default now)."),
    interruptible: bool = typer.Option(False, "--interruptible", help="The job may pause and resume."),
    min_chunk: str = typer.Option(None, "--min-chunk", help="Shortest run between pauses (interruptible)."),
    pause_cost: str = typer.Option(None, "--pause-cost", help="Each pause costs this much running (interruptible)."),
    tz: str = typer.Option(None, "--tz", help="Time zone of the trace's naive timestamps (default UTC)."),
    fmt: str = typer.Option("text", "--format", help="text, sbatch or cron (ignored with --json)."),
    command: str = typer.Option(None, "--command", help="Job script or command for --format sbatch/cron."),
    cluster_tz: str = typer.Option(None, "--cluster-tz", help="Time zone of the cluster (default: this machine's)."),
) -> None:
    """Plan a job: the start (or slots) of least emissions before the deadline."""
    if ctx.invoked_subcommand is not None:
        return
    if fmt not in ("text", "sbatch", "cron"):
        fail("--format", f"got {fmt!r}; expected text, sbatch or cron")
    if not trace:
        fail(
            "--trace",
            "required: a CSV or Parquet file of gCO2e/kWh over time (see wattprint schedule --help)",
        )
    if duration is None:
        fail("--duration", f"required: a {DUR_HELP}")
    if min_chunk is not None and not interruptible:
        fail("--min-chunk", "only applies with --interruptible")
    with flag_names():
        from wattprint.schedule import parse_duration, plan_location

        pause_s = parse_duration(pause_cost, "pause_cost_s").total_seconds() if pause_cost else 0.0
        traces = _traces(trace, tz)
        lp = plan_location(
            traces,
            duration,
            deadline=deadline,
            window=window,
            earliest=earliest,
            interruptible=interruptible,
            min_chunk=min_chunk,
            pause_cost_s=pause_s,
        )
    p = lp.plan
    if json_out:
        doc = p.to_json()
        if len(traces) > 1:
            doc["region"] = lp.region
            doc["savings_pct"] = float(lp.savings_pct)
            doc["baseline_intensity"] = float(lp.plans[lp.home].baseline_intensity)
        print_json(doc)
        return
    from wattprint.schedule.cluster import cron_line, sbatch_line

    with flag_names():
        if fmt == "sbatch":
            typer.echo(sbatch_line(p, command or "job.sh", cluster_tz))
            return
        if fmt == "cron":
            typer.echo(cron_line(p, command or "/path/to/job.sh", cluster_tz))
            return
        _print_plan(lp, traces, command, cluster_tz)


def _print_plan(lp: Any, traces: dict[str, Any], command: str | None, cluster_tz: str | None) -> None:
    from wattprint.schedule import format_duration, iso
    from wattprint.schedule.cluster import cron_line, sbatch_line

    p = lp.plan
    where = f" in {lp.region}" if len(traces) > 1 else ""
    typer.echo(f"Run{where} from {iso(p.start)} to {iso(p.end)} (UTC), {format_duration(p.duration_s)} of work")
    if len(p.slots) > 1:
        for a, b in p.slots:
            typer.echo(f"  slot {iso(a)} .. {iso(b)}  ({format_duration((b - a).total_seconds())})")
    base = lp.plans[lp.home].baseline_intensity
    typer.echo(
        f"Mean intensity {p.mean_intensity:.1f} gCO2e/kWh vs {base:.1f} running at {iso(p.earliest)}"
        f"{' in ' + lp.home if len(traces) > 1 else ''}: {lp.savings_pct:.1f}% less operational CO2e"
    )
    typer.echo(f"Source: {p.source}")
    zone = cluster_tz or "this machine's local time"
    typer.echo(f"Slurm ({zone}): {sbatch_line(p, command or 'job.sh', cluster_tz)}")
    typer.echo(f"cron ({zone}, once: remove after): {cron_line(p, command or '/path/to/job.sh', cluster_tz)}")
    if len(p.slots) > 1:
        typer.echo("Note: Slurm and cron start the first slot; use `wattprint run --interruptible` to pause.")


@app.command("backtest")
def backtest_cmd(
    ctx: typer.Context,
    trace: Path = typer.Option(None, "--trace", help="Historical intensity trace (CSV/Parquet)."),
    jobs: list[str] = typer.Option(
        None,
        "--jobs",
        help="adhoc:DUR/WINDOW[:N] or nightly:DUR@HH:MM-HH:MM; repeatable "
        "(default adhoc:1h/8h:1000 and nightly:2h@22:00-06:00).",
    ),
    forecast_error: str = typer.Option("0", "--forecast-error", help="Forecast error, % of the mean intensity."),
    interruptible: bool = typer.Option(False, "--interruptible", help="Jobs may pause and resume."),
    min_chunk: str = typer.Option(None, "--min-chunk", help="Shortest run between pauses (interruptible)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of arrivals and forecast noise."),
    repeats: int = typer.Option(1, "--repeats", help="Noisy forecasts to average over."),
    tz: str = typer.Option(None, "--tz", help="Time zone of naive timestamps and of nightly windows (default UTC)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON document."),
) -> None:
    """Replay a trace with jobs; savings against running at once and against perfect foresight."""
    if trace is None:
        parent = ctx.parent.params.get("trace") if ctx.parent is not None else None
        trace = Path(parent[0]) if parent and len(parent) == 1 else None
    if trace is None:
        fail("--trace", "required: a CSV or Parquet file of gCO2e/kWh over time")
    text = forecast_error.strip().rstrip("%")
    try:
        error_pct = float(text)
    except ValueError:
        fail("--forecast-error", f"got {forecast_error!r}; expected a percentage such as 5 or 5%")
    if min_chunk is not None and not interruptible:
        fail("--min-chunk", "only applies with --interruptible")
    with flag_names():
        from wattprint.schedule.backtesting import backtest, parse_jobs

        specs = parse_jobs(jobs)
        series = _load_trace(trace, tz)
        report = backtest(
            series,
            specs,
            forecast_error_pct=error_pct,
            seed=seed,
            repeats=repeats,
            interruptible=interruptible,
            min_chunk=min_chunk,
            tz=tz,
            trace_name=trace.name,
        )
    if json_out:
        print_json(report.to_json())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Backtest {trace.name} ({report.region}), forecast error {error_pct:g}%, "
        f"{report.period[0][:10]} .. {report.period[1][:10]}",
        title_justify="left",
    )
    for h in (
        "jobs",
        "interruptible",
        "n",
        "at once g/kWh",
        "planned",
        "optimal",
        "savings %",
        "optimal savings %",
        "share of optimum %",
        "deadline misses",
    ):
        table.add_column(h, justify="left" if h == "jobs" else "right")
    for r in report.rows:
        table.add_row(
            r.jobs,
            "yes" if r.interruptible else "no",
            str(r.n),
            f"{r.baseline_intensity:.1f}",
            f"{r.planned_intensity:.1f}",
            f"{r.optimal_intensity:.1f}",
            f"{r.savings_pct:.2f}",
            f"{r.optimal_savings_pct:.2f}",
            f"{r.share_of_optimum_pct:.1f}",
            str(r.deadline_misses),
        )
    Console(file=sys.stdout, width=160).print(table)


# -- `wattprint run --within/--deadline` -------------------------------------------------------------
def learned_duration_s(store: Any, name: str) -> float | None:
    """Median duration of the last (up to 5) finished runs of this name, or None where there are none."""
    try:
        runs = store.list(status="finished", name=name, limit=5)
    except Exception as exc:  # any store fault: said as such, not taken for "no earlier runs"
        raise WattprintInputError(
            "--duration",
            f"needed to plan the run; the run store could not be read to learn it from earlier "
            f"runs ({type(exc).__name__}: {exc})",
        ) from None
    durations = [r.duration_s for r in runs if r.duration_s and r.duration_s > 0]
    return statistics.median(durations) if durations else None


def start_when_clean(
    *,
    within: str | None,
    deadline: str | None,
    earliest: str | None,
    interruptible: bool,
    min_chunk: str | None,
    trace: Path | None,
    duration: str | None,
    name: str,
    store: Any,
) -> Executor | None:
    """Plan the run and wait for its start. None when no scheduling option was given.

    Bad input exits 2 before anything runs; Ctrl-C or SIGTERM while waiting exits 130/143 with
    nothing run and nothing recorded.
    """
    if (
        within is None
        and deadline is None
        and earliest is None
        and not interruptible
        and min_chunk is None
        and trace is None
        and duration is None
    ):
        return None
    if within is not None and deadline is not None:
        fail("--within", "give --within or --deadline, not both")
    if within is None and deadline is None:
        fail(
            "--within",
            "give --within D or --deadline T to schedule the run (--trace, --earliest, --interruptible, "
            "--min-chunk and --duration need one)",
        )
    if trace is None:
        fail("--trace", "required to plan the run: a CSV or Parquet forecast of gCO2e/kWh covering the window")
    if min_chunk is not None and not interruptible:
        fail("--min-chunk", "only applies with --interruptible")
    with flag_names():
        from wattprint.schedule import parse_duration, parse_time, resolve_window
        from wattprint.schedule.execute import Cancelled, Executor, FileForecast
        from wattprint.schedule.grid import utc_now

        if duration is None:
            learned = learned_duration_s(store, name)
            if learned is None:
                fail("--duration", f"needed to plan the run: no finished run named {name!r} to learn it from")
            duration_s = learned
        else:
            duration_s = parse_duration(duration, "duration").total_seconds()
        now = utc_now()
        e = parse_time(earliest, "earliest") if earliest is not None else now
        if within is not None:
            w = resolve_window(duration_s, window=parse_duration(within, "within"), earliest=max(e, now), now=now)
        else:
            w = resolve_window(duration_s, deadline=deadline, earliest=max(e, now), now=now)
            if w.deadline <= now:
                fail("--deadline", f"{deadline} is in the past")
        m = parse_duration(min_chunk, "min_chunk").total_seconds() if min_chunk else 0.0
        forecast = FileForecast(trace, lambda p: _load_trace(p, None))
        executor = Executor(
            forecast,
            w.duration_s,
            w.deadline,
            earliest=w.earliest,
            interruptible=interruptible,
            min_chunk_s=m,
        )
    try:
        executor.wait_for_start()
    except Cancelled as exc:
        print(f"wattprint: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    return executor
