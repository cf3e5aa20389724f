"""Self-contained HTML reports: one run, or a comparison of several (Jinja2 templates, inline SVG).

No script, no stylesheet or font from elsewhere: a report opens offline and can be mailed as one file.
The dashboard renders the same pages with a navigation bar and links between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wattprint._extras import require
from wattprint.record import RunRecord
from wattprint.report import plots
from wattprint.report.pareto import front_overlaps, pareto_front
from wattprint.report.tables import runs_table
from wattprint.report.values import (
    MISSING,
    co2e_range_kg,
    component_sources,
    energy_method,
    fmt_energy,
    fmt_mass,
    fmt_metric,
    hardware_label,
    metric_value,
    model_name,
    number,
    sig,
)

TEMPLATES = Path(__file__).parent / "templates"
Nav = Sequence[tuple[str, str]]  # (label, href) links shown at the top of a page


def environment(*extra_dirs: Path) -> Any:
    """A Jinja2 environment over `extra_dirs` then the report templates, HTML-escaping by default."""
    jinja2 = require("jinja2", extra="report", feature="HTML reports")
    loader = jinja2.FileSystemLoader([*map(str, extra_dirs), str(TEMPLATES)])
    env = jinja2.Environment(
        loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )
    env.globals.update(fmt_energy=fmt_energy, fmt_mass=fmt_mass, sig=sig, missing=MISSING, when=_when)
    return env


def _when(value: datetime | None) -> str:
    if value is None:
        return MISSING
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _flat(value: Any) -> str:
    """A hardware or metric value as short text."""
    if isinstance(value, list):
        return "; ".join(_flat(v) for v in value) or MISSING
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_flat(v)}" for k, v in value.items())
    if isinstance(value, float):
        return fmt_metric(value) if number(value) is not None else str(value)
    return str(value)


def _window_kwh(energy: Any) -> Any:
    """A window's total: `{"total": ...}` as the tracker writes it, or a bare number from other writers."""
    return energy.get("total") if isinstance(energy, dict) else energy


def run_context(record: RunRecord) -> dict[str, Any]:
    """Everything the run page shows, as plain values (also used by the dashboard's JSON)."""
    components = []
    for c, source, method, detail in component_sources(record):
        components.append(
            {
                "name": c,
                "source": source,
                "method": method,
                "detail": detail,
                "energy": fmt_energy(getattr(record.energy_kwh, c)),
                "machine_energy": fmt_energy(getattr(record.machine_energy_kwh, c)),
            }
        )
    band = co2e_range_kg(record)
    return {
        "record": record,
        "model": model_name(record),
        "method": energy_method(record),
        "components": components,
        "hardware_label": hardware_label(record),
        "hardware": [(k, _flat(v)) for k, v in (record.hardware or {}).items()],
        "metrics": [(k, _flat(v)) for k, v in sorted(record.metrics.items())],
        "co2e_range": None if band is None else f"{fmt_mass(band[0])} to {fmt_mass(band[1])}",
        "windows": [
            {
                "name": str(w.get("name", "")),
                "duration_s": number(w.get("duration_s")),
                "energy": fmt_energy(number(_window_kwh(w.get("energy_kwh"))) or 0.0),
            }
            for w in record.windows
        ],
        "bench": _bench(record.bench or {}),
        "serving": _serving((record.bench or {}).get("serving") or {}),
        "nodes": [_part(n, ", ".join(str(r) for r in n.get("ranks", []))) for n in record.nodes],
        "ranks": [_part(r, str(r.get("rank", ""))) for r in record.ranks],
    }


def _bench(bench: dict[str, Any]) -> dict[str, Any] | None:
    """A `wattprint bench` run's figures per batch size, as text for the run page (None for other runs)."""
    results = [r for r in bench.get("results") or [] if isinstance(r, dict)]
    if not results:
        return None
    generation = any("j_per_decode_token" in r for r in results)

    def num(value: Any, digits: int = 3) -> str:
        found = number(value)
        return MISSING if found is None else sig(found, digits)

    rows = []
    for r in results:
        latency = r.get("latency_ms") or {}
        low_high = r.get("energy_j_per_query_range") or [None, None]
        row = {
            "batch_size": str(r.get("batch_size", "")),
            "queries": str(r.get("queries", "")),
            "j_per_query": num(r.get("energy_j_per_query")),
            "range": f"{num(low_high[0], 2)} to {num(low_high[-1], 2)}",
            "per_1k": fmt_energy(number(r.get("kwh_per_1k_queries")) or 0.0),
            "co2e_per_1k": fmt_mass((number(r.get("co2e_g_per_1k_queries")) or 0.0) / 1000.0),
            "p50": num(latency.get("p50")),
            "p95": num(latency.get("p95")),
            "qps": num(r.get("throughput_qps")),
            "spread": f"{num(r.get('spread_pct'), 2)} %",
            "method": str(r.get("energy_method", "")),
        }
        if generation:
            row |= {
                "prefill": num(r.get("j_per_prefill_token")),
                "decode": num(r.get("j_per_decode_token")),
                "ttft": num(r.get("ttft_ms")),
            }
        rows.append(row)
    inputs = bench.get("inputs") or {}
    return {
        "task": str(bench.get("task", "")),
        "model": str(bench.get("model", "")),
        "inputs": str(inputs.get("id", "")),
        "generation": generation,
        "rows": rows,
    }


def _serving(serving: dict[str, Any]) -> dict[str, Any] | None:
    """The ASGI middleware's per-route totals, as text for the run page (None for other runs)."""
    routes = serving.get("routes") or {}
    if not routes:
        return None
    rows = []
    for route, row in sorted(routes.items()):
        requests = number(row.get("requests")) or 0
        energy_j = number(row.get("energy_j")) or 0.0
        rows.append(
            {
                "route": str(route),
                "requests": f"{requests:,.0f}",
                "energy": fmt_energy(energy_j / 3.6e6),
                "per_request": f"{sig(energy_j / requests)} J" if requests else MISSING,
                "tokens": f"{number(row.get('tokens')) or 0:,.0f}",
            }
        )
    unattributed = number(serving.get("unattributed_j")) or 0.0
    return {"rule": str(serving.get("rule", "")), "rows": rows, "unattributed": fmt_energy(unattributed / 3.6e6)}


def _part(part: dict[str, Any], label: str) -> dict[str, Any]:
    """One node or rank of a distributed run, for the breakdown table."""
    energy = part.get("energy_kwh") or {}
    return {
        "node_id": str(part.get("node_id", "")),
        "label": label,
        "energy": {c: fmt_energy(number(energy.get(c)) or 0.0) for c in ("total", "cpu", "gpu", "ram")},
    }


def run_html(record: RunRecord, *, nav: Nav = (), env: Any = None) -> str:
    """The report page of one run: power over time, energy breakdown, carbon with range, method."""
    env = env or environment()
    return env.get_template("run.html.j2").render(
        title=f"{model_name(record)} · wattprint run {record.run_id[:8]}",
        nav=list(nav),
        power_svg=plots.power_svg(record),
        breakdown_svg=plots.breakdown_svg(record),
        generated=_when(datetime.now(timezone.utc)),
        **run_context(record),
    )


def comparison_html(
    records: Sequence[RunRecord],
    *,
    metric: str = "accuracy",
    maximize: bool = True,
    nav: Nav = (),
    run_href: Callable[[RunRecord], str] | None = None,
    env: Any = None,
) -> str:
    """Several runs side by side: metric vs energy and vs FLOPs with the Pareto front, and the table."""
    if not records:
        raise ValueError("a comparison needs at least one run")
    env = env or environment()
    table = runs_table(records, metric=metric, maximize=maximize)
    by_energy = pareto_front(records, metric=metric, cost="energy", maximize=maximize)
    by_flops = pareto_front(records, metric=metric, cost="flops", maximize=maximize)
    on_energy, on_flops = set(by_energy.on_front), set(by_flops.on_front)
    rows = []
    for i, (r, cells) in enumerate(zip(records, table.rows, strict=True)):
        rows.append(
            {
                "cells": cells,
                "href": run_href(r) if run_href else None,
                "run_id": r.run_id,
                "front": ", ".join(n for n, s in (("energy", on_energy), ("FLOPs", on_flops)) if i in s) or "",
            }
        )
    without_metric = [model_name(r) for r in records if metric_value(r, metric) is None]
    placed_flops = by_flops.on_front + by_flops.dominated
    return env.get_template("comparison.html.j2").render(
        title=f"wattprint: comparison of {len(records)} runs",
        nav=list(nav),
        metric=metric,
        maximize=maximize,
        header=table.header,
        rows=rows,
        notes=[*table.notes, *front_overlaps(records, by_energy.on_front)],
        energy_svg=plots.tradeoff_svg(records, metric=metric, cost="energy", maximize=maximize),
        flops_svg=plots.tradeoff_svg(records, metric=metric, cost="flops", maximize=maximize),
        front_energy=[model_name(records[i]) for i in by_energy.on_front],
        front_flops=[model_name(records[i]) for i in by_flops.on_front],
        without_metric=without_metric,
        without_flops=[
            model_name(r)
            for i, r in enumerate(records)
            if i not in placed_flops and metric_value(r, metric) is not None
        ],
        total_energy=fmt_energy(sum(r.energy_kwh.total for r in records)),
        total_co2e=fmt_mass(sum(r.co2e_kg.total for r in records)),
        methods=sorted({energy_method(r) for r in records}),
        generated=_when(datetime.now(timezone.utc)),
    )
