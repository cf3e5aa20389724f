"""The Lightning callback on tiny real fits: CSVLogger columns, prediction, stored run, faults, failures."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning.pytorch")
import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.integrations.lightning import WattprintCallback  # noqa: E402
from wattprint.store import open_store  # noqa: E402

pytestmark = pytest.mark.slow  # Lightning's import and Trainer set-up alone take several seconds


class TinyRegressor(pl.LightningModule):
    """A small MLP on random data; `fail_at_epoch` raises inside training_step to test failures."""

    def __init__(self, fail_at_epoch: int | None = None) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
        self.fail_at_epoch = fail_at_epoch

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.fail_at_epoch is not None and self.current_epoch == self.fail_at_epoch:
            raise RuntimeError("user bug in training_step")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loader() -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 32, generator=gen)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=32)  # 8 batches per epoch


def trainer(tmp_path: Path, callback: WattprintCallback, max_epochs: int = 3) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(tmp_path, name="csv"),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=4,
    )


def metrics_rows(tmp_path: Path) -> list[dict[str, str]]:
    [path] = tmp_path.glob("csv/version_*/metrics.csv")
    with path.open() as fh:
        return list(csv.DictReader(fh))


def column(rows: list[dict[str, str]], name: str) -> list[float]:
    return [float(r[name]) for r in rows if r.get(name)]


def test_fit_logs_epoch_step_and_predicted_energy(tmp_path: Path, wattprint_env: Path) -> None:
    callback = WattprintCallback(region="FR", interval=0.05)
    trainer(tmp_path, callback).fit(TinyRegressor(), loader())
    rec = callback.record
    assert rec.status == "finished" and rec.name == "TinyRegressor"
    rows = metrics_rows(tmp_path)

    epoch_kwh = column(rows, "wattprint/epoch_energy_kwh")
    assert len(epoch_kwh) == 3 and all(v > 0 for v in epoch_kwh)
    assert all(v > 0 for v in column(rows, "wattprint/epoch_co2e_kg.operational"))
    # 8 batches per epoch at the Trainer's cadence of 4: two step figures per epoch
    step_kwh = column(rows, "wattprint/step_energy_kwh")
    assert len(step_kwh) == 6 and all(v > 0 for v in step_kwh)
    # the logged epoch figures are the record's epoch windows
    windows = [w for w in rec.windows if w["name"].startswith("epoch ")]
    assert [w["name"] for w in windows] == ["epoch 0", "epoch 1", "epoch 2"]
    assert epoch_kwh == pytest.approx([w["energy_kwh"]["total"] for w in windows])
    # the per-step windows are measured but kept off the record: it holds the epochs only
    assert [w["name"] for w in rec.windows] == ["epoch 0", "epoch 1", "epoch 2"]
    # CO2e of an epoch: energy x PUE x the French grid's intensity
    assert column(rows, "wattprint/epoch_co2e_kg.operational")[0] == pytest.approx(
        epoch_kwh[0] * rec.pue * rec.intensity_g_per_kwh / 1000, rel=1e-6
    )

    # a prediction from epoch 2 of 3 on (predict_after_epochs=2): one value, covering what was done
    predicted = column(rows, "wattprint/predicted_energy_kwh")
    assert len(predicted) == 2 and predicted[0] > sum(epoch_kwh[:2])
    low, high = column(rows, "wattprint/predicted_energy_kwh_low"), column(rows, "wattprint/predicted_energy_kwh_high")
    assert low[0] <= predicted[0] <= high[0]
    assert column(rows, "wattprint/predicted_co2e_kg.operational")[0] > 0

    # the run's totals, logged once at the end, are the stored record's
    assert column(rows, "wattprint/run_energy_kwh") == pytest.approx([rec.energy_kwh.total])
    # one meaning per name, as on the record: the run's three figures, and epochs that are operational
    assert column(rows, "wattprint/run_co2e_kg.total") == pytest.approx([rec.co2e_kg.total])
    assert column(rows, "wattprint/run_co2e_kg.operational") == pytest.approx([rec.co2e_kg.operational])
    assert column(rows, "wattprint/run_co2e_kg.embodied") == pytest.approx([rec.co2e_kg.embodied])
    assert not [k for row in rows for k in row if k.endswith("co2e_kg")]  # no figure without its meaning
    assert sum(column(rows, "wattprint/epoch_co2e_kg.operational")) <= rec.co2e_kg.operational * 1.01
    assert rec.energy_kwh.total >= sum(epoch_kwh)
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        stored = store.get(rec.run_id)
    assert stored.status == "finished" and stored.energy_kwh.total == pytest.approx(rec.energy_kwh.total)

    # how the energy was obtained travels with the logs
    [hparams] = tmp_path.glob("csv/version_*/hparams.yaml")
    text = hparams.read_text()
    assert "wattprint/measurement" in text and rec.run_id in text
    assert (rec.measurement.cpu or "") in text


def test_your_tracker_over_two_fits(tmp_path: Path) -> None:
    """A tracker you own stays yours: not stopped by the callback, and each fit's epochs are told apart."""
    import wattprint

    with wattprint.track("two-fits", interval=0.05) as t:
        callback = WattprintCallback(tracker=t, predict_after_epochs=1)
        trainer(tmp_path / "a", callback, max_epochs=2).fit(TinyRegressor(), loader())
        assert t.record.status == "running"
        trainer(tmp_path / "b", callback, max_epochs=2).fit(TinyRegressor(), loader())
        second = column(metrics_rows(tmp_path / "b"), "wattprint/predicted_energy_kwh")
    epochs = [w["name"] for w in t.record.windows if "epoch" in w["name"]]
    assert epochs == ["epoch 0", "epoch 1", "fit 2 epoch 0", "fit 2 epoch 1"]
    # the second fit's prediction after its first epoch covers its own two epochs, not four
    fit2 = [w["energy_kwh"]["total"] for w in t.record.windows if w["name"].startswith("fit 2 epoch ")]
    assert second[0] == pytest.approx(2 * fit2[0], rel=1e-6)
    assert t.record.status == "finished"


def test_training_failure_marks_the_run_failed(tmp_path: Path) -> None:
    callback = WattprintCallback(interval=0.05)
    with pytest.raises(RuntimeError, match="user bug"):
        trainer(tmp_path, callback).fit(TinyRegressor(fail_at_epoch=1), loader())
    assert callback.record.status == "failed"
    assert [w["name"] for w in callback.record.windows if w["name"].startswith("epoch ")] == ["epoch 0", "epoch 1"]


def test_wattprint_fault_never_stops_training(
    tmp_path: Path, wattprint_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A window that cannot be opened (the name is taken) is flagged and logged; the fit completes."""
    callback = WattprintCallback(interval=0.05)
    original_start = callback.meter.start

    def start_and_block() -> None:
        original_start()
        callback.tracker.begin_window("epoch 0")  # the callback's own window name is now taken

    callback.meter.start = start_and_block  # type: ignore[method-assign]
    fit = trainer(tmp_path, callback, max_epochs=2)
    fit.fit(TinyRegressor(), loader())
    assert fit.current_epoch == 2  # both epochs ran
    rec = callback.record
    assert rec.status == "finished" and "epoch window" in rec.degraded["lightning"]
    assert any("training goes on" in r.getMessage() for r in caplog.records)
    # the flag outlives the tracker's record updates: it is in the stored record too
    with open_store(f"sqlite:///{wattprint_env / 'wattprint.db'}") as store:
        assert "epoch window" in store.get(rec.run_id).degraded["lightning"]


def test_bad_settings_fail_before_training() -> None:
    with pytest.raises(WattprintInputError, match="region"):
        WattprintCallback(region="Atlantis")
    with pytest.raises(WattprintInputError, match="predict_after_epochs"):
        WattprintCallback(predict_after_epochs=0)


def test_missing_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['lightning'] = None\n"
        "import wattprint\n"
        "try:\n    import wattprint.integrations.lightning\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingExtraError") and "pip install 'wattprint[lightning]'" in out
