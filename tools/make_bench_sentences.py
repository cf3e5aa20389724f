"""Write src/wattprint/data/bench_sentences.txt: the fixed inputs of `wattprint bench`'s task suite.

    python tools/make_bench_sentences.py

1,000 English sentences built from wattprint's own word lists and sentence patterns with a seeded random
generator, so that the file is the same on every run of this script. Energy benchmarks need realistic
lengths and vocabulary, not meaning: lengths run from a few words to long compound sentences, statements and
questions mixed. The file is committed; nothing generates it at run time.
"""

from __future__ import annotations

import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "wattprint" / "data" / "bench_sentences.txt"
COUNT = 1000
SEED = 2026

PEOPLE = [
    "the new manager",
    "my neighbour",
    "a retired teacher",
    "the city council",
    "our engineering team",
    "the hospital board",
    "a young farmer",
    "the coach",
    "two students",
    "the night nurse",
    "the museum curator",
    "a local baker",
    "the research group",
    "the airline",
    "my sister",
    "the mayor",
    "an old fisherman",
    "the start-up",
    "the volunteers",
    "the orchestra",
    "a delivery driver",
    "the committee",
    "the tenants",
]
THINGS = [
    "the budget",
    "a new bridge",
    "the vaccine trial",
    "the old library",
    "the quarterly report",
    "the bus timetable",
    "a wind farm",
    "the harvest",
    "the exam results",
    "the water supply",
    "a solar roof",
    "the football match",
    "the software update",
    "the recipe",
    "the train strike",
    "the river",
    "a rare bird",
    "the election",
    "the mortgage rate",
    "the heatwave",
    "the concert",
    "the clinic",
    "the data centre",
    "the school garden",
]
VERBS = [
    "approved",
    "delayed",
    "questioned",
    "celebrated",
    "cancelled",
    "rebuilt",
    "criticised",
    "announced",
    "inspected",
    "funded",
    "postponed",
    "praised",
    "reviewed",
    "defended",
    "explained",
    "measured",
    "repaired",
]
PLACES = [
    "in Lisbon",
    "near the harbour",
    "on the outskirts of town",
    "in the valley",
    "at the central station",
    "in a small village",
    "along the coast",
    "in the north",
    "downtown",
    "at the university",
    "in the suburbs",
]
TIMES = [
    "last week",
    "on Monday morning",
    "after the storm",
    "before the holidays",
    "this spring",
    "late at night",
    "during the summer",
    "for the third year in a row",
    "at the last minute",
    "early this year",
    "yesterday",
]
REASONS = [
    "because costs had doubled",
    "after months of complaints",
    "although nobody expected it",
    "since the old system kept failing",
    "so that families could plan ahead",
    "to cut energy use",
    "while the debate went on",
    "despite heavy rain",
    "as prices kept rising",
    "once the survey was done",
]
ADJECTIVES = [
    "quiet",
    "crowded",
    "expensive",
    "surprising",
    "slow",
    "careful",
    "bright",
    "noisy",
    "fragile",
    "generous",
    "modest",
    "ambitious",
    "steady",
    "tired",
    "cheerful",
    "remote",
]
QUESTIONS = [
    "How do I",
    "Is it possible to",
    "Where can I",
    "Why does it take so long to",
    "What is the best way to",
    "Can someone explain how to",
    "When should we",
]
ACTIONS = [
    "renew a passport",
    "reset my password",
    "fix a leaking tap",
    "train a small neural network",
    "book a table for six",
    "measure the energy of a program",
    "plant tomatoes in April",
    "cancel the order",
    "learn to swim as an adult",
    "cook rice without a rice cooker",
    "report a broken street light",
    "compare two phone contracts",
    "travel by train across Europe",
    "back up my photos",
]


def sentence(rng: random.Random) -> str:
    """One sentence from a randomly chosen pattern."""
    pick = rng.choice
    pattern = rng.randrange(7)
    if pattern == 0:
        text = f"{pick(PEOPLE)} {pick(VERBS)} {pick(THINGS)} {pick(TIMES)}."
    elif pattern == 1:
        text = f"{pick(PEOPLE)} {pick(VERBS)} {pick(THINGS)} {pick(PLACES)} {pick(REASONS)}."
    elif pattern == 2:
        text = f"{pick(QUESTIONS)} {pick(ACTIONS)}?"
    elif pattern == 3:
        text = f"{pick(QUESTIONS)} {pick(ACTIONS)} {pick(PLACES)} {pick(TIMES)}?"
    elif pattern == 4:
        text = f"It was a {pick(ADJECTIVES)} day {pick(PLACES)}."
    elif pattern == 5:
        text = (
            f"{pick(TIMES).capitalize()}, {pick(PEOPLE)} {pick(VERBS)} {pick(THINGS)}, and {pick(PEOPLE)} "
            f"{pick(VERBS)} {pick(THINGS)} {pick(PLACES)} {pick(REASONS)}."
        )
    else:
        text = (
            f"{pick(THINGS)} looked {pick(ADJECTIVES)} and {pick(ADJECTIVES)} {pick(TIMES)}, "
            f"{pick(REASONS)}, but {pick(PEOPLE)} {pick(VERBS)} it anyway."
        )
    return text[0].upper() + text[1:]


def main() -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    lines: list[str] = []
    while len(lines) < COUNT:
        text = sentence(rng)
        if text not in seen:
            seen.add(text)
            lines.append(text)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} sentences to {OUT}")


if __name__ == "__main__":
    main()
