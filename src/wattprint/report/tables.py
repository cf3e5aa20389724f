"""Markdown and LaTeX tables of runs, ready for a README or a paper's appendix.

Columns: model, the chosen metric, parameters, FLOPs, energy, CO2e with its range, hardware, region,
and how the energy was obtained (measured by a hardware counter, or estimated by a model). Each
numeric column has one unit, chosen for the column and written in its header. Missing values are "—".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wattprint.files import MARK_COMMENT
from wattprint.record import RunRecord
from wattprint.report.values import (
    MISSING,
    Scale,
    co2e_range_kg,
    count_scale,
    energy_method,
    energy_scale,
    flops_of,
    fmt_metric,
    hardware_label,
    mass_scale,
    metric_value,
    model_name,
    params_of,
    scaled,
)

NOTES = (
    "Energy: at the hardware, before PUE.",
    "CO2e: operational + embodied, with the low-high range in brackets.",
    "Method: measured = hardware energy counter (RAPL, NVML); estimated = power model.",
)


@dataclass(frozen=True)
class Table:
    """A table as plain cells: one header row, body rows, notes shown under it."""

    header: list[str]
    rows: list[list[str]]
    notes: tuple[str, ...] = NOTES


def metric_header(metric: str, *, maximize: bool = True) -> str:
    return metric.replace("_", " ").capitalize() + (" ↑" if maximize else " ↓")


def runs_table(records: Sequence[RunRecord], *, metric: str = "accuracy", maximize: bool = True) -> Table:
    """The comparison table of `records`, one row each, in the given order."""
    energies = [r.energy_kwh.total for r in records]
    masses = [r.co2e_kg.total for r in records]
    params = [params_of(r) for r in records]
    flops = [flops_of(r) for r in records]
    e_scale, m_scale = energy_scale(energies), mass_scale(masses)
    p_scale, f_scale = count_scale(params), count_scale(flops)
    header = [
        "Model",
        metric_header(metric, maximize=maximize),
        f"Params ({p_scale.unit})" if p_scale.unit else "Params",
        f"FLOPs ({f_scale.unit})" if f_scale.unit else "FLOPs",
        f"Energy ({e_scale.unit})",
        f"CO2e ({m_scale.unit})",
        "Hardware",
        "Region",
        "Method",
    ]
    rows = []
    for r, energy, mass, p, f in zip(records, energies, masses, params, flops, strict=True):
        band = co2e_range_kg(r)
        co2 = scaled(mass, m_scale)
        if band is not None:
            co2 += f" [{scaled(band[0], m_scale)}, {scaled(band[1], m_scale)}]"
        model = model_name(r) + ("" if r.status == "finished" else f" ({r.status})")
        rows.append(
            [
                model,
                fmt_metric(metric_value(r, metric)),
                _count(p, p_scale),
                _count(f, f_scale),
                scaled(energy, e_scale),
                co2,
                hardware_label(r),
                r.region or MISSING,
                energy_method(r),
            ]
        )
    return Table(header, rows)


def _count(value: float | None, scale: Scale) -> str:
    """A count in the column's unit; whole numbers without a prefix stay whole (55, not 55.0)."""
    if value is not None and not scale.unit and float(value).is_integer():
        return str(int(value))
    return scaled(value, scale)


# -- Markdown --------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    """A cell on one line, with the pipe escaped so it cannot split the row, and < and > as entities: Markdown
    renderers pass raw HTML through, so a run named `<img src=x onerror=...>` would run in the page."""
    text = " ".join(text.split()).replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|")


def to_markdown(table: Table) -> str:
    """GitHub-flavoured Markdown: text columns left-aligned, numeric columns right-aligned, notes after."""
    align = [":---", "---:", "---:", "---:", "---:", "---:", ":---", ":---", ":---"]
    lines = [
        "| " + " | ".join(_md_cell(h) for h in table.header) + " |",
        "| " + " | ".join(align[: len(table.header)]) + " |",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines += ["", " ".join(table.notes)]
    return "\n".join(lines) + "\n"


def markdown_table(records: Sequence[RunRecord], *, metric: str = "accuracy", maximize: bool = True) -> str:
    # the mark is invisible where the Markdown is rendered; it lets a later report replace this file
    return to_markdown(runs_table(records, metric=metric, maximize=maximize)) + f"\n{MARK_COMMENT}\n"


# -- LaTeX -----------------------------------------------------------------------------------------

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "---",
    "–": "--",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
}


def latex_escape(text: str) -> str:
    """`text` with every LaTeX special character written so that it prints as itself."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in " ".join(text.split()))


def _latex_header(cell: str) -> str:
    return latex_escape(cell).replace("CO2e", r"CO\textsubscript{2}e")


def to_latex(table: Table, *, caption: str = "Energy and carbon of the runs.", label: str = "tab:wattprint") -> str:
    """A booktabs `table` float (needs \\usepackage{booktabs}); notes in the caption."""
    spec = "lrrrrrlll"[: len(table.header)]
    notes = " ".join(table.notes)
    lines = [
        r"% generated by wattprint; needs \usepackage{booktabs}",
        r"\begin{table}[ht]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(_latex_header(h) for h in table.header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{latex_escape(caption)} {_latex_header(notes)}}}",
        rf"\label{{{latex_escape(label)}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def latex_table(records: Sequence[RunRecord], *, metric: str = "accuracy", maximize: bool = True) -> str:
    return to_latex(runs_table(records, metric=metric, maximize=maximize))
