"""Accelerators and CPUs by name, with their board power (TDP), for estimates made without counters.

The table is `wattprint/data/hardware.csv` (sources per row, see SOURCES.md). Names are matched
loosely: case, spaces, hyphens and underscores are ignored, vendor words ("NVIDIA", "Tesla",
"Google", "AMD", "Intel", "GeForce") are dropped and "SXM2"/"SXM4"/"SXM5" all read as "SXM", so
"A100-SXM4", "h100 sxm", "TPUv3" and NVML's "NVIDIA A100-SXM4-40GB" all resolve. A bare family name
("V100", "A100", "H100", "P100", "H200") resolves to the SXM variant, the documented default (an
alias in the table): it is the data-centre part used in the published studies (Patterson et al.'s
V100 is SXM2). A memory size that does not decide the row ("H100 80GB HBM3") is ignored. CPU names
not in the table fall back to the bundled CPU TDP table. Unknown names raise with suggestions.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

from wattprint.data import read_table
from wattprint.errors import WattprintInputError

KINDS = ("gpu", "tpu", "cpu")
_VENDOR = re.compile(r"\b(nvidia|tesla|google|cloud|amd|intel|geforce|instinct|\(r\)|\(tm\))\b")
_SXM = re.compile(r"sxm\d?\b")
_MEMORY = re.compile(r"\d+\s*gb\b|\bhbm\d*e?\b")
_SEPARATORS = re.compile(r"[^a-z0-9+]+")


@dataclass(frozen=True)
class Hardware:
    """One table row: canonical name, kind (gpu|tpu|cpu), board power in W and where it comes from."""

    name: str
    kind: str
    tdp_w: float
    source: str
    aliases: tuple[str, ...] = ()


def normalize_hardware_name(name: str, drop_memory: bool = False) -> str:
    """Matching key of a hardware name: lower case, no vendor words, no separators, "sxmN" -> "sxm"."""
    text = _VENDOR.sub(" ", name.lower())
    text = _SXM.sub("sxm", text)
    if drop_memory:
        text = _MEMORY.sub(" ", text)
    return _SEPARATORS.sub("", text)


@lru_cache(maxsize=1)
def hardware_table() -> tuple[Hardware, ...]:
    """All rows of data/hardware.csv, in file order."""
    rows = []
    for row in read_table("hardware.csv"):
        aliases = tuple(a.strip() for a in row["aliases"].split(";") if a.strip())
        rows.append(Hardware(row["name"], row["kind"], float(row["tdp_w"]), row["source"], aliases))
    return tuple(rows)


@lru_cache(maxsize=1)
def _index() -> dict[str, Hardware]:
    """Matching key -> row, for every name and alias. Two rows sharing a key is a table error."""
    index: dict[str, Hardware] = {}
    for row in hardware_table():
        for label in (row.name, *row.aliases):
            key = normalize_hardware_name(label)
            if index.get(key, row) is not row:
                raise ValueError(f"hardware.csv: {label!r} names both {index[key].name!r} and {row.name!r}")
            index[key] = row
    return index


def _cpu_fallback(name: str) -> Hardware | None:
    """A CPU model from the bundled CPU TDP table (vendor prefix optional), or None."""
    from wattprint.measure.cpu_model import lookup_tdp

    if not any(ch.isdigit() for ch in name):
        return None
    for query in (name, f"intel {name}", f"amd {name}"):
        found = lookup_tdp(query)
        if found is not None:
            tdp_w, entry = found
            return Hardware(entry, "cpu", tdp_w, f"bundled CPU TDP table (CodeCarbon 3.3.2), entry '{entry}'")
    return None


def find_hardware(name: str) -> Hardware | None:
    """The row for `name` (loose match, see the module docstring), or None when nothing matches."""
    index = _index()
    for key in (normalize_hardware_name(name), normalize_hardware_name(name, drop_memory=True)):
        if key and key in index:
            return index[key]
    return _cpu_fallback(name)


def match_note(name: str, found: Hardware) -> str | None:
    """What a loose match decided for the user, None when `name` named one row: a memory size that was
    ignored, or a name that fits several rows read as the documented default, with the other rows and their
    power (an "A100 80GB" is 400 W as SXM4 but 300 W as PCIe)."""
    if found not in hardware_table():  # the CPU table's own match
        return None
    exact = normalize_hardware_name(name)
    dropped = exact not in _index()
    key = normalize_hardware_name(name, drop_memory=dropped)
    others = [
        f"{row.name} ({row.tdp_w:g} W)"
        for row in hardware_table()
        if row is not found and key and _variant_of(normalize_hardware_name(row.name, drop_memory=dropped), key)
    ]
    if not dropped and not others:
        return None
    how = "the memory size was ignored" if dropped else "a name that fits several rows reads as the default"
    also = f"; also in the table: {', '.join(others)}: name the variant to choose" if others else ""
    return f"{name!r} read as {found.name} ({found.tdp_w:g} W): {how}{also}"


def _variant_of(row_key: str, key: str) -> bool:
    """Whether a row's key is `key` plus a variant ("a100pcie" of "a100"), not another model ("a100" of "a10")."""
    return row_key.startswith(key) and not row_key[len(key) : len(key) + 1].isdigit()


def suggest_hardware(name: str, n: int = 3) -> list[str]:
    """Up to `n` canonical names close to `name`, best first (difflib on the matching keys)."""
    index = _index()
    key = normalize_hardware_name(name, drop_memory=True)
    out: list[str] = []
    for close in difflib.get_close_matches(key, index.keys(), n=4 * n, cutoff=0.5):
        if index[close].name not in out:
            out.append(index[close].name)
    return out[:n]


def lookup_hardware(name: str, field: str = "--hardware") -> Hardware:
    """The row for `name`; an unknown name raises `WattprintInputError` naming close matches."""
    if not name or not name.strip():
        raise WattprintInputError(field, "empty name; expected an accelerator or CPU, e.g. V100, A100, TPUv3")
    found = find_hardware(name)
    if found is None:
        close = suggest_hardware(name)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        examples = "V100, A100-SXM4, H100 PCIe, TPUv3, T4, EPYC 7763"
        accepted = f"expected a name from wattprint/data/hardware.csv, e.g. {examples}"
        raise WattprintInputError(field, f"unknown hardware {name!r}{hint}; {accepted}")
    return found
