"""Hugging Face transformers Trainer: per-epoch and per-step energy and CO2e in the Trainer's logs.

    from wattprint.integrations.hf import WattprintTrainerCallback
    trainer = Trainer(model=model, args=args, train_dataset=ds)
    WattprintTrainerCallback.attach(trainer)          # or Trainer(..., callbacks=[WattprintTrainerCallback()])
    trainer.train()

One tracked run per `train()` (stored like any other run); each epoch is a Tracker window; every
`log_every_n_steps` optimizer steps the mean energy per step is measured; from
`predict_after_epochs` finished epochs on, the whole run is predicted. The figures ride on the
Trainer's next log call (`logs` and `state.log_history`; names under "wattprint/"), and the final
log of `train()` also gets the run's totals (`wattprint/run_*`), with how the energy was obtained
(`wattprint/measurement`, in `state.log_history` only: loggers take numbers). A wattprint fault
is logged and flagged on the record (`degraded["hf"]`); it never stops training.

The Trainer calls callbacks in order and puts `callbacks=[...]` after its `report_to` loggers, so
only `attach` (which puts this callback first) gets the figures to those loggers as well. When
`train()` raises, the Trainer calls no callback: `attach` also closes the run then (failed, or
interrupted on Ctrl-C); with `callbacks=[...]` the next `train()` or the end of the process does.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from wattprint._extras import require
from wattprint.integrations._training import TrainingMeter, log, method_label, summary
from wattprint.tracking.base import TrackerLike

MAX_EPOCHS = 1_000_000

transformers = require("transformers", extra="hf", feature="the Hugging Face Trainer callback")


class WattprintTrainerCallback(transformers.TrainerCallback):  # type: ignore[name-defined]
    """Tracks `Trainer.train()` and adds energy and CO2e to the Trainer's logs.

    `name`: the run's name (default: the model's class name). `tracker`: a Tracker you started and
    will stop yourself; by default the callback makes one per `train()`. `log_every_n_steps`: steps
    per step-energy figure (default: the Trainer's logging steps; 0 turns it off).
    `predict_after_epochs`: epochs measured before predicting the whole run. Other keyword arguments
    are Tracker settings (region, interval, pue, ...), checked here, before training.
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
        self._log_every_n_steps = log_every_n_steps
        self.meter = TrainingMeter(
            name or "transformers",
            tracker=tracker,
            log_every_n_steps=log_every_n_steps or 0,
            predict_after_epochs=predict_after_epochs,
            flag_key="hf",
            **tracker_kwargs,
        )
        self._named = name is not None
        self._pending: dict[str, Any] = {}
        self.record: Any = None

    @classmethod
    def attach(cls, trainer: Any, *args: Any, **kwargs: Any) -> WattprintTrainerCallback:
        """Make a callback and put it first in `trainer`'s callbacks, ahead of the `report_to` loggers.

        It also watches `trainer.train()`: when that raises, the Trainer calls no callback, so the run is
        closed here (failed; interrupted on Ctrl-C) instead of staying open until the next `train()` or
        the end of the process (a notebook's kernel can live for days)."""
        callback = cls(*args, **kwargs)
        trainer.callback_handler.callbacks.insert(0, callback)
        train = trainer.train

        @functools.wraps(train)
        def watched_train(*train_args: Any, **train_kwargs: Any) -> Any:
            try:
                return train(*train_args, **train_kwargs)
            except BaseException as exc:  # Ctrl-C too: the run is closed with its status, then re-raised
                callback._close_crashed(exc)
                raise

        trainer.train = watched_train
        return callback

    @property
    def tracker(self) -> Any:
        return self.meter.tracker

    # -- events ----------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        meter = self.meter
        if not self._named and meter.owns_tracker and model is not None:
            meter.tracker.name = type(model).__name__
        if self._log_every_n_steps is None:
            steps = state.logging_steps if args.logging_strategy == "steps" else 0
            meter.log_every_n_steps = max(0, int(steps or 0))
        self._pending = {}
        meter.start()

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.meter.begin_epoch(int(round(state.epoch or 0)))

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.meter.begin_step()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._pending |= self.meter.end_step()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        epochs = state.num_train_epochs
        # an iterable dataset with max_steps has no epoch count (the Trainer says sys.maxsize): no prediction
        total = math.ceil(epochs) if epochs and epochs < MAX_EPOCHS else None
        metrics = self.meter.end_epoch(total)
        self._pending |= metrics
        if metrics and args.logging_strategy != "no":
            control.should_log = True  # the epoch's figures go out now rather than at the next step log
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if logs is None:
            return
        extra: dict[str, Any] = {}
        if "train_runtime" in logs:  # the last log of train(): the run is over, its totals go with it
            extra = self._finish()
        numbers, self._pending = self._pending | extra, {}
        if not numbers:
            return
        logs.update(numbers)
        entry = state.log_history[-1] if state.log_history else None
        if entry is not None and entry.get("step") == state.global_step:
            entry.update(numbers)
            if extra and self.record is not None:
                entry["wattprint/measurement"] = method_label(self.record)
                entry["wattprint/run_id"] = self.record.run_id

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        extra = self._finish()  # when train() ended without its usual last log
        if extra and self.record is not None:
            state.log_history.append(
                extra
                | {
                    "wattprint/measurement": method_label(self.record),
                    "wattprint/run_id": self.record.run_id,
                    "step": state.global_step,
                }
            )

    def _close_crashed(self, exc: BaseException) -> None:
        """`train()` raised: stop this fit's run with the status the exception means. Never raises."""
        from wattprint.tracking.tracker import exit_status

        try:
            rec = self.meter.tracker.record
            if rec is not None and rec.status == "running":
                self.record = self.meter.finish(exit_status(type(exc), exc)[0])
        except Exception as fault:  # the user's exception is the one that must reach them
            log.warning("wattprint: closing the crashed run failed: %s", fault)

    def _finish(self) -> dict[str, float]:
        """Stop the run once; its totals (empty when already stopped or not ours)."""
        rec = self.meter.tracker.record
        if rec is None or rec.status != "running":
            return {}
        self.record = self.meter.finish("finished")
        if not self.meter.owns_tracker or self.record is None or self.record.status == "running":
            return {}
        log.info("%s", summary(self.record))
        return self.meter.final_metrics(self.record)
