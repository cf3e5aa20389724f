"""RunRecord's two JSON forms: the store writes `to_json()`, everything else `to_json_dict()`; they must agree."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wattprint.record import Co2eKg, EnergyKwh, RunRecord

# any code point, lone surrogates included: a non-UTF-8 argv reaches `command` as surrogate escapes
texts = st.text(st.characters(codec=None, categories=None), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def finite_or_null(value: Any) -> Any:
    """JSON as the store writes it: a non-finite float is null (to_json_dict keeps inf in typed float fields)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_null(v) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN and -0.0 differs from 0.0 (both forms must keep the sign)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None)
@given(
    metrics=st.dictionaries(texts, json_values, max_size=5),
    energy=st.floats(allow_nan=False, allow_infinity=False),  # typed fields: the tracker only writes finite ones
    name=texts,
)
def test_to_json_matches_json_dumps_of_to_json_dict(metrics: dict[str, Any], energy: float, name: str) -> None:
    record = RunRecord(
        run_id="r1",
        name=name,
        started_at=datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc),
        energy_kwh=EnergyKwh(total=energy, cpu=energy),
        co2e_kg=Co2eKg(total=energy),
        metrics=metrics,
        extra_detail={"ünïcode": name},
    )
    fast = json.loads(record.to_json())
    reference = finite_or_null(json.loads(json.dumps(record.to_json_dict())))
    assert same(fast, reference), (fast, reference)
    assert same(RunRecord.model_validate(fast).to_json(), record.to_json())


def test_nan_and_infinity_are_null_and_lone_surrogates_do_not_stop_a_save() -> None:
    record = RunRecord(
        run_id="r2",
        name="n",
        started_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        metrics={"loss": math.nan, "best": -math.inf},
        command=["python", "caf\udce9.py"],
    )
    assert record.to_json_dict()["metrics"] == {"loss": None, "best": None}  # the contract, as before to_json
    text = record.to_json()  # the lone surrogate sends it through json.dumps; still standard JSON, nulls
    assert json.loads(text) == finite_or_null(json.loads(json.dumps(record.to_json_dict())))
    assert '"loss":null' in text and '"best":null' in text
    assert " " not in text.split('"started_at"')[0]  # compact, as the store writes it
