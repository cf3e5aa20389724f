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


USER_CARD = """\
---
license: mit
tags:
  - text-classification
# the user's own comment
co2_eq_emissions:
  emissions: 1.0

  source: an older estimate
language: en
---

# My model

Some prose the user wrote.

## Environmental Impact

An older section.

## Citation

@misc{me}
"""


def test_merging_keeps_the_users_card_and_replaces_only_our_parts() -> None:
    from wattprint.report.model_card import merge_model_card

    records = fixture_records()[:1]
    merged = merge_model_card(USER_CARD, records)
    front_text, body = merged.split("---\n")[1], merged.split("---\n", 2)[2]
    front = yaml.safe_load(front_text)
    assert front["license"] == "mit" and front["tags"] == ["text-classification"] and front["language"] == "en"
    assert front["co2_eq_emissions"] == metadata(records)  # replaced, not duplicated
    assert "# the user's own comment" in front_text and front_text.count("co2_eq_emissions") == 1
    assert body.index("# My model") < body.index("Some prose the user wrote.") < body.index("## Environmental")
    assert "An older section." not in body and model_card_section(records) in body
    assert body.rstrip().endswith("## Citation\n\n@misc{me}")
    assert merge_model_card(merged, records) == merged  # idempotent


def test_merging_into_a_file_without_front_matter_or_section_adds_both() -> None:
    from wattprint.report.model_card import merge_model_card

    records = fixture_records()[:1]
    merged = merge_model_card("# Title\n\nText only.\n", records)
    assert (
        merged.startswith("---\nco2_eq_emissions:\n") and "\n---\n\n# Title\n\nText only.\n\n## Environmental" in merged
    )
    assert merged.endswith(model_card_section(records))
    assert merge_model_card(merged, records) == merged
    assert merge_model_card("", records) == model_card(records)  # an empty file: the whole card


def test_merging_respects_code_blocks_bom_block_scalars_and_key_spellings() -> None:
    """Headings inside fenced code are text, a BOM is not part of the front matter's opening line, a `---`
    indented in a block scalar does not close it, `co2_eq_emissions :` is the same key, and a level-3
    "Environmental Impact" is the section to replace."""
    from wattprint.report.model_card import merge_model_card

    records = fixture_records()[:1]
    card = (
        "\ufeff---\n"
        "description: |\n"
        "  A model.\n"
        "  ---\n"
        "  still the description\n"
        "co2_eq_emissions :\n"
        "  emissions: 9.0\n"
        "license: mit\n"
        "---\n\n"
        "# Model\n\n"
        "```markdown\n"
        "## Environmental Impact\n"
        "# an example the user wrote\n"
        "```\n\n"
        "### Environmental Impact\n\n"
        "old text\n\n"
        "## Citation\n"
    )
    merged = merge_model_card(card, records)
    front = yaml.safe_load(merged.split("\n---\n", 1)[0].removeprefix("---\n"))
    assert front["description"] == "A model.\n---\nstill the description\n" and front["license"] == "mit"
    assert front["co2_eq_emissions"] == metadata(records)
    assert merged.count("co2_eq_emissions") == 1 and "\ufeff" not in merged
    assert "```markdown\n## Environmental Impact\n# an example the user wrote\n```" in merged  # untouched
    assert "old text" not in merged and merged.count(model_card_section(records)) == 1
    assert merged.rstrip().endswith("## Citation")
    assert merge_model_card(merged, records) == merged
