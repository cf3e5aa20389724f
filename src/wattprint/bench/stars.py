"""1-5 star ratings of a benchmark result against a reference table the user keeps.

The rule, after Hugging Face's AI Energy Score: within one task, one input set and one batch size, the range
of kWh per 1,000 queries from the least to the most energy of the reference models (this run's model among
them) is cut into five bins of equal width; the least-energy bin gets 5 stars, the most-energy bin 1 star.
A rating needs at least `MIN_MODELS` models with different figures; otherwise it is left out, with the reason.

A reference table is either the store's finished benchmark runs (the latest per model) or a CSV file with
the columns `model,task,inputs_id,batch_size,kwh_per_1k_queries` (other columns are ignored).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattprint.errors import WattprintInputError

MIN_MODELS = 3
BINS = 5
CSV_COLUMNS = ("model", "task", "inputs_id", "batch_size", "kwh_per_1k_queries")


@dataclass(frozen=True)
class Reference:
    """One model's figure on one task, input set and batch size."""

    model: str
    task: str
    inputs_id: str
    batch_size: int
    kwh_per_1k_queries: float


def references_from_records(records: Iterable[Any]) -> list[Reference]:
    """References from stored run records that carry a benchmark (`record.bench`); newest record per model,
    task, inputs and batch size first wins. Only finished runs count."""
    seen: set[tuple[str, str, str, int]] = set()
    out: list[Reference] = []
    for rec in sorted(records, key=lambda r: r.started_at, reverse=True):
        bench = getattr(rec, "bench", None) or {}
        if rec.status != "finished" or not bench.get("results"):
            continue
        inputs_id = str((bench.get("inputs") or {}).get("id", ""))
        for result in bench["results"]:
            key = (str(bench.get("model")), str(bench.get("task")), inputs_id, int(result["batch_size"]))
            if key in seen:
                continue
            seen.add(key)
            out.append(Reference(*key, float(result["kwh_per_1k_queries"])))
    return out


def references_from_csv(path: str | Path) -> list[Reference]:
    """References from a CSV file with CSV_COLUMNS; a missing column or a bad number is one clear error."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise WattprintInputError("reference", f"cannot read {file}: {exc.strerror or exc}") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise WattprintInputError(
            "reference", f"{file} lacks the column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}"
        )
    out = []
    for line, row in enumerate(reader, start=2):
        try:
            size, kwh = int(row["batch_size"]), float(row["kwh_per_1k_queries"])
        except (TypeError, ValueError):
            raise WattprintInputError(
                "reference", f"{file} line {line}: batch_size and kwh_per_1k_queries must be numbers"
            ) from None
        if not math.isfinite(kwh) or kwh < 0:
            raise WattprintInputError(
                "reference", f"{file} line {line}: kwh_per_1k_queries must be a finite number >= 0"
            )
        out.append(Reference(row["model"], row["task"], row["inputs_id"], size, kwh))
    return out


def star_bins(values: Iterable[float]) -> list[dict[str, float | int]]:
    """The five bins over the range of `values`: [{"stars", "from_kwh_per_1k", "to_kwh_per_1k"}], 5 stars first."""
    finite = [v for v in values if math.isfinite(v)]
    low, high = min(finite), max(finite)
    width = (high - low) / BINS
    return [
        {"stars": BINS - i, "from_kwh_per_1k": low + i * width, "to_kwh_per_1k": low + (i + 1) * width}
        for i in range(BINS)
    ]


def rate(
    model: str, task: str, inputs_id: str, batch_size: int, kwh_per_1k: float, references: Iterable[Reference]
) -> dict[str, Any]:
    """{"stars": 1-5 | None, "reason", "bins", "models"} for one result; this model's own figure replaces its
    reference row, if it has one."""
    figures = {
        ref.model: ref.kwh_per_1k_queries
        for ref in references
        if ref.task == task and ref.inputs_id == inputs_id and ref.batch_size == batch_size
    }
    figures[model] = kwh_per_1k
    if len(figures) < MIN_MODELS or min(figures.values()) == max(figures.values()):
        return {
            "stars": None,
            "reason": (
                f"a rating needs {MIN_MODELS} models with different figures on these inputs and batch size; "
                f"found {len(figures)}"
            ),
            "bins": [],
            "models": len(figures),
        }
    bins = star_bins(figures.values())
    # the top edge belongs to the last bin: the most-energy model gets 1 star, not none
    index = min(
        int((kwh_per_1k - bins[0]["from_kwh_per_1k"]) / (bins[0]["to_kwh_per_1k"] - bins[0]["from_kwh_per_1k"])),
        BINS - 1,
    )
    return {
        "stars": BINS - index,
        "reason": f"equal-width bins over {len(figures)} models, least energy = 5 stars",
        "bins": bins,
        "models": len(figures),
    }
