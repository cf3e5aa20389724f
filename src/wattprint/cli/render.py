"""Human-readable output of run records (rich tables, one-line summaries)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from wattprint.record import RunRecord
from wattprint.report.values import fmt_energy, fmt_mass


def fmt_range(record: RunRecord) -> str:
    """' (low-high)' of the total CO2e where the record has a range."""
    band = record.co2e_kg_range
    if not band:
        return ""
    return f" ({fmt_mass(band['low'])}-{fmt_mass(band['high'])})"


def method_label(record: RunRecord) -> str:
    """e.g. 'cpu: model (estimated), ram: model (estimated)'."""
    parts = []
    for component in ("cpu", "gpu", "ram"):
        source = getattr(record.measurement, component)
        if source:
            method = (record.methods.get(component) or {}).get("method") or "?"
            parts.append(f"{component}: {source} ({method})")
    return ", ".join(parts)


def summary_line(record: RunRecord) -> str:
    degraded = f"; degraded: {', '.join(sorted(record.degraded))}" if record.degraded else ""
    return (
        f"wattprint: {record.name} [{record.run_id[:8]}] {record.status}, {record.duration_s:.1f} s, "
        f"{fmt_energy(record.energy_kwh.total)}, {fmt_mass(record.co2e_kg.total)} CO2e{fmt_range(record)} "
        f"({record.region} {record.intensity_g_per_kwh:.0f} g/kWh, PUE {record.pue:g}; "
        f"{method_label(record)}){degraded}"
    )


def runs_table(records: list[RunRecord]) -> Table:
    table = Table(title="wattprint runs", show_lines=False)
    for column, justify in (
        ("run", "left"),
        ("name", "left"),
        ("status", "left"),
        ("started (UTC)", "left"),
        ("duration", "right"),
        ("energy", "right"),
        ("CO2e", "right"),
        ("region", "left"),
        ("method", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in records:
        kinds = {(r.methods.get(c) or {}).get("method") for c in ("cpu", "gpu", "ram")}
        # another tool's figures are neither measured nor estimated by wattprint: said as imported
        method = "imported" if "imported" in kinds else "estimated" if "estimated" in kinds else "measured"
        table.add_row(
            r.run_id[:8],
            r.name,
            r.status,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.duration_s:.1f} s",
            fmt_energy(r.energy_kwh.total),
            fmt_mass(r.co2e_kg.total),
            r.region,
            method,
        )
    return table


def record_table(r: RunRecord) -> Table:
    table = Table(title=f"run {r.run_id}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    rows: list[tuple[str, Any]] = [
        ("name", r.name),
        ("status", r.status + (f" (exit code {r.exit_code})" if r.exit_code is not None else "")),
        (
            "started / ended (UTC)",
            f"{r.started_at:%Y-%m-%d %H:%M:%S} / " + (f"{r.ended_at:%Y-%m-%d %H:%M:%S}" if r.ended_at else "-"),
        ),
        ("duration", f"{r.duration_s:.2f} s"),
        ("energy (tracked processes)", fmt_energy(r.energy_kwh.total)),
    ]
    for c in ("cpu", "gpu", "ram"):
        m = r.methods.get(c) or {}
        if getattr(r.measurement, c):
            rows.append(
                (
                    f"  {c}",
                    f"{fmt_energy(getattr(r.energy_kwh, c))} of machine "
                    f"{fmt_energy(getattr(r.machine_energy_kwh, c))}; {m.get('method')}: {m.get('detail')}",
                )
            )
    rows += [
        ("facility energy (x PUE)", f"{fmt_energy(r.facility_energy_kwh)} (PUE {r.pue:g}, {r.pue_source})"),
        ("region", f"{r.region} ({r.region_source})"),
        (
            "intensity",
            f"{r.intensity_g_per_kwh:.1f} gCO2e/kWh ({r.intensity_source})"
            + (f"; {r.intensity_note}" if r.intensity_note else ""),
        ),
        ("CO2e operational", fmt_mass(r.co2e_kg.operational)),
        ("CO2e embodied", fmt_mass(r.co2e_kg.embodied) + (f" ({r.embodied_note})" if r.embodied_note else "")),
        ("CO2e total", fmt_mass(r.co2e_kg.total) + fmt_range(r)),
    ]
    if r.sci:
        rows.append(("SCI", f"{r.sci['g_per_unit']:.4g} gCO2e per {r.sci['unit']}"))
    if r.attribution:
        share = r.attribution.get("cpu_share")
        rows.append(
            (
                "attribution",
                f"{r.attribution.get('mode')}" + (f", CPU share {share:.1%}" if isinstance(share, float) else ""),
            )
        )
        held, rule = r.attribution.get("host_share"), r.attribution.get("host_share_rule")
        if isinstance(held, float) and rule:
            rows.append(("host share (embodied)", f"{held:.4g}: {rule}"))
    rows += _machine_rows(r.hardware)
    for component, reason in sorted(r.degraded.items()):
        rows.append((f"degraded: {component}", reason))
    for key, value in sorted(r.metrics.items()):
        rows.append((f"metric: {key}", str(value)))
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def _machine_rows(hardware: dict[str, Any]) -> list[tuple[str, str]]:
    """What the record says about a virtual machine, and the setting that would sharpen its figures."""
    virt, guest = hardware.get("virtualization") or {}, hardware.get("guest")
    if not guest:
        return []
    where = ", ".join(str(v) for v in (virt.get("hypervisor"), virt.get("cloud"), guest.get("instance_type")) if v)
    rows = [("virtual machine", f"{where or 'guest'} ({virt.get('evidence')})")]
    if guest.get("sharpen"):
        rows.append(("to sharpen", str(guest["sharpen"])))
    return rows


def print_table(table: Table) -> None:
    console = Console()
    if not console.is_terminal:  # piped: do not wrap cells at 80 columns
        console = Console(width=200)
    console.print(table)
