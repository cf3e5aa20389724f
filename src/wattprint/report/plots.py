"""Charts as inline SVG strings (matplotlib, no pyplot): pages stay self-contained and work offline.

Each function returns the `<svg>` element only (no XML prolog), ready to paste into HTML, or None
when the record has nothing to draw. Estimated quantities are drawn hatched or hollow so that a
chart never passes an estimate off as a measurement.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, NamedTuple

from wattprint._extras import require
from wattprint.record import RunRecord
from wattprint.report.pareto import cost_of, pareto_front
from wattprint.report.values import COMPONENTS, count_scale, energy_scale, mass_scale, metric_value, model_name, sig

COLORS = {"cpu": "#1f77b4", "gpu": "#d62728", "ram": "#2ca02c", "embodied": "#9467bd", "operational": "#ff7f0e"}


def _style() -> Any:
    """The charts' matplotlib settings, for a `with` block: text stays text in the SVG, a small font."""
    import matplotlib

    return matplotlib.rc_context(
        {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
    )


def _figure(width_in: float, height_in: float) -> Any:
    require("matplotlib", extra="report", feature="report charts")
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _svg(fig: Any, label: str) -> str:
    """The figure as one inline <svg> element with an accessible label."""

    buf = io.StringIO()
    with _style():
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    safe = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg ", f'<svg class="chart" role="img" aria-label="{safe}" ', 1)


def _method(record: RunRecord, component: str) -> str:
    return str((record.methods.get(component) or {}).get("method") or "unknown")


def power_svg(record: RunRecord) -> str | None:
    """Power of the tracked processes per component over time (each sample is the interval's mean)."""
    timeline = record.timeline or {}
    t_s = list(timeline.get("t_s") or [])
    if len(t_s) < 1:
        return None

    with _style():
        fig = _figure(7.0, 2.8)
        ax = fig.add_subplot()
        drawn = 0
        for c in COMPONENTS:
            power_w = list(timeline.get(f"{c}_w") or [])
            if len(power_w) != len(t_s) or not (getattr(record.measurement, c) or any(power_w)):
                continue
            # a sample holds the mean power over the interval that ends at its time: draw it as a step
            ax.step(
                [0.0, *t_s],
                [power_w[0], *power_w],
                where="pre",
                color=COLORS[c],
                linestyle="-" if _method(record, c) == "measured" else "--",
                label=f"{c.upper()} ({_method(record, c)}, {getattr(record.measurement, c) or '?'})",
            )
            drawn += 1
        if not drawn:
            return None
        ax.set_xlabel("time since start (s)")
        ax.set_ylabel("power (W)")
        ax.set_xlim(0.0, max(t_s) or 1.0)
        ax.set_ylim(bottom=0.0)
        ax.legend(loc="upper right", frameon=False)
        ax.set_title("Power of the tracked processes", loc="left")
    return _svg(fig, "power over time per component")


def breakdown_svg(record: RunRecord) -> str:
    """Energy per component (hatched when estimated) and CO2e operational + embodied with its range."""
    from matplotlib.ticker import MaxNLocator

    energies = {c: getattr(record.energy_kwh, c) for c in COMPONENTS if getattr(record.measurement, c)}
    e_scale = energy_scale(list(energies.values()) or [record.energy_kwh.total])
    co2 = record.co2e_kg
    band = record.co2e_kg_range or {}
    m_scale = mass_scale([co2.total, band.get("high")])
    with _style():
        fig = _figure(7.0, 2.4)
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[3, 2])
        names = list(energies) or ["total"]
        values = [energies.get(c, record.energy_kwh.total) * e_scale.factor for c in names]
        for i, (c, v) in enumerate(zip(names, values, strict=True)):
            estimated = _method(record, c) != "measured"
            ax1.barh(
                i,
                v,
                color=COLORS.get(c, "#777777"),
                hatch="//" if estimated else None,
                edgecolor="white" if estimated else None,
                label=f"{c.upper()} ({_method(record, c)})",
            )
            ax1.annotate(sig(v), (v, i), textcoords="offset points", xytext=(3, 0), va="center", fontsize=8)
        ax1.xaxis.set_major_locator(MaxNLocator(4))
        ax1.set_xlim(0.0, (max(values) or 1.0) * 1.25)
        ax1.set_yticks(range(len(names)), [n.upper() for n in names])
        ax1.invert_yaxis()
        ax1.set_xlabel(f"energy at the hardware ({e_scale.unit})")
        ax1.set_title("Energy by component (hatched: estimated)", loc="left")
        ax2.bar(0, co2.operational * m_scale.factor, color=COLORS["operational"], label="operational")
        ax2.bar(
            0,
            co2.embodied * m_scale.factor,
            bottom=co2.operational * m_scale.factor,
            color=COLORS["embodied"],
            label="embodied",
        )
        if "low" in band and "high" in band:
            total = co2.total * m_scale.factor
            ax2.errorbar(
                0,
                total,
                yerr=[
                    [max(total - band["low"] * m_scale.factor, 0.0)],
                    [max(band["high"] * m_scale.factor - total, 0.0)],
                ],
                color="black",
                capsize=6,
                label="range",
            )
        ax2.set_xticks([0], ["CO2e"])
        ax2.set_xlim(-1.2, 1.2)
        ax2.set_ylabel(f"CO2e ({m_scale.unit})")
        ax2.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        ax2.set_title("Carbon", loc="left")
    return _svg(fig, "energy breakdown by component and carbon with its range")


def tradeoff_svg(
    records: Sequence[RunRecord], *, metric: str = "accuracy", cost: str = "energy", maximize: bool = True
) -> str | None:
    """`metric` against energy (kWh) or FLOPs, one point per run, the Pareto front as a step line.

    Runs whose energy is estimated are drawn hollow. None when fewer than one run can be placed.
    """
    front = pareto_front(records, metric=metric, cost=cost, maximize=maximize)
    placed = front.on_front + front.dominated
    if not placed:
        return None
    xs = [cost_of(records[i], cost) or 0.0 for i in placed]
    if cost == "energy":
        scale = energy_scale(xs)
        xlabel = f"energy at the hardware ({scale.unit})"
    else:
        scale = count_scale(list(xs))
        xlabel = f"FLOPs ({scale.unit})" if scale.unit else "FLOPs"
    points = [
        ChartPoint(
            model_name(records[i]),
            x * scale.factor,
            metric_value(records[i], metric) or 0.0,
            cost == "energy"
            and any(_method(records[i], c) == "estimated" for c in COMPONENTS if getattr(records[i].measurement, c)),
        )
        for i, x in zip(placed, xs, strict=True)
    ]
    return pareto_svg(
        points,
        on_front=set(range(len(front.on_front))),
        xlabel=xlabel + (" (hollow: estimated energy)" if cost == "energy" else ""),
        ylabel=metric + (" (higher is better)" if maximize else " (lower is better)"),
        title=f"{metric} vs {'energy' if cost == 'energy' else 'FLOPs'}",
        maximize=maximize,
    )


class ChartPoint(NamedTuple):
    """One labelled point of a trade-off chart; `hollow` marks an estimated cost."""

    label: str
    x: float
    y: float
    hollow: bool = False


def pareto_svg(
    points: Sequence[ChartPoint],
    *,
    on_front: set[int],
    xlabel: str,
    ylabel: str,
    title: str,
    maximize: bool = True,
    label_all: bool = True,
) -> str:
    """Points (front ones, by index into `points`, in red and joined by a step line) against a cost; with
    `label_all` False only the front is labelled (many candidates: the table names the rest)."""
    with _style():
        fig = _figure(7.0, 3.6)
        ax = fig.add_subplot()
        for i, p in enumerate(points):
            color = "#d62728" if i in on_front else "#1f77b4"
            ax.scatter([p.x], [p.y], s=46, zorder=3, edgecolors=color, facecolors="none" if p.hollow else color)
            if label_all or i in on_front:
                ax.annotate(p.label, (p.x, p.y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        front = sorted((points[i] for i in on_front), key=lambda p: p.x)
        ax.step(
            [p.x for p in front],
            [p.y for p in front],
            where="post",
            color="#d62728",
            linewidth=1.2,
            label="Pareto front",
        )
        xs = [p.x for p in points]
        positive = [x for x in xs if x > 0]
        if positive and len(positive) == len(xs) and max(positive) / min(positive) > 100:
            ax.set_xscale("log")
        if len(set(xs)) == 1:
            x0 = xs[0] or 1.0
            ax.set_xlim(x0 * 0.5 if x0 > 0 else -1, x0 * 1.5 if x0 > 0 else 1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="lower right" if maximize else "upper right", frameon=False)
        ax.set_title(title, loc="left")
    return _svg(fig, f"{title} with the Pareto front")
