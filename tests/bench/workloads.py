"""Pure-Python workloads with known costs, for the runner's tests (real CPU work, no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wattprint.bench import Done


def spin(units: int) -> int:
    """Real CPU work proportional to `units`."""
    return sum(i * i for i in range(units * 1000))


class Overhead:
    """Each call costs a fixed `per_call` plus `per_item` per input: per-query cost falls with batch size."""

    task = "callable"
    model = "overhead"

    def __init__(self, per_call: int = 40, per_item: int = 8) -> None:
        self.per_call, self.per_item = per_call, per_item
        self.calls = 0

    def prepare(self, inputs: Sequence[Any], batch_size: int) -> list[Any]:
        return [list(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]

    def run(self, batch: Any) -> Done:
        self.calls += 1
        spin(self.per_call + self.per_item * len(batch))
        return Done(queries=len(batch))


@dataclass
class _State:
    queries: int
    tokens_in: int


class FakeGenerator:
    """A generation workload: prefill costs `prefill_cost` per prompt word, decode `decode_cost` per new token."""

    task = "text-generation"
    model = "fake-generator"

    def __init__(self, new_tokens: int, prefill_cost: int = 2, decode_cost: int = 3) -> None:
        self.new_tokens, self.prefill_cost, self.decode_cost = new_tokens, prefill_cost, decode_cost

    def prepare(self, inputs: Sequence[Any], batch_size: int) -> list[Any]:
        return [list(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]

    def prefill(self, batch: Any) -> _State:
        words = sum(len(str(text).split()) for text in batch)
        spin(self.prefill_cost * words)
        return _State(len(batch), words)

    def decode(self, state: _State) -> Done:
        spin(self.decode_cost * state.queries * (self.new_tokens - 1))
        return Done(state.queries, state.tokens_in, state.queries * self.new_tokens)

    def run(self, batch: Any) -> Done:
        return self.decode(self.prefill(batch))
