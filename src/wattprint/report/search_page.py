"""One HTML page for a search's result: the candidates' metric against energy per inference and, where each was
trained, against training energy, with the Pareto fronts and a table.

It reads the JSON documents the searches write (`wattprint optimize -o`, `SearchResult.to_json_dict()`,
`NasResult.to_dict()`, `SubnetSearchResult.to_dict()`), so a result can be reported long after it
was computed, on another machine. Points whose energy was estimated are drawn hollow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from wattprint.errors import WattprintInputError
from wattprint.report import plots
from wattprint.report.html import _when, environment
from wattprint.report.pareto import Point, front_of
from wattprint.report.values import sig

KINDS = ("recipe search", "architecture search", "once-for-all sub-networks")
J_PER_MJ = 1e-3
LABEL_ALL_UP_TO = 6  # more candidates than this: only the front's points carry their names on the chart


def candidates_of(document: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The kind of search and its candidates (the recipe search's baseline first), each with a label."""
    if isinstance(document.get("trials"), list):
        kind, rows = KINDS[1], [dict(c) for c in document["trials"] if isinstance(c, Mapping)]
    elif isinstance(document.get("candidates"), list):
        rows = [dict(c) for c in document["candidates"] if isinstance(c, Mapping)]
        if isinstance(document.get("baseline"), Mapping):
            kind = KINDS[0]
            rows.insert(0, {**document["baseline"], "recipe": "baseline"})
        else:
            kind = KINDS[2]  # sub-networks of a supernet: candidates with a config and no baseline
    else:
        raise WattprintInputError(
            "document", "no 'candidates' or 'trials' list; accepted: a search result's JSON document"
        )
    for row in rows:
        row["label"] = str(row.get("recipe") or row.get("trial") or "?")
    return kind, [r for r in rows if _num(r.get("metric")) is not None]


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _chart(
    rows: Sequence[dict[str, Any]], cost: str, label: str, unit_j: float, maximize: bool
) -> tuple[str | None, list[str]]:
    """The chart of metric against `cost` (joules, shown in units of `unit_j`) and the labels on its front."""
    placed = [(i, r) for i, r in enumerate(rows) if _num(r.get(cost)) is not None]
    if not placed:
        return None, []
    front = front_of([Point(i, float(r[cost]), float(r["metric"])) for i, r in placed], maximize=maximize)
    on = {p.index for p in front}
    ordered = [rows[p.index] for p in front] + [r for i, r in placed if i not in on]
    points = [
        plots.ChartPoint(r["label"], float(r[cost]) / unit_j, float(r["metric"]), r.get("energy_method") != "measured")
        for r in ordered
    ]
    svg = plots.pareto_svg(
        points,
        on_front=set(range(len(front))),
        xlabel=f"{label} (hollow: estimated energy)",
        ylabel="metric (higher is better)" if maximize else "metric (lower is better)",
        title=f"metric vs {label.split(' (')[0]}",
        maximize=maximize,
        label_all=len(points) <= LABEL_ALL_UP_TO,
    )
    return svg, [rows[p.index]["label"] for p in front]


def search_html(document: Mapping[str, Any], *, title: str | None = None, maximize: bool = True) -> str:
    """The page for one search result document (see the module docs)."""
    kind, rows = candidates_of(document)
    inference_svg, inference_front = _chart(
        rows, "energy_per_inference_j", "energy per inference (mJ)", J_PER_MJ, maximize
    )
    train_svg, train_front = _chart(rows, "train_energy_j", "energy to train (J)", 1.0, maximize)
    table = [
        [
            r["label"],
            sig(float(r["metric"]), 4),
            _mj(r.get("energy_per_inference_j")),
            _vs_baseline(r),
            sig(float(r["train_energy_j"]), 3) if _num(r.get("train_energy_j")) is not None else "—",
            f"{int(r['macs']):,}" if _num(r.get("macs")) is not None else "—",
            str(r.get("energy_method") or "—"),
            ", ".join(n for n, f in (("inference", inference_front), ("training", train_front)) if r["label"] in f),
        ]
        for r in rows
    ]
    return (
        environment()
        .get_template("search.html.j2")
        .render(
            title=title or f"wattprint: {kind}",
            heading=title or kind[0].upper() + kind[1:],
            nav=[],
            count=len(rows),
            inference_svg=inference_svg,
            inference_front=inference_front,
            train_svg=train_svg,
            train_front=train_front,
            header=[
                "candidate",
                "metric",
                "energy / inference (mJ)",
                "vs baseline (range)",
                "energy to train (J)",
                "MACs",
                "energy",
                "front",
            ],
            rows=table,
            notes=[str(n) for n in document.get("notes", []) if n],
            generated=_when(datetime.now(timezone.utc)),
        )
    )


def _vs_baseline(row: Mapping[str, Any]) -> str:
    """The paired energy ratio to the baseline with its range over the rounds, ≈ when no measurable difference."""
    ratio = ((row.get("paired") or {}).get("ratios") or {}).get("energy")
    if not isinstance(ratio, Mapping) or _num(ratio.get("median")) is None:
        return "—"
    same = " ≈" if ratio.get("verdict") == "no measurable difference" else ""
    return f"{ratio['median']:.2f}x ({ratio['low']:.2f}-{ratio['high']:.2f}){same}"


def _mj(value: Any) -> str:
    number = _num(value)
    return "—" if number is None else sig(number / J_PER_MJ, 3)
