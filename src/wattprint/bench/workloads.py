"""What `wattprint.bench` measures: a workload turns inputs into batches and runs them.

A workload prepares its batches (tokenising, say) before anything is measured, so that the measured windows
hold the inference alone. Generation workloads split each batch into two phases, prefill (the prompt, up to
the first new token) and decode (every further token), which the runner measures in separate windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Done:
    """What one batch produced: queries answered and, for text models, tokens read and written."""

    queries: int
    tokens_in: int = 0
    tokens_out: int = 0


@runtime_checkable
class Workload(Protocol):
    """An inference workload: `prepare` outside the measurement, `run` inside it."""

    task: str
    model: str

    def prepare(self, inputs: Sequence[Any], batch_size: int) -> list[Any]:
        """The inputs cut into batches of at most `batch_size`, ready to run (e.g. tokenised)."""
        ...

    def run(self, batch: Any) -> Done:
        """Answer one batch."""
        ...


@runtime_checkable
class PhasedWorkload(Workload, Protocol):
    """A generation workload: `prefill` reads the prompts and yields the first token; `decode` the rest."""

    def prefill(self, batch: Any) -> Any:
        """Process the prompts of one batch; returns the state `decode` continues from (the KV cache, ...)."""
        ...

    def decode(self, state: Any) -> Done:
        """Generate the remaining tokens of one batch from `prefill`'s state."""
        ...


class CallableWorkload:
    """A Python function that answers a list of inputs at once: `fn(batch_of_inputs)`.

    Whatever it returns is ignored; the function is timed and measured as it is, so anything it does per call
    (tokenising, copying to a device) is part of the figure.
    """

    def __init__(self, fn: Callable[[list[Any]], Any], *, task: str = "callable", model: str | None = None) -> None:
        if not callable(fn):
            from wattprint.errors import WattprintInputError

            raise WattprintInputError("fn", f"got {type(fn).__name__}; expected a callable taking a list of inputs")
        self.fn = fn
        self.task = task
        self.model = model or getattr(fn, "__qualname__", None) or type(fn).__name__

    def prepare(self, inputs: Sequence[Any], batch_size: int) -> list[Any]:
        return [list(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]

    def run(self, batch: Any) -> Done:
        self.fn(batch)
        return Done(queries=len(batch))
