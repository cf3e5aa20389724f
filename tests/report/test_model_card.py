"""Hugging Face model card: the Environmental Impact section and the co2_eq_emissions metadata."""

from __future__ import annotations

import yaml

from tests.report.records import fixture_records, make_record
from wattprint.report.model_card import metadata, model_card, model_card_section

EXPECTED_ONE = """\
---
co2_eq_emissions:
  emissions: 30.0
  source: "wattprint, mixed (cpu: rapl; gpu: nvml; ram: model) energy"
  geographical_location: "FR"
  hardware_used: "1x NVIDIA A100 + AMD EPYC 7763"
---

## Environmental Impact

Energy and carbon were tracked with wattprint over 1 run(s): resnet-gpu (aaaa1111).

- **Hardware Type:** 1x NVIDIA A100 + AMD EPYC 7763
- **Hours used:** 5.00 h wall-clock (5.00 GPU-hours)
- **Cloud Provider:** none (local or on-premises)
- **Compute Region:** FR
- **Carbon Emitted:** 30.0 g CO2e (range 15.0 g to 60.0 g): operational 27.0 g + embodied hardware 3.00 g
- **Energy:** 500 Wh at the hardware; 600 Wh with PUE 1.2
- **Method:** energy mixed (cpu: rapl; gpu: nvml; ram: model); carbon intensity FR: 56.0 gCO2e/kWh (bundled yearly \
average)
"""


def test_single_run_card_exact() -> None:
    # 0.5 kWh at ~100 W = 5 h on one GPU; 0.03 kg = 30 g, 90% operational; range 0.5x-2x
    assert model_card(fixture_records()[:1]) == EXPECTED_ONE


def test_front_matter_is_valid_yaml_with_grams() -> None:
    text = model_card(fixture_records(), training_type="fine-tuning")
    front = yaml.safe_load(text.split("---")[1])["co2_eq_emissions"]
    assert front["emissions"] == 30.72  # 30 + 0.12 + 0.6 g
    assert front["training_type"] == "fine-tuning"
    assert front["geographical_location"] == "FR, gcp:europe-west9"


def test_several_runs_add_up() -> None:
    section = model_card_section(fixture_records())
    assert "over 3 run(s)" in section
    assert "**Hours used:** 5.12 h wall-clock (5.00 GPU-hours)" in section  # 18000 + 72 + 360 s
    assert "**Carbon Emitted:** 30.7 g CO2e (range 15.4 g to 61.4 g)" in section
    assert "**Cloud Provider:** Google Cloud and local or on-premises machines" in section
    assert r"mlp\_small" in section  # Markdown emphasis characters escaped


def test_estimated_energy_is_labelled_estimated() -> None:
    card = model_card([make_record("x1", "cpu-only", energy_kwh=0.01, co2e_kg=0.001)])
    assert "energy estimated (cpu: model; ram: model)" in card
    assert "measured" not in card
    assert metadata([make_record("x1", "cpu", energy_kwh=0.01, co2e_kg=0.001)])["source"].startswith(
        "wattprint, estimated"
    )


def test_hostile_text_cannot_break_the_yaml() -> None:
    record = make_record("x1", 'evil"\nname', energy_kwh=0.01, co2e_kg=0.001, region='X"\n: y')
    front = yaml.safe_load(model_card([record]).split("---")[1])
    assert front["co2_eq_emissions"]["geographical_location"] == 'X"\n: y'
