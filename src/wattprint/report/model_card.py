"""The "Environmental Impact" section of a Hugging Face model card, from one or more runs.

Several runs (pre-training, fine-tuning, a hyper-parameter search) are summed: hours, energy and
CO2e add up, and the range adds its lows and its highs. The card says how the energy was obtained,
so an estimate is never read as a measurement. The YAML front matter holds HF's `co2_eq_emissions`
metadata (emissions in grams).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from wattprint.record import RunRecord
from wattprint.report.values import (
    MISSING,
    cloud_provider,
    co2e_range_kg,
    component_sources,
    energy_method,
    fmt_energy,
    fmt_mass,
    hardware_label,
    sig,
)

_CLOUD_NAMES = {"gcp": "Google Cloud", "aws": "Amazon Web Services", "azure": "Microsoft Azure"}


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _yaml_str(text: str) -> str:
    """A double-quoted YAML scalar (escapes backslash, quote and control characters)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(ch if ch >= " " else f"\\x{ord(ch):02x}" for ch in escaped)
    return f'"{escaped}"'


def _md(text: str) -> str:
    """Plain text safe inside a Markdown list item (no HTML, no emphasis, one line)."""
    text = " ".join(text.split())
    for ch in "\\`*_[]<>|":
        text = text.replace(ch, "\\" + ch)
    return text


def _hours(records: Sequence[RunRecord]) -> str:
    hours = sum(r.duration_s for r in records) / 3600.0
    gpu_hours = sum(r.duration_s * len(r.hardware.get("gpus") or []) for r in records) / 3600.0
    text = f"{sig(hours)} h wall-clock"
    if gpu_hours:
        text += f" ({sig(gpu_hours)} GPU-hours)"
    return text


def _carbon(records: Sequence[RunRecord]) -> str:
    total = sum(r.co2e_kg.total for r in records)
    operational = sum(r.co2e_kg.operational for r in records)
    embodied = sum(r.co2e_kg.embodied for r in records)
    text = f"{fmt_mass(total)} CO2e"
    bands = [co2e_range_kg(r) for r in records]
    if all(b is not None for b in bands):
        low = sum(b[0] for b in bands if b)
        high = sum(b[1] for b in bands if b)
        text += f" (range {fmt_mass(low)} to {fmt_mass(high)})"
    text += f": operational {fmt_mass(operational)} + embodied hardware {fmt_mass(embodied)}"
    return text


def _intensity(records: Sequence[RunRecord]) -> str:
    parts = []
    for r in records:
        part = f"{r.region or MISSING}: {sig(r.intensity_g_per_kwh)} gCO2e/kWh"
        if r.intensity_source:
            part += f" ({r.intensity_source})"
        parts.append(part)
    return "; ".join(_unique(parts))


def _method(records: Sequence[RunRecord]) -> str:
    """e.g. 'estimated (cpu: model; ram: model)' or 'mixed (cpu: rapl; gpu: nvml; ram: model)'."""
    methods = _unique([energy_method(r) for r in records])
    overall = methods[0] if len(methods) == 1 else "mixed"
    overall = "mixed" if overall.startswith("mixed") else overall
    parts = _unique([f"{c}: {source}" for r in records for c, source, _m, _d in component_sources(r)])
    return f"{overall} ({'; '.join(parts)})" if parts else overall


def metadata(records: Sequence[RunRecord], *, training_type: str | None = None) -> dict[str, object]:
    """HF `co2_eq_emissions` metadata: emissions in grams CO2e (operational + embodied)."""
    if not records:
        raise ValueError("model card needs at least one run")
    meta: dict[str, object] = {
        "emissions": float(sig(sum(r.co2e_kg.total for r in records) * 1000.0, 4)),
        "source": f"wattprint, {_method(records)} energy",
        "geographical_location": ", ".join(_unique([r.region for r in records])) or MISSING,
        "hardware_used": ", ".join(_unique([hardware_label(r) for r in records])),
    }
    if training_type:
        meta["training_type"] = training_type
    return meta


def model_card_section(records: Sequence[RunRecord]) -> str:
    """The '## Environmental Impact' section in HF's model-card layout, plus wattprint's method lines."""
    if not records:
        raise ValueError("model card needs at least one run")
    regions = _unique([r.region for r in records])
    providers = _unique([cloud_provider(r.region) or "" for r in records])
    provider = ", ".join(_CLOUD_NAMES.get(p, p) for p in providers) if providers else "none (local or on-premises)"
    if providers and any(cloud_provider(r.region) is None for r in records):
        provider += " and local or on-premises machines"
    energy = sum(r.energy_kwh.total for r in records)
    facility = sum(r.facility_energy_kwh for r in records)
    pues = _unique([f"{r.pue:g}" for r in records])
    runs = ", ".join(f"{r.name} ({r.run_id[:8]})" for r in records)
    lines = [
        "## Environmental Impact",
        "",
        f"Energy and carbon were tracked with wattprint over {len(records)} run(s): {_md(runs)}.",
        "",
        f"- **Hardware Type:** {_md(', '.join(_unique([hardware_label(r) for r in records])))}",
        f"- **Hours used:** {_hours(records)}",
        f"- **Cloud Provider:** {_md(provider)}",
        f"- **Compute Region:** {_md(', '.join(regions) or MISSING)}",
        f"- **Carbon Emitted:** {_carbon(records)}",
        f"- **Energy:** {fmt_energy(energy)} at the hardware; {fmt_energy(facility)} with PUE {'/'.join(pues)}",
        f"- **Method:** energy {_md(_method(records))}; carbon intensity {_md(_intensity(records))}",
    ]
    degraded = _unique([f"{r.run_id[:8]} {c}: {why}" for r in records for c, why in sorted(r.degraded.items())])
    if degraded:
        lines.append(f"- **Caveats:** {_md('; '.join(degraded))}")
    return "\n".join(lines) + "\n"


def _metadata_block(records: Sequence[RunRecord], training_type: str | None) -> list[str]:
    """The `co2_eq_emissions:` key of the front matter, as YAML lines."""
    lines = ["co2_eq_emissions:"]
    for key, value in metadata(records, training_type=training_type).items():
        lines.append(f"  {key}: {value if isinstance(value, float) else _yaml_str(str(value))}")
    return lines


def model_card(records: Sequence[RunRecord], *, training_type: str | None = None) -> str:
    """A model card holding the `co2_eq_emissions` front matter and the Environmental Impact section."""
    return "\n".join(["---", *_metadata_block(records, training_type), "---"]) + "\n\n" + model_card_section(records)


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")  # an ATX heading: level, text
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_KEY = re.compile(r"""^["']?co2_eq_emissions["']?\s*:""")


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, text) of the ATX headings outside fenced code blocks."""
    out = []
    fence: str | None = None
    for i, line in enumerate(lines):
        opened = _FENCE.match(line)
        if opened:
            fence = None if fence == opened.group(1) else (fence or opened.group(1))
            continue
        heading = _HEADING.match(line) if fence is None else None
        if heading:
            out.append((i, len(heading.group(1)), heading.group(2)))
    return out


def merge_model_card(existing: str, records: Sequence[RunRecord], *, training_type: str | None = None) -> str:
    """`existing` (a model card, or any Markdown file) with wattprint's parts put in and nothing else changed:
    the `co2_eq_emissions` key of its YAML front matter replaced or added (other keys, their order and
    comments kept; a front matter added if there is none) and its "Environmental Impact" section (a level 2
    or 3 heading outside code blocks, up to the next heading of its level or above) replaced, or appended at
    the end. Merging again with the same runs gives the same text."""
    lines = existing.removeprefix("\ufeff").splitlines()
    front: list[str] = []
    body = lines
    had_front = False
    if lines and lines[0].rstrip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
        if end is not None:
            front, body, had_front = lines[1:end], lines[end + 1 :], True
    front = _without_key(front) + _metadata_block(records, training_type)
    section = model_card_section(records).rstrip("\n").splitlines()
    headings = _headings(body)
    found = next(((i, level) for i, level, text in headings if level in (2, 3) and _is_impact(text)), None)
    if found is None:
        while body and not body[-1].strip():
            body = body[:-1]
        body = [*body, "", *section] if body else section
    else:
        start, level = found
        end = next((i for i, lv, _ in headings if i > start and lv <= level), len(body))
        tail = body[end:]
        body = [*body[:start], *section, *([""] if tail else []), *tail]
    head = ["---", *front, "---"]
    if not had_front and body and body[0].strip():  # a new front matter: a blank line before the text
        head.append("")
    return "\n".join(head + body).rstrip("\n") + "\n"


def _is_impact(text: str) -> bool:
    return " ".join(text.lower().split()) == "environmental impact"


def _without_key(front: list[str]) -> list[str]:
    """YAML lines without the top-level `co2_eq_emissions` key (however written) and the indented lines (and
    blank lines among them) under it."""
    out: list[str] = []
    skipping = False
    for line in front:
        if skipping and (not line.strip() or line[:1] in (" ", "\t")):
            continue
        skipping = bool(_KEY.match(line))
        if not skipping:
            out.append(line)
    return out
