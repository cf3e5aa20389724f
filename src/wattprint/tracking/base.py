"""What integrations rely on in a tracker: `Tracker` and `DistributedTracker` both meet it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from wattprint.config import Settings
    from wattprint.measure.monitor import EnergyMonitor
    from wattprint.record import RunRecord
    from wattprint.status import Status


@runtime_checkable
class TrackerLike(Protocol):
    """A tracker as the integrations (Lightning, Hugging Face, Optuna, Jupyter, MLflow, Prometheus) use it."""

    name: str
    settings: Settings

    @property
    def record(self) -> RunRecord | None:
        """The run's record: None before start(), updated while it runs, final after stop()."""
        ...

    @property
    def monitor(self) -> EnergyMonitor | None:
        """The monitor measuring this process (its windows), None before start()."""
        ...

    def start(self) -> Any: ...

    def stop(self, status: Status = "finished", exit_code: int | None = None) -> RunRecord: ...

    def flag(self, key: str, reason: str) -> None: ...

    def begin_window(self, name: str) -> None: ...

    def end_window(self, name: str, *, record: bool = True) -> Any: ...

    def energy_so_far_kwh(self) -> dict[str, float]: ...

    def window_co2e_kg(self, window: Any) -> tuple[float, float]: ...

    def predict(self, total_epochs: int, prefix: str = "epoch", windows: Sequence[str] | None = None) -> Any: ...
