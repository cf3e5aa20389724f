"""The Trainer callback on tiny real training runs: logs, log_history, loggers' view, prediction, faults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments  # noqa: E402

from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.integrations.hf import WattprintTrainerCallback  # noqa: E402
from wattprint.store import open_store  # noqa: E402

pytestmark = pytest.mark.slow  # transformers' import and Trainer set-up take several seconds

try:  # the Trainer needs accelerate (transformers[torch]); without it the Trainer-driven loop below stands in
    import accelerate  # noqa: F401

    HAS_ACCELERATE = True
except ImportError:
    HAS_ACCELERATE = False
needs_trainer = pytest.mark.skipif(not HAS_ACCELERATE, reason="transformers' Trainer needs accelerate")


class Samples(torch.utils.data.Dataset):
    """32 random token sequences with a label that depends on them (so there is something to learn)."""

    def __init__(self, n: int = 32) -> None:
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 100, (n, 16), generator=gen)
        self.labels = (self.ids[:, 0] > 50).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(16, dtype=torch.long), "labels": self.labels[i]}


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


class Recorder(transformers.TrainerCallback):
    """Stands where the `report_to` loggers stand: it sees what a logger would receive."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        self.seen.append(dict(logs or {}))


def make_trainer(tmp_path: Path, callbacks: list[Any], epochs: int = 3, **extra: Any) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=epochs,
        per_device_train_batch_size=8,
        logging_strategy="steps",
        logging_steps=2,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        **extra,
    )
    return Trainer(model=tiny_bert(), args=args, train_dataset=Samples(), callbacks=callbacks)


def values(entries: list[dict[str, Any]], key: str) -> list[float]:
    return [e[key] for e in entries if key in e]


def _assert_logged(rec: Any, history: list[dict[str, Any]], recorder: Any) -> None:
    """3 epochs of 4 steps, step figures every 2 steps: what the callback put in the logs matches the record."""
    epoch_kwh = values(history, "wattprint/epoch_energy_kwh")
    assert len(epoch_kwh) == 3 and all(v > 0 for v in epoch_kwh)
    windows = [w for w in rec.windows if w["name"].startswith("epoch ")]
    assert epoch_kwh == pytest.approx([w["energy_kwh"]["total"] for w in windows])
    assert windows == rec.windows  # the step windows are measured but kept off the record
    step_kwh = values(history, "wattprint/step_energy_kwh")
    assert len(step_kwh) == 6 and all(v > 0 for v in step_kwh)
    assert values(history, "wattprint/epoch_co2e_kg.operational")[0] == pytest.approx(
        epoch_kwh[0] * rec.pue * rec.intensity_g_per_kwh / 1000, rel=1e-6
    )
    # prediction from the second epoch on
    predicted = values(history, "wattprint/predicted_energy_kwh")
    assert len(predicted) == 2 and predicted[0] > sum(epoch_kwh[:2])
    # the last log of train() carries the run's totals and how they were obtained
    final = next(e for e in history if "train_runtime" in e)
    assert final["wattprint/run_energy_kwh"] == pytest.approx(rec.energy_kwh.total)
    assert final["wattprint/run_co2e_kg.total"] == pytest.approx(rec.co2e_kg.total)
    assert final["wattprint/run_co2e_kg.operational"] + final["wattprint/run_co2e_kg.embodied"] == pytest.approx(
        final["wattprint/run_co2e_kg.total"]
    )
    assert final["wattprint/run_id"] == rec.run_id
    assert f"cpu: {rec.measurement.cpu} ({rec.methods['cpu']['method']})" in final["wattprint/measurement"]
    # a callback standing where report_to loggers stand received the same numbers, and numbers only
    assert values(recorder.seen, "wattprint/epoch_energy_kwh") == pytest.approx(epoch_kwh)
    assert values(recorder.seen, "wattprint/run_energy_kwh") == pytest.approx([rec.energy_kwh.total])
    assert all(isinstance(v, (int, float)) for e in recorder.seen for k, v in e.items() if k.startswith("wattprint/"))


@needs_trainer
def test_train_logs_energy_to_loggers_and_history(tmp_path: Path, wattprint_env: Path) -> None:
    recorder = Recorder()
    trainer = make_trainer(tmp_path, [recorder])
    callback = WattprintTrainerCallback.attach(trainer, region="DE", interval=0.05)
    trainer.train()
    rec = callback.record
    assert rec.status == "finished" and rec.name == "BertForSequenceClassification"

    # 4 steps per epoch, 3 epochs; step figures every 2 steps (the Trainer's logging steps)
    _assert_logged(rec, trainer.state.log_history, recorder)

    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        assert store.get(rec.run_id).status == "finished"


@needs_trainer
def test_callbacks_list_still_fills_log_history(tmp_path: Path) -> None:
    callback = WattprintTrainerCallback(interval=0.05, log_every_n_steps=0)
    trainer = make_trainer(tmp_path, [callback], epochs=1)
    trainer.train()
    history = trainer.state.log_history
    assert len(values(history, "wattprint/epoch_energy_kwh")) == 1
    assert values(history, "wattprint/step_energy_kwh") == []  # turned off
    assert values(history, "wattprint/run_energy_kwh") == pytest.approx([callback.record.energy_kwh.total])


@needs_trainer
def test_second_train_is_a_new_run(tmp_path: Path) -> None:
    callback = WattprintTrainerCallback(interval=0.05)
    trainer = make_trainer(tmp_path, [callback], epochs=1)
    trainer.train()
    first = callback.record
    trainer.train()
    assert callback.record.run_id != first.run_id and callback.record.status == "finished"


class CtrlC(transformers.TrainerCallback):
    """Ctrl-C mid-epoch, as the Trainer sees it."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 2:
            raise KeyboardInterrupt


@needs_trainer
@pytest.mark.parametrize(("stopper", "status"), [("boom", "failed"), ("ctrl-c", "interrupted")])
def test_attach_closes_the_run_when_train_raises(
    tmp_path: Path, wattprint_env: Path, stopper: str, status: str
) -> None:
    trainer = make_trainer(tmp_path, [Exploding() if stopper == "boom" else CtrlC()], epochs=1)
    callback = WattprintTrainerCallback.attach(trainer, interval=0.05)
    with pytest.raises(RuntimeError if stopper == "boom" else KeyboardInterrupt):
        trainer.train()
    rec = callback.record
    assert rec is not None and rec.status == status and rec.energy_kwh.total > 0
    assert callback.tracker.monitor._thread is None  # the sampler is stopped, not left running
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        assert store.get(rec.run_id).status == status


@needs_trainer
def test_wattprint_fault_never_stops_training(tmp_path: Path) -> None:
    callback = WattprintTrainerCallback(interval=0.05)
    trainer = make_trainer(tmp_path, [callback], epochs=2)
    original = callback.meter.tracker.end_window

    def broken_end_window(name: str, **kwargs: Any) -> Any:
        if name.startswith("epoch "):
            raise OSError("disk on fire")
        return original(name, **kwargs)

    callback.meter.tracker.end_window = broken_end_window  # type: ignore[method-assign]
    out = trainer.train()
    assert out.global_step == 8  # both epochs ran
    assert "disk on fire" in callback.record.degraded["hf"] and callback.record.status == "finished"


def train_like_trainer(callbacks: list[Any], epochs: int = 3, logging_steps: int = 2) -> Any:
    """Tiny real training through transformers' own CallbackHandler, DefaultFlowCallback, TrainerState
    and TrainerControl, in the Trainer's event order and logging rules (Trainer._inner_training_loop,
    _maybe_log_save_evaluate, log). It stands in for Trainer where accelerate is not installed; only
    TrainingArguments (which needs accelerate to exist) is replaced by the fields the callbacks read."""
    from types import SimpleNamespace

    from transformers.trainer_callback import CallbackHandler, DefaultFlowCallback, TrainerControl, TrainerState
    from transformers.trainer_utils import IntervalStrategy, SaveStrategy

    args = SimpleNamespace(
        logging_strategy=IntervalStrategy.STEPS,
        logging_steps=logging_steps,
        logging_first_step=False,
        eval_strategy=IntervalStrategy.NO,
        eval_delay=0,
        save_strategy=SaveStrategy.NO,
    )
    model = tiny_bert()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = torch.utils.data.DataLoader(Samples(), batch_size=8)
    handler = CallbackHandler([DefaultFlowCallback(), *callbacks], model, None, optimizer, None)
    state = TrainerState(max_steps=epochs * len(loader), num_train_epochs=epochs, logging_steps=logging_steps)
    control = TrainerControl()
    acc = {"loss": 0.0, "last_logged": 0}

    def log(logs: dict[str, float]) -> None:
        logs["epoch"] = state.epoch
        state.log_history.append({**logs, "step": state.global_step})
        handler.on_log(args, state, control, logs)

    def maybe_log() -> None:
        if control.should_log and state.global_step > acc["last_logged"]:
            log({"loss": acc["loss"] / (state.global_step - acc["last_logged"])})
            acc.update(loss=0.0, last_logged=state.global_step)

    control = handler.on_train_begin(args, state, control)
    for epoch in range(epochs):
        control = handler.on_epoch_begin(args, state, control)
        for i, batch in enumerate(loader):
            control = handler.on_step_begin(args, state, control)
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            acc["loss"] += loss.item()
            state.global_step += 1
            state.epoch = epoch + (i + 1) / len(loader)
            control = handler.on_step_end(args, state, control)
            maybe_log()
        control = handler.on_epoch_end(args, state, control)
        maybe_log()
    log({"train_runtime": 1.0, "train_loss": 0.5})
    handler.on_train_end(args, state, control)
    return state


def test_callback_through_transformers_callback_machinery(wattprint_env: Path) -> None:
    recorder = Recorder()
    callback = WattprintTrainerCallback(region="DE", interval=0.05)
    state = train_like_trainer([callback, recorder])  # the callback ahead of the "logger", as attach() puts it
    rec = callback.record
    assert rec.status == "finished" and rec.name == "BertForSequenceClassification"
    _assert_logged(rec, state.log_history, recorder)
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        assert store.get(rec.run_id).status == "finished"


def test_epoch_figures_wait_for_the_next_log_when_the_step_log_took_the_epoch_end() -> None:
    """Logging every 4 steps with 4 steps per epoch: the epoch-end log is skipped (same step), the
    epoch's figures go out with the next log rather than being lost."""
    callback = WattprintTrainerCallback(interval=0.05, log_every_n_steps=0)
    state = train_like_trainer([callback], epochs=2, logging_steps=4)
    assert len(values(state.log_history, "wattprint/epoch_energy_kwh")) == 2


def test_a_crashed_train_is_closed_as_failed_by_the_next() -> None:
    callback = WattprintTrainerCallback(interval=0.05)
    with pytest.raises(RuntimeError, match="boom"):
        train_like_trainer([callback, Exploding()], epochs=1)
    crashed = callback.tracker
    train_like_trainer([callback], epochs=1)
    assert crashed.record.status == "failed" and callback.record.status == "finished"
    assert callback.record.run_id != crashed.record.run_id


def test_fault_in_wattprint_never_stops_the_loop() -> None:
    callback = WattprintTrainerCallback(interval=0.05)
    original = callback.tracker.end_window

    def broken_end_window(name: str, **kwargs: Any) -> Any:
        if name.startswith("epoch "):
            raise OSError("disk on fire")
        return original(name, **kwargs)

    callback.tracker.end_window = broken_end_window  # type: ignore[method-assign]
    state = train_like_trainer([callback], epochs=2)
    assert state.global_step == 8
    assert "disk on fire" in callback.record.degraded["hf"] and callback.record.status == "finished"


class Exploding(transformers.TrainerCallback):
    """A user callback that fails mid-epoch: train() dies without on_train_end."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 2:
            raise RuntimeError("boom")


def test_bad_settings_fail_before_training() -> None:
    with pytest.raises(WattprintInputError, match="log_every_n_steps"):
        WattprintTrainerCallback(log_every_n_steps=-1)


def test_missing_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "try:\n    import wattprint.integrations.hf\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingExtraError") and "pip install 'wattprint[hf]'" in out
