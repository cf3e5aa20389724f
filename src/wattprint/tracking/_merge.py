"""Merging the ranks' parts of a distributed job into one record (pure: parts in, one record out).

Each rank sends its own final record with its CPU time and resident memory. Per node, the leader's
node-wide CPU/RAM energy is divided among the node's ranks (CPU by CPU time, RAM by resident memory)
while GPU energy stays with the rank that read it; nodes sum their ranks, and the job sums its
nodes, so `nodes` and `ranks` each add up to the record's energy. A node's embodied emissions are
counted once, for its host and the GPUs its ranks used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wattprint.measure.base import COMPONENTS
from wattprint.record import Co2eKg, EnergyKwh, Measurement, RunRecord

__all__ = ["merge_parts"]

# the job's status is its worst rank's
_STATUS_RANK = {"finished": 0, "running": 1, "interrupted": 2, "failed": 3}

# how a node's CPU/RAM energy was measured, per mode of distributed.plan_measurement
_MODE_TEXT = {
    "launcher": "node leader, for the process tree of the local ranks' common parent (pid {pid})",
    "leader": "node leader, for its own process tree (the node's only rank)",
    "machine": "node leader, whole machine (attribution=machine)",
    "each-rank": "each rank, for its own process tree (the local ranks share no parent process)",
}


def _weights(values: Sequence[float]) -> list[float]:
    total = sum(values)
    if total <= 0:
        return [1.0 / len(values)] * len(values)
    return [v / total for v in values]


def _energy(parts: dict[str, float]) -> dict[str, float]:
    out = {c: parts.get(c, 0.0) for c in COMPONENTS}
    return out | {"total": sum(out.values())}


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in ("total", *COMPONENTS)}


def _merge_windows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Windows of the same name (and occurrence) in several ranks are one window of the job: summed."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for record in records:
        seen: dict[str, int] = {}
        for window in record.windows:
            n = seen[window["name"]] = seen.get(window["name"], -1) + 1
            key = (window["name"], n)
            if key not in merged:
                merged[key] = {
                    "name": window["name"],
                    "started_at": window["started_at"],
                    "duration_s": window["duration_s"],
                    "energy_kwh": dict(window["energy_kwh"]),
                    "ranks": 1,
                }
                continue
            into = merged[key]
            into["started_at"] = min(into["started_at"], window["started_at"])
            into["duration_s"] = max(into["duration_s"], window["duration_s"])
            into["energy_kwh"] = _add(into["energy_kwh"], window["energy_kwh"])
            into["ranks"] += 1
    return list(merged.values())


def _split_node(node_id: str, members: Sequence[dict[str, Any]], records: dict[int, RunRecord]) -> list[dict[str, Any]]:
    """Per-rank rows of one node; a leader's node-wide CPU/RAM energy is divided among the node's ranks."""
    own = {p["rank"]: dict(records[p["rank"]].energy_kwh) for p in members}
    leader = next((p for p in members if p["role"] == "node"), None)
    if leader is not None:
        measured = records[leader["rank"]].energy_kwh
        cpu_w = _weights([p["cpu_s"] for p in members])
        ram_w = _weights([float(p["rss_bytes"]) for p in members])
        for p, wc, wr in zip(members, cpu_w, ram_w, strict=True):
            own[p["rank"]]["cpu"], own[p["rank"]]["ram"] = measured.cpu * wc, measured.ram * wr
    rows = []
    for p in members:
        rec = records[p["rank"]]
        rows.append(
            {
                "rank": p["rank"],
                "node_id": node_id,
                "local_rank": p["local_rank"],
                "host": p["host"],
                "pid": p["pid"],
                "role": p["role"],
                "status": rec.status,
                "duration_s": rec.duration_s,
                "cpu_s": p["cpu_s"],
                "rss_bytes": p["rss_bytes"],
                "energy_kwh": _energy(own[p["rank"]]),
                "measured_energy_kwh": dict(rec.energy_kwh),
                "gpus": [g.get("name") for g in rec.hardware.get("gpus", [])],
                "gpu_rule": p["gpu_rule"],
            }
        )
    return rows


def _node_row(
    node_id: str, node: dict[str, Any], rows: list[dict[str, Any]], records: list[RunRecord], leader: RunRecord
) -> dict[str, Any]:
    """One node's energy (sum of its ranks), machine energy, and carbon with the host's embodied counted once."""
    from wattprint.accounting.embodied import host_figure, run_embodied
    from wattprint.accounting.uncertainty import record_range
    from wattprint.tracking.carbon import host_share

    energy = dict.fromkeys(("total", *COMPONENTS), 0.0)
    for row in rows:
        energy = _add(energy, row["energy_kwh"])
    # GPUs are each read by one rank: a sum; CPU/RAM readings all describe the same machine: the largest
    machine = {
        "gpu": sum(r.machine_energy_kwh.gpu for r in records),
        "cpu": max(r.machine_energy_kwh.cpu for r in records),
        "ram": max(r.machine_energy_kwh.ram for r in records),
    }
    if node["mode"] == "machine":
        share = host_share(leader.hardware, "machine", 1.0)[0]
    else:  # each rank holds its part of the machine (a VM's share already in it): their sum, counted once
        held = [r.attribution.get("host_share", r.attribution.get("cpu_share")) for r in records if r.measurement.cpu]
        share = min(1.0, sum(float(h or 0.0) for h in held))
    gpu_names = [g["name"] for r in records for g in r.hardware.get("gpus", []) if "name" in g]
    duration_s = max(r.duration_s for r in records)
    emb = run_embodied(duration_s, gpu_names=gpu_names, host=host_figure(leader.hardware), host_share=share)
    operational = sum(r.co2e_kg.operational for r in records)
    methods: dict[str, str | None] = {c: (leader.methods.get(c) or {}).get("method") for c in COMPONENTS}
    if any(r.measurement.gpu for r in records):
        methods["gpu"] = "measured"
    band = record_range(
        {c: energy[c] for c in COMPONENTS},
        methods,
        leader.intensity_g_per_kwh,
        leader.pue,
        embodied_kg=(emb.co2e_kg_low, emb.co2e_kg_high),
    )
    return {
        "node_id": node_id,
        "host": leader.host,
        "ranks": node["ranks"],
        "leader_rank": node["leader"],
        "energy_kwh": energy,
        "machine_energy_kwh": _energy(machine),
        "facility_energy_kwh": sum(r.facility_energy_kwh for r in records),
        "co2e_kg": {"operational": operational, "embodied": emb.co2e_kg, "total": operational + emb.co2e_kg},
        "co2e_kg_range": {"low": band["co2e_kg_low"], "high": band["co2e_kg_high"]},
        "embodied_note": emb.note,
        "measurement": leader.measurement.model_dump(),
        "region": leader.region,
        "pue": leader.pue,
        "intensity_g_per_kwh": leader.intensity_g_per_kwh,
        "mode": node["mode"],
        "tracked_pid": node["tree_pid"],
        "cpu_ram_measured_by": _MODE_TEXT[node["mode"]].format(pid=node["tree_pid"]),
    }


def merge_parts(parts: Sequence[dict[str, Any]], *, job_id: str, name: str, plan: dict[str, Any]) -> RunRecord:
    """One job record from every rank's part; nodes and ranks add up to its energy."""
    bad = [p for p in parts if "record" not in p]
    if bad:
        raise ValueError(f"rank {bad[0]['rank']} sent no record: {bad[0].get('error')}")
    parts = sorted(parts, key=lambda p: p["rank"])
    records = {p["rank"]: RunRecord.model_validate(p["record"]) for p in parts}
    first = records[parts[0]["rank"]]
    rank_rows: list[dict[str, Any]] = []
    node_rows: list[dict[str, Any]] = []
    for nid, node in plan["nodes"].items():
        members = [p for p in parts if p["rank"] in node["ranks"]]
        rows = _split_node(nid, members, records)
        rank_rows.extend(rows)
        node_rows.append(_node_row(nid, node, rows, [records[p["rank"]] for p in members], records[node["leader"]]))
    operational = sum(n["co2e_kg"]["operational"] for n in node_rows)
    embodied = sum(n["co2e_kg"]["embodied"] for n in node_rows)
    facility = sum(n["facility_energy_kwh"] for n in node_rows)
    total = dict.fromkeys(("total", *COMPONENTS), 0.0)
    machine_total = dict.fromkeys(("total", *COMPONENTS), 0.0)
    for row in node_rows:
        total = _add(total, row["energy_kwh"])
        machine_total = _add(machine_total, row["machine_energy_kwh"])
    all_records = [records[p["rank"]] for p in parts]
    measurement: dict[str, str | None] = {}
    for c in COMPONENTS:
        kinds = sorted({getattr(r.measurement, c) for r in all_records} - {None})
        measurement[c] = "+".join(kinds) if kinds else None
    methods = dict(first.methods)
    for c in COMPONENTS:
        for r in all_records:
            if getattr(r.measurement, c) is not None:
                methods[c] = r.methods.get(c)
                break
    degraded = {f"rank {p['rank']}: {k}": v for p in parts for k, v in records[p["rank"]].degraded.items()}
    status = max((r.status for r in all_records), key=lambda s: _STATUS_RANK.get(s, 0))
    exit_code = next((r.exit_code for r in all_records if r.exit_code), first.exit_code)
    metrics: dict[str, Any] = {}
    for r in reversed(all_records):  # rank 0's values win
        metrics.update(r.metrics)
    started = min(r.started_at for r in all_records)
    ended = [r.ended_at for r in all_records if r.ended_at is not None]
    t_total = total["total"]
    return first.model_copy(
        update={
            "run_id": job_id,
            "name": name,
            "status": status,
            "started_at": started,
            "ended_at": max(ended) if ended else None,
            "duration_s": (max(ended) - started).total_seconds() if ended else max(r.duration_s for r in all_records),
            "energy_kwh": EnergyKwh(**total),
            "machine_energy_kwh": EnergyKwh(**machine_total),
            "facility_energy_kwh": facility,
            "measurement": Measurement(**measurement),
            "methods": methods,
            "pue": facility / t_total if t_total > 0 else first.pue,
            "intensity_g_per_kwh": operational * 1000.0 / facility if facility > 0 else first.intensity_g_per_kwh,
            "co2e_kg": Co2eKg(operational=operational, embodied=embodied, total=operational + embodied),
            "co2e_kg_range": {
                "low": sum(n["co2e_kg_range"]["low"] for n in node_rows),
                "high": sum(n["co2e_kg_range"]["high"] for n in node_rows),
            },
            "embodied_note": "; ".join(f"{n['node_id']}: {n['embodied_note']}" for n in node_rows),
            "degraded": degraded,
            "exit_code": exit_code,
            "metrics": metrics,
            "samples": sum(r.samples for r in all_records),
            "windows": _merge_windows(all_records),
            "timeline": {},
            "nodes": node_rows,
            "ranks": rank_rows,
            "hardware": first.hardware
            | {"gpus": [g | {"rank": p["rank"]} for p in parts for g in records[p["rank"]].hardware.get("gpus", [])]},
            "distributed": {
                "job_id": job_id,
                "world_size": len(parts),
                "gather": "ok",
                "launcher": plan["peers"][0].get("launcher") if plan.get("peers") else None,
                "rank_split": "a node's CPU energy is divided among its ranks by their CPU time, RAM energy by "
                "resident memory; GPU energy stays with the rank that uses the GPU",
                "timeline": "per-rank timelines are not merged",
            },
        }
    )
