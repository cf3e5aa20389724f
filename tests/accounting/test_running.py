"""A running run's carbon by coefficients against the accounting functions themselves."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from hypothesis import example, given, settings
from hypothesis import strategies as st

from wattprint.accounting.embodied import run_embodied
from wattprint.accounting.footprint import integrate_operational
from wattprint.accounting.running import LinearCarbon
from wattprint.accounting.uncertainty import record_range

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
GPUS = ["NVIDIA H100 80GB HBM3", "A100-SXM4-80GB", "Quadro X"]  # published, published, no figure
kwh = st.floats(0.0, 1e4, allow_nan=False)
method = st.sampled_from(["measured", "estimated", None])


def full(
    energy: dict[str, float],
    duration_s: float,
    share: float,
    intensity: float,
    pue: float,
    methods: dict[str, str | None],
    gpus: list[str],
    host: str | None,
) -> tuple[float, ...]:
    """What the final accounting gives for the same run at a constant intensity."""
    op = integrate_operational([(T0, T0 + timedelta(seconds=duration_s), sum(energy.values()))], intensity, pue)
    emb = run_embodied(duration_s, gpus, host=host, host_share=share)
    band = record_range(
        energy,
        methods,
        op.intensity_g_per_kwh,
        pue,
        embodied_kg=(emb.co2e_kg_low, emb.co2e_kg_high),
        intensity_range_g_per_kwh=(op.intensity_low_g_per_kwh, op.intensity_high_g_per_kwh),
    )
    return op.co2e_kg, emb.co2e_kg, band["co2e_kg_low"], band["co2e_kg_high"], op.intensity_g_per_kwh, emb.note


@settings(max_examples=300, deadline=None)
@example(
    cpu=0.0,
    gpu=0.0,
    ram=5e-324,
    duration_s=0.0,
    share=0.0,
    intensity=1.5,
    pue=1.0,  # grams / kWh rounds
    methods={"cpu": "measured", "gpu": "measured", "ram": "measured"},
    gpus=[],
    host="server",
)
@given(
    cpu=kwh,
    gpu=kwh,
    ram=kwh,
    duration_s=st.floats(0.0, 1e8, allow_nan=False),
    share=st.floats(0.0, 1.0),
    intensity=st.floats(0.0, 2000.0),
    pue=st.floats(1.0, 3.0),
    methods=st.fixed_dictionaries({"cpu": method, "gpu": method, "ram": method}),
    gpus=st.lists(st.sampled_from(GPUS), max_size=3),
    host=st.sampled_from(["server", None, "no such host"]),
)
def test_coefficients_give_what_the_accounting_functions_give(
    cpu: float,
    gpu: float,
    ram: float,
    duration_s: float,
    share: float,
    intensity: float,
    pue: float,
    methods: dict[str, str | None],
    gpus: list[str],
    host: str | None,
) -> None:
    energy = {"cpu": cpu, "gpu": gpu, "ram": ram}
    linear = LinearCarbon.derive(intensity, pue, methods, gpus, host=host)
    got = linear.at(energy, duration_s, share)
    want = full(energy, duration_s, share, intensity, pue, methods, gpus, host)
    numbers = (got.operational_kg, got.embodied_kg, got.low_kg, got.high_kg, got.intensity_g_per_kwh)
    for a, b in zip(numbers, want[:5], strict=True):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), (a, b)
    assert got.embodied_note == want[5]
    assert math.isclose(got.total_kg, want[0] + want[1], rel_tol=1e-12, abs_tol=1e-15)


def test_by_hand() -> None:
    """1 kWh of measured CPU and 1 h of one H100 and a quarter of the server, at 400 g/kWh and PUE 1.5."""
    linear = LinearCarbon.derive(400.0, 1.5, {"cpu": "measured"}, ["NVIDIA H100 80GB HBM3"])
    got = linear.at({"cpu": 1.0}, 3600.0, 0.25)
    gpu, host = 164 / 26280, 900 / 35040 * 0.25  # published 164 kg over 3 years; modelled 900 kg over 4
    assert math.isclose(got.operational_kg, 0.6)
    assert math.isclose(got.embodied_kg, gpu + host)
    assert math.isclose(got.low_kg, 0.95 * 1.5 * 320 / 1000 + gpu * 0.7 + host * 0.75)
    assert math.isclose(got.high_kg, 1.05 * 1.5 * 480 / 1000 + gpu * 1.3 + host * 1.5)
    assert got.embodied_note == "H100 SXM x1 (published, 164 kg); server x0.25 (modelled, 900 kg)"
