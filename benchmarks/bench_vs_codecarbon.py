"""The same CPU job measured by wattprint and CodeCarbon in one process, side by side, with the reasons they differ.

Each round runs one busy job (pure Python on one thread, JOB_S seconds of wall time) under three trackers started
and stopped together: CodeCarbon's OfflineEmissionsTracker(country_iso_code="FRA"), wattprint with its defaults
(a virtual machine is detected and charged its vCPUs' share of the host) and wattprint with WATTPRINT_VIRTUAL=host
(the whole-machine TDP model, what wattprint did before VM detection). The table gives energy per component, the
intensity, operational and embodied CO2e, and the ratios to CodeCarbon; the reasons are read off each tool's own
figures (its CPU and RAM watts, its intensity). Results: benchmarks/results/vs_codecarbon.{json,md}.

Usage: python benchmarks/bench_vs_codecarbon.py [--job-s 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from _common import machine_info, machine_markdown, markdown_table, print_table, write_results

WP, WP_HOST, CC = "wattprint", "wattprint, VIRTUAL=host", "CodeCarbon"


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def one_round(job_s: float) -> dict[str, dict[str, Any]]:
    import codecarbon

    import wattprint

    cc = codecarbon.OfflineEmissionsTracker(
        country_iso_code="FRA", save_to_file=False, log_level="error", measure_power_secs=1
    )
    trackers = {
        WP: wattprint.Tracker("vs-codecarbon", region="FR", interval=1.0),
        WP_HOST: wattprint.Tracker("vs-codecarbon", region="FR", interval=1.0, virtual="host"),
    }
    cc.start()
    for t in trackers.values():
        t.start()
    busy(job_s)
    records = {name: t.stop() for name, t in trackers.items()}
    cc.stop()
    d = cc.final_emissions_data
    out: dict[str, dict[str, Any]] = {
        CC: {
            "duration_s": d.duration,
            "cpu_kwh": d.cpu_energy,
            "ram_kwh": d.ram_energy,
            "energy_kwh": d.energy_consumed,
            "cpu_w": d.cpu_power,
            "ram_w": d.ram_power,
            "intensity_g_per_kwh": d.emissions / d.energy_consumed * 1000 if d.energy_consumed else float("nan"),
            "operational_g": d.emissions * 1000,
            "embodied_g": 0.0,
            "cpu_rule": f"{d.tracking_mode} mode, CPU '{d.cpu_model}'",
            "ram_rule": f"{d.ram_total_size:.1f} GB of RAM",
        }
    }
    for name, r in records.items():
        out[name] = {
            "duration_s": r.duration_s,
            "cpu_kwh": r.energy_kwh.cpu,
            "ram_kwh": r.energy_kwh.ram,
            "energy_kwh": r.energy_kwh.total,
            "cpu_w": r.energy_kwh.cpu * 3.6e6 / r.duration_s,
            "ram_w": r.energy_kwh.ram * 3.6e6 / r.duration_s,
            "intensity_g_per_kwh": r.intensity_g_per_kwh,
            "operational_g": r.co2e_kg.operational * 1000,
            "embodied_g": r.co2e_kg.embodied * 1000,
            "cpu_rule": r.methods["cpu"]["detail"],
            "ram_rule": r.methods["ram"]["detail"]
            + f"; charged the job's resident share ({r.attribution['ram_share']:.2%})",
            "host_share": r.attribution["host_share"],
            "host_share_rule": r.attribution["host_share_rule"],
            "embodied_note": r.embodied_note,
            "cpu_share": r.attribution["cpu_share"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-s", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    os.environ["WATTPRINT_HOME"] = tempfile.mkdtemp(prefix="wp-vs-cc-")
    rounds = []
    for i in range(args.rounds):
        rounds.append(one_round(args.job_s))
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
    keys = ("cpu_kwh", "ram_kwh", "energy_kwh", "cpu_w", "ram_w", "intensity_g_per_kwh", "operational_g", "embodied_g")
    med = {tool: {k: statistics.median(r[tool][k] for r in rounds) for k in keys} for tool in (CC, WP, WP_HOST)}
    total = {tool: med[tool]["operational_g"] + med[tool]["embodied_g"] for tool in med}
    headers = ["figure (median of rounds)", CC, WP, "ratio to CC", WP_HOST, "ratio to CC"]
    rows = []
    for key, label in (
        ("cpu_w", "CPU W"),
        ("ram_w", "RAM W"),
        ("energy_kwh", "energy, Wh"),
        ("intensity_g_per_kwh", "intensity, g/kWh"),
        ("operational_g", "operational CO2e, g"),
        ("embodied_g", "embodied CO2e, g"),
    ):
        scale = 1000.0 if key == "energy_kwh" else 1.0
        c, w, h = (med[t][key] * scale for t in (CC, WP, WP_HOST))
        rows.append(
            [label, f"{c:.4g}", f"{w:.4g}", f"{w / c:.2f}x" if c else "-", f"{h:.4g}", f"{h / c:.2f}x" if c else "-"]
        )
    c, w, h = total[CC], total[WP], total[WP_HOST]
    rows.append(["total CO2e, g", f"{c:.4g}", f"{w:.4g}", f"{w / c:.2f}x", f"{h:.4g}", f"{h / c:.2f}x"])
    title = f"The same {args.job_s:g} s single-thread CPU job, three trackers in one process ({args.rounds} rounds)"
    print_table(title, headers, rows)
    last = rounds[-1]
    reasons = [
        f"CPU, {CC}: {med[CC]['cpu_w']:.3g} W ({last[CC]['cpu_rule']}); {WP}: {med[WP]['cpu_w']:.3g} W charged "
        f"(share of the machine's busy CPU time {last[WP]['cpu_share']:.0%}) by {last[WP]['cpu_rule']}; "
        f"{WP_HOST}: {med[WP_HOST]['cpu_w']:.3g} W by {last[WP_HOST]['cpu_rule']}",
        f"RAM, {CC}: {med[CC]['ram_w']:.3g} W ({last[CC]['ram_rule']}); {WP}: {med[WP]['ram_w']:.3g} W "
        f"({last[WP]['ram_rule']})",
        f"intensity: {CC} {med[CC]['intensity_g_per_kwh']:.1f} g/kWh for FRA, "
        f"{WP} {med[WP]['intensity_g_per_kwh']:.1f} g/kWh for FR (its bundled yearly figure; see data/SOURCES.md)",
        f"embodied: {CC} has none; {WP} charges {last[WP]['embodied_note']} (host share {last[WP]['host_share']:.4g}: "
        f"{last[WP]['host_share_rule']}); {WP_HOST}: {last[WP_HOST]['embodied_note']} "
        f"({last[WP_HOST]['host_share_rule']})",
    ]
    for line in reasons:
        print("- " + line)
    info = machine_info()
    data = {"machine": info, "job_s": args.job_s, "rounds": rounds, "median": med, "total_g": total, "reasons": reasons}
    markdown = "\n\n".join(
        [
            f"# {title}",
            machine_markdown(info),
            markdown_table(headers, rows),
            "## Why the figures differ\n\n" + "\n".join("- " + line for line in reasons),
        ]
    )
    path = write_results("vs_codecarbon", data, markdown)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
