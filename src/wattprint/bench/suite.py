"""The fixed task suite: the same inputs, query counts and batch sizes everywhere, so that runs compare.

Like Hugging Face's AI Energy Score, a task fixes what is asked; the model is what varies. The inputs are the
1,000 English sentences bundled in `wattprint/data/bench_sentences.txt` (built by
`tools/make_bench_sentences.py`; fill-mask masks each sentence's middle word, generation continues it).
"""

from __future__ import annotations

from dataclasses import dataclass

from wattprint.bench.models import MINILM, TINY_GPT, check_task

SUITE_VERSION = "1"


@dataclass(frozen=True)
class SuiteTask:
    """One task of the suite: its default model and how much work a run does."""

    task: str
    model: str
    queries: int
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    new_tokens: int = 32  # generation only


SUITE = {
    "feature-extraction": SuiteTask("feature-extraction", MINILM, 1000),
    "text-classification": SuiteTask("text-classification", MINILM, 1000),
    "fill-mask": SuiteTask("fill-mask", MINILM, 1000),
    "text-generation": SuiteTask("text-generation", TINY_GPT, 100, (1, 8, 32), 32),
}


def suite_task(task: str) -> SuiteTask:
    return SUITE[check_task(task)]


def sentences() -> list[str]:
    """The suite's 1,000 fixed sentences."""
    from wattprint.data import data_text

    return [line for line in data_text("bench_sentences.txt").splitlines() if line.strip()]


DEFAULT_MAX_LENGTH = 128


def inputs_id(task: str, queries: int, new_tokens: int | None = None, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Names the input set of a run: runs compare (and rate) only against runs with the same id. Inputs cut
    shorter than the default (`max_length`) are other work, so they are named."""
    tail = f":new_tokens={new_tokens}" if check_task(task) == "text-generation" and new_tokens else ""
    if max_length != DEFAULT_MAX_LENGTH:
        tail += f":max_length={max_length}"
    return f"suite-v{SUITE_VERSION}:{task}:{queries}{tail}"
