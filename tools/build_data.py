"""Rebuild the bundled tables in src/wattprint/data/ from ../shared/reference (run by hand, not at install).

Usage: python tools/build_data.py [REFERENCE_DIR]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from wattprint.measure.cpu_model import normalize_cpu_name

G_PER_KWH_PER_LBS_PER_MWH = 0.45359237


def _usable(row: dict[str, str]) -> bool:
    """Skip rows without a name or with a malformed TDP (the source has a few, e.g. '27.29.5')."""
    try:
        return bool(row["Name"].strip()) and float(row["TDP"]) > 0
    except ValueError:
        return False


def main() -> None:
    ref = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "reference")
    out = Path(__file__).resolve().parents[1] / "src" / "wattprint" / "data"

    with (ref / "country-intensity-owid.csv").open(encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["alpha-2"])
    with (out / "country_intensity.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["alpha2", "alpha3", "name", "year", "intensity_g_per_kwh"])
        for r in rows:
            value = float(r["Carbon intensity of electricity (gCO2eq/kWh)"])
            w.writerow([r["alpha-2"], r["Code"], r["Entity"], r["Year"], f"{value:.3f}"])

    states = json.loads((ref / "us-state-egrid2023.json").read_text(encoding="utf-8"))
    with (out / "us_state_intensity.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["code", "name", "year", "intensity_g_per_kwh"])
        for name, entry in sorted(states.items(), key=lambda kv: str(kv[1].get("regionCode", ""))):
            if name.startswith("_") or name == "usa":
                continue
            value = entry["emissions"] * G_PER_KWH_PER_LBS_PER_MWH
            w.writerow([entry["regionCode"], name.title(), 2023, f"{value:.3f}"])

    with (ref / "gcp-region-intensity.csv").open(encoding="utf-8-sig") as f:
        regions = list(csv.DictReader(f))
    with (out / "cloud_region_intensity.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["provider", "region", "country_alpha3", "location", "intensity_g_per_kwh"])
        for r in sorted(regions, key=lambda r: r["region"]):
            location = ", ".join(x for x in (r["city"], r["state"]) if x)
            w.writerow([r["provider"], r["region"], r["countryIsoCode"], location, r["impact"]])

    with (ref / "cpu-tdp.csv").open(encoding="utf-8") as f:
        cpus = sorted({(r["Name"].strip(), float(r["TDP"])) for r in csv.DictReader(f) if _usable(r)})
    with (out / "cpu_tdp.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        # `key` is the normalised name the CPU model matches on: computed here, not at every tracker start
        w.writerow(["model", "tdp_w", "key"])
        for name, tdp in cpus:
            w.writerow([name, f"{tdp:g}", normalize_cpu_name(name)])
    print(f"wrote {len(rows)} countries, {len(states) - 3} states, {len(regions)} cloud regions, {len(cpus)} CPUs")


if __name__ == "__main__":
    main()
