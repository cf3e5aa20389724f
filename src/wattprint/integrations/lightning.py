"""PyTorch Lightning: per-epoch and per-step energy and CO2e in the Trainer's loggers.

    from wattprint.integrations.lightning import WattprintCallback
    trainer = L.Trainer(max_epochs=10, callbacks=[WattprintCallback()])

One tracked run per `fit` (stored like any other run). Each training epoch is a Tracker window;
every `log_every_n_steps` batches the mean energy per batch is logged; from `predict_after_epochs`
finished epochs on, each epoch also logs the predicted energy and CO2e of the whole run. How the
energy was obtained goes into the loggers' hyperparameters (`wattprint/measurement`). Metrics
are logged straight to `trainer.loggers` (names under "wattprint/"), so they keep their own
cadence whatever the Trainer's. A wattprint fault is logged and flagged on the record
(`degraded["lightning"]`); it never stops training.
"""

from __future__ import annotations

import math
from typing import Any

from wattprint._extras import require
from wattprint.integrations._training import TrainingMeter, flag_fault, log, method_label, summary
from wattprint.record import Status
from wattprint.tracking.base import TrackerLike

pl = require("lightning.pytorch", extra="lightning", feature="the Lightning callback")


def total_epochs(trainer: Any) -> int | None:
    """The number of epochs this fit will run: max_epochs, or fewer when max_steps ends it first."""
    epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
    batches = trainer.num_training_batches
    if trainer.max_steps is not None and trainer.max_steps > 0 and isinstance(batches, int) and batches > 0:
        steps_per_epoch = math.ceil(batches / max(1, trainer.accumulate_grad_batches))
        by_steps = math.ceil(trainer.max_steps / steps_per_epoch)
        epochs = min(epochs, by_steps) if epochs else by_steps
    return epochs


class WattprintCallback(pl.Callback):  # type: ignore[name-defined]
    """Tracks a Lightning fit and logs its energy and CO2e.

    `name`: the run's name (default: the LightningModule's class name). `tracker`: a Tracker you
    started and will stop yourself; by default the callback makes one per fit. `log_every_n_steps`:
    batches per step-energy figure (default: the Trainer's `log_every_n_steps`; 0 turns it off).
    `predict_after_epochs`: epochs measured before predicting the whole run. Other keyword
    arguments are Tracker settings (region, interval, pue, ...), checked here, before training.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        tracker: TrackerLike | None = None,
        log_every_n_steps: int | None = None,
        predict_after_epochs: int = 2,
        **tracker_kwargs: Any,
    ) -> None:
        super().__init__()
        self._log_every_n_steps = log_every_n_steps
        self.meter = TrainingMeter(
            name or "lightning",
            tracker=tracker,
            log_every_n_steps=log_every_n_steps or 0,
            predict_after_epochs=predict_after_epochs,
            flag_key="lightning",
            **tracker_kwargs,
        )
        self._named = name is not None
        self.record: Any = None

    @property
    def tracker(self) -> Any:
        return self.meter.tracker

    def _send(self, trainer: Any, metrics: dict[str, float]) -> None:
        """Log to every logger of the Trainer (rank zero only, as Lightning's loggers do themselves)."""
        if not metrics:
            return
        for logger in trainer.loggers:
            try:
                logger.log_metrics(metrics, step=trainer.global_step)
            except Exception as exc:  # a broken logger must not stop training
                flag_fault(self.tracker, "lightning", f"logging to {type(logger).__name__}", exc)

    # -- hooks -----------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        meter = self.meter
        if not self._named and meter.owns_tracker:
            meter.tracker.name = type(pl_module).__name__
        if self._log_every_n_steps is None:
            meter.log_every_n_steps = int(getattr(trainer, "log_every_n_steps", 50) or 0)
        meter.start()
        if not meter.active:
            return
        rec = meter.tracker.record
        if rec is None:  # active but not started: nothing to describe yet
            return
        params = {
            "wattprint/run_id": rec.run_id,
            "wattprint/measurement": method_label(rec),
            "wattprint/region": rec.region,
            "wattprint/intensity_g_per_kwh": rec.intensity_g_per_kwh,
        }
        for logger in trainer.loggers:
            try:
                logger.log_hyperparams(params)
            except Exception as exc:  # some loggers take no hyperparameters: the record still has them
                log.debug("wattprint: %s took no hyperparameters: %s", type(logger).__name__, exc)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.meter.begin_epoch(trainer.current_epoch)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.meter.begin_step()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._send(trainer, self.meter.end_step())

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        try:
            epochs = total_epochs(trainer)
        except Exception:  # an unusual trainer set-up only loses the prediction
            epochs = None
        self._send(trainer, self.meter.end_epoch(epochs))

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._finish(trainer, "finished")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._finish(trainer, "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed")

    def _finish(self, trainer: Any, status: Status) -> None:
        self.record = self.meter.finish(status)
        if self.meter.owns_tracker and self.record is not None and self.record.status != "running":
            self._send(trainer, self.meter.final_metrics(self.record))
            log.info("%s", summary(self.record))
