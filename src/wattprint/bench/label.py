"""An SVG energy label for one benchmark: model, task, hardware, energy per 1,000 queries, stars, method, date.

The label shows one batch size (the headline, by default the largest measured) large, and every measured
batch size in a small table below. It is plain SVG 1.1 with no scripts or external references, so it can be
attached to a model card or a paper as it is.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any
from xml.sax.saxutils import escape

from wattprint.files import MARK_COMMENT
from wattprint.report.values import fmt_energy, fmt_mass, sig

WIDTH = 380
ROW_H = 17  # one batch size in the table


def label_height(results: int) -> int:
    """Pixels tall for a table of `results` batch sizes: every one is listed."""
    return 382 + ROW_H * results + 70


GREEN, GREY, INK = "#2e7d32", "#c9c9c9", "#1b1b1b"


def _star(cx: float, cy: float, r: float, filled: bool) -> str:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = math.pi / 2 + i * math.pi / 5
        points.append(f"{cx + radius * math.cos(angle):.1f},{cy - radius * math.sin(angle):.1f}")
    fill = GREEN if filled else "none"
    return f'<polygon points="{" ".join(points)}" fill="{fill}" stroke="{GREEN}" stroke-width="1.5"/>'


def _text(x: float, y: float, text: str, size: int = 13, weight: str = "normal", anchor: str = "start") -> str:
    return (
        f'<text x="{x}" y="{y}" font-size="{size}" font-weight="{weight}" text-anchor="{anchor}" '
        f'fill="{INK}">{escape(text)}</text>'
    )


def _hardware(doc: dict[str, Any]) -> str:
    hw = doc.get("hardware") or {}
    parts = [str(hw.get("cpu_model") or "CPU")]
    gpus = [g for g in hw.get("gpus") or [] if isinstance(g, dict)]
    if gpus:
        names = sorted({str(g.get("name", "GPU")) for g in gpus})
        parts.append(f"{len(gpus)} x {', '.join(names)}")
    return "; ".join(parts)


def headline(doc: dict[str, Any], batch_size: int | None = None) -> dict[str, Any]:
    """The result the label shows large: `batch_size`'s, or the largest batch size measured."""
    results = doc["results"]
    if batch_size is None:
        return max(results, key=lambda r: r["batch_size"])
    for result in results:
        if result["batch_size"] == batch_size:
            return result
    from wattprint.errors import WattprintInputError

    sizes = ", ".join(str(r["batch_size"]) for r in results)
    raise WattprintInputError("label_batch_size", f"got {batch_size}; expected one of the measured {sizes}")


def render_label(doc: dict[str, Any], *, batch_size: int | None = None, when: datetime | None = None) -> str:
    """The SVG text of the label for a benchmark document (`wattprint bench --json`'s)."""
    main = headline(doc, batch_size)
    when = when or datetime.now(timezone.utc)
    rating = main.get("rating") or {}
    stars = rating.get("stars")
    sources = ", ".join(f"{c}: {s}" for c, s in sorted((main.get("energy_sources") or {}).items()))
    height = label_height(len(doc["results"]))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif">',
        MARK_COMMENT,
        f'<rect x="1" y="1" width="{WIDTH - 2}" height="{height - 2}" rx="10" fill="#ffffff" '
        f'stroke="{INK}" stroke-width="2"/>',
        f'<rect x="1" y="1" width="{WIDTH - 2}" height="46" rx="10" fill="{GREEN}"/>',
        f'<rect x="1" y="30" width="{WIDTH - 2}" height="17" fill="{GREEN}"/>',  # square lower corners
        '<text x="20" y="31" font-size="19" font-weight="bold" fill="#ffffff">Inference energy label</text>',
        _text(20, 76, "Model", 11),
        _text(20, 94, str(doc.get("model", "")), 15, "bold"),
        _text(20, 118, "Task", 11),
        _text(20, 136, f"{doc.get('task', '')} ({main['queries']:,} queries, batch size {main['batch_size']})", 13),
        _text(20, 160, "Hardware", 11),
        _text(20, 178, _hardware(doc)[:52], 13),
        f'<line x1="20" y1="196" x2="{WIDTH - 20}" y2="196" stroke="{GREY}"/>',
        _text(WIDTH / 2, 236, fmt_energy(main["kwh_per_1k_queries"]), 30, "bold", "middle"),
        _text(WIDTH / 2, 258, "per 1,000 queries, at the hardware", 12, anchor="middle"),
    ]
    if stars is not None:
        parts += [_star(WIDTH / 2 + (i - 2) * 38, 294, 15, i < stars) for i in range(5)]
        parts.append(
            _text(WIDTH / 2, 328, f"{stars} of 5 stars among {rating.get('models')} models", 11, anchor="middle")
        )
    else:
        parts.append(_text(WIDTH / 2, 300, "not rated", 14, "bold", "middle"))
        reason = str(rating.get("reason") or "no reference table asked for")
        parts.append(_text(WIDTH / 2, 318, reason[:64], 10, anchor="middle"))
        if len(reason) > 64:
            parts.append(_text(WIDTH / 2, 332, reason[64:128], 10, anchor="middle"))
    parts.append(f'<line x1="20" y1="344" x2="{WIDTH - 20}" y2="344" stroke="{GREY}"/>')
    parts.append(_text(20, 364, "batch", 11, "bold"))
    parts.append(_text(180, 364, "energy / 1,000 queries", 11, "bold", "end"))
    parts.append(_text(270, 364, "J / query", 11, "bold", "end"))
    parts.append(_text(WIDTH - 20, 364, "CO2e / 1,000", 11, "bold", "end"))
    y = 382
    for result in doc["results"]:
        parts += [
            _text(20, y, str(result["batch_size"]), 11),
            _text(180, y, fmt_energy(result["kwh_per_1k_queries"]), 11, anchor="end"),
            _text(270, y, sig(result["energy_j_per_query"]), 11, anchor="end"),
            _text(WIDTH - 20, y, fmt_mass(result["co2e_g_per_1k_queries"] / 1000.0), 11, anchor="end"),
        ]
        y += ROW_H
    method = f"{main['energy_method']} ({sources})" if sources else main["energy_method"]
    parts += [
        f'<line x1="20" y1="{y + 2}" x2="{WIDTH - 20}" y2="{y + 2}" stroke="{GREY}"/>',
        _text(20, y + 22, f"Energy: {method}"[:62], 11),
        _text(
            20,
            y + 40,
            f"Region {doc.get('region', '')}: {doc.get('g_co2e_per_kwh', 0):.0f} gCO2e/kWh "
            f"incl. PUE {doc.get('pue', 1):g}",
            11,
        ),
        _text(20, y + 58, f"{when:%Y-%m-%d} · run {str(doc.get('run_id', ''))[:12]} · wattprint", 11),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
