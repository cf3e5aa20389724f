"""The batch-size optimizer on real, seeded torch training on digits: convergence to the cheapest size (against an
exhaustive run of every size), honest early stop, Thompson exploitation, JSON state, input checks, real meter."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from tests.optimize import digits, mlp  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize.batch_size import (  # noqa: E402
    BatchSizeOptimizer,
    MonitorMeter,
    RunControl,
    energy_time_cost,
    epoch_fit,
)

SIZES = [8, 16, 32, 64, 128, 256, 512]
TARGET = 0.95  # test accuracy of the digits MLP (Adam, lr 3e-3): reached in 3 to ~35 epochs depending on the size
MAX_EPOCHS = 60


class WorkMeter:
    """A deterministic meter: a machine on which a training step takes STEP_S of overhead plus SAMPLE_S per sample
    at a static POWER_W, and each sample costs SAMPLE_J of work. Time then follows the steps (small batches are
    slow) and energy the samples (large batches, needing more epochs, are costly): eta moves the best size. Only
    steps move the meter (the training below reports them), so the same seeded run always costs the same and
    the optimizer's choice can be checked exactly."""

    STEP_S, SAMPLE_S, POWER_W, SAMPLE_J = 1e-3, 1e-5, 10.0, 1e-2
    method = "modelled"

    def __init__(self) -> None:
        self.seconds = 0.0
        self.joules = 0.0
        self.reads = 0

    def step(self, samples: int) -> None:
        dt = self.STEP_S + self.SAMPLE_S * samples
        self.seconds += dt
        self.joules += self.POWER_W * dt + self.SAMPLE_J * samples

    def read(self) -> tuple[float, float]:
        self.reads += 1
        return self.seconds, self.joules

    def max_power_w(self) -> float:
        return 100.0

    def close(self) -> None:
        pass


def start_fn(meter: WorkMeter | None = None) -> Any:
    """start(batch_size) -> train_epoch(): a fresh seeded MLP, Adam, a seeded data order; the epoch's test accuracy."""
    import torch.nn.functional as F  # noqa: N812

    x, y, x_test, y_test = digits()

    def start(batch_size: int) -> Any:
        torch.manual_seed(0)
        model = mlp()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        order_gen = torch.Generator().manual_seed(0)

        def train_epoch() -> float:
            model.train()
            order = torch.randperm(len(x), generator=order_gen)
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                optimizer.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                optimizer.step()
                if meter is not None:
                    meter.step(len(idx))
            model.eval()
            with torch.no_grad():
                return (model(x_test).argmax(1) == y_test).float().mean().item()

        return train_epoch

    return start


@pytest.fixture(scope="module")
def exhaustive() -> dict[int, dict[str, Any]]:
    """Every size trained to the target with no early stop: its energy, time and epochs on the work meter, and the
    (energy, time) so far at the end of each epoch."""
    out: dict[int, dict[str, Any]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for size in SIZES:
            meter = WorkMeter()
            train_epoch = start_fn(meter)(size)
            so_far: list[tuple[float, float]] = []
            while len(so_far) < MAX_EPOCHS:
                metric = train_epoch()
                so_far.append((meter.joules, meter.seconds))
                if metric >= TARGET:
                    break
            else:
                pytest.fail(f"batch size {size} never reached {TARGET} in {MAX_EPOCHS} epochs")
            out[size] = {"energy_j": meter.joules, "time_s": meter.seconds, "epochs": len(so_far), "so_far": so_far}
    finally:
        torch.set_num_threads(threads)
    return out


def optimizer(meter: WorkMeter, **kwargs: Any) -> BatchSizeOptimizer:
    return BatchSizeOptimizer(SIZES, meter=meter, **kwargs)


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float results as the exhaustive run: the same epochs to target
    yield
    torch.set_num_threads(threads)


def test_cost_is_zeus_energy_time_cost() -> None:
    assert energy_time_cost(100.0, 2.0, 1.0, 300.0) == 100.0  # energy only
    assert energy_time_cost(100.0, 2.0, 0.0, 300.0) == 600.0  # time only, priced at MAXPOWER
    assert energy_time_cost(100.0, 2.0, 0.5, 300.0) == 350.0


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_exploration_converges_to_the_cheapest_size_of_an_exhaustive_run(
    eta: float, exhaustive: dict[int, dict[str, Any]]
) -> None:
    costs = {b: energy_time_cost(m["energy_j"], m["time_s"], eta, 100.0) for b, m in exhaustive.items()}
    best = min(costs, key=lambda b: costs[b])
    meter = WorkMeter()
    opt = optimizer(meter, eta=eta, seed=3)
    result = opt.explore(epoch_fit(start_fn(meter), TARGET, max_epochs=MAX_EPOCHS))
    assert result.best_batch_size == best
    assert result.best_cost == pytest.approx(costs[best])
    assert sorted(r.batch_size for r in result.runs) == sorted(SIZES)  # each explored exactly once
    for run in result.runs:  # runs that went to the target cost what the exhaustive run measured
        if run.reached:
            assert run.cost == pytest.approx(costs[run.batch_size])
            assert run.info["epochs"] == exhaustive[run.batch_size]["epochs"]
    # the full price: every joule and second the meter saw, stopped runs included
    assert result.total_cost == pytest.approx(energy_time_cost(meter.joules, meter.seconds, eta, 100.0))
    assert result.total_energy_j == pytest.approx(meter.joules)
    assert result.energy_method == "modelled"
    assert result.max_power_w == 100.0


def test_eta_moves_the_best_size(exhaustive: dict[int, dict[str, Any]]) -> None:
    def best(eta: float) -> int:
        return min(
            SIZES, key=lambda b: energy_time_cost(exhaustive[b]["energy_j"], exhaustive[b]["time_s"], eta, 100.0)
        )

    assert best(1.0) < best(0.0)  # energy favours small batches here (fewer samples to target), time larger ones
    assert best(0.0) != SIZES[-1]  # and no extreme wins time: a real trade-off


def test_early_stop_triggers_and_its_cost_counts(exhaustive: dict[int, dict[str, Any]]) -> None:
    eta = 0.5
    costs = {b: energy_time_cost(m["energy_j"], m["time_s"], eta, 100.0) for b, m in exhaustive.items()}
    best = min(costs, key=lambda b: costs[b])
    meter = WorkMeter()
    opt = optimizer(meter, eta=eta, beta=1.2, default_batch_size=best)  # the best first: a bar for all the others
    result = opt.explore(epoch_fit(start_fn(meter), TARGET, max_epochs=MAX_EPOCHS))
    assert result.runs[0].batch_size == best and result.runs[0].threshold is None
    bar = 1.2 * costs[best]
    # should_stop is asked after each epoch that did not reach the target: a size stops at the first such epoch
    # whose cost so far is past the bar
    stop_cost: dict[int, float] = {}
    for b in SIZES:
        for energy_j, time_s in exhaustive[b]["so_far"][:-1]:
            if energy_time_cost(energy_j, time_s, eta, 100.0) > bar:
                stop_cost[b] = energy_time_cost(energy_j, time_s, eta, 100.0)
                break
    expected_stops = sorted(stop_cost)
    assert len(expected_stops) >= 2, costs
    assert result.stopped == expected_stops
    for run in result.runs[1:]:
        assert run.threshold == pytest.approx(bar)
        if run.stopped_early:
            assert not run.reached
            assert run.cost == pytest.approx(stop_cost[run.batch_size])
            assert bar < run.cost < costs[run.batch_size]  # stopped once past the bar, before its whole cost
        else:
            assert run.reached and run.cost == pytest.approx(costs[run.batch_size])
    # stopped runs are in the totals at the cost they ran up: less than the exhaustive total, not less than spent
    assert result.total_cost == pytest.approx(energy_time_cost(meter.joules, meter.seconds, eta, 100.0))
    assert result.total_cost < sum(costs.values())
    assert result.total_cost == pytest.approx(
        sum(costs[b] for b in SIZES if b not in expected_stops) + sum(stop_cost.values())
    )
    assert result.best_batch_size == best
    assert result.failed == expected_stops  # never reached: never exploited


def test_thompson_exploitation_settles_on_the_best(exhaustive: dict[int, dict[str, Any]]) -> None:
    meter = WorkMeter()
    opt = optimizer(meter, eta=0.0, seed=1)
    fit = epoch_fit(start_fn(meter), TARGET, max_epochs=MAX_EPOCHS)
    best = opt.explore(fit).best_batch_size
    assert best is not None
    trained = [opt.run(fit) for _ in range(3)]  # recurring jobs, trained for real
    assert all(r.phase == "exploit" and r.batch_size in opt.converged() for r in trained)
    for run in trained:  # the same seeded training costs the same as in the exhaustive run
        m = exhaustive[run.batch_size]
        assert run.cost == pytest.approx(energy_time_cost(m["energy_j"], m["time_s"], 0.0, 100.0))
    # many more recurring jobs, each costing what its size's training costs (as just checked), without training
    picks = []
    for _ in range(150):
        size = opt.next_batch_size()
        picks.append(size)
        opt.observe(size, exhaustive[size]["energy_j"], exhaustive[size]["time_s"], True)
    assert opt.best_batch_size == best
    assert picks[-50:].count(best) >= 40, picks  # the best, with fewer and fewer looks at the others


def test_thompson_recovers_from_a_measurement_taken_in_a_busy_spell() -> None:
    """Costs measured once too high (the machine was busy) must not rule a size out for good: the floor on the
    assumed spread keeps it drawn now and then, and one fair run puts it back in front."""
    true_cost = {32: 110.0, 64: 100.0}
    opt = BatchSizeOptimizer([32, 64], eta=1.0, max_power_w=100.0, seed=0)
    opt.observe(64, 135.0, 1.0, True)  # explored during a busy spell
    for _ in range(3):
        opt.observe(32, 110.0, 1.0, True)  # then the job ran at 32 a few times in a quiet one: no spread seen
    picks = []
    for _ in range(40):
        size = opt.next_batch_size()
        picks.append(size)
        opt.observe(size, true_cost[size], 1.0, True)  # every later run measured fairly, always alike
    assert opt.best_batch_size == 64
    assert picks[-10:].count(64) >= 8, picks


def test_state_round_trips_through_json(tmp_path: Any, exhaustive: dict[int, dict[str, Any]]) -> None:
    meter = WorkMeter()
    opt = optimizer(meter, eta=0.3, beta=1.5, default_batch_size=64, seed=7)
    fit = epoch_fit(start_fn(meter), TARGET, max_epochs=MAX_EPOCHS)
    opt.run(fit)
    opt.run(fit)  # half-way through exploration: the next job must go on from here
    text = json.dumps(opt.to_dict())
    again = BatchSizeOptimizer.from_dict(json.loads(text), meter=meter)
    assert again.to_dict() == opt.to_dict()
    assert again.unexplored() == opt.unexplored() and len(again.unexplored()) == len(SIZES) - 2
    path = tmp_path / "bs.json"
    opt.explore(fit)
    opt.save(path)
    loaded = BatchSizeOptimizer.load(path, meter=meter)
    assert loaded.to_dict() == opt.to_dict()
    assert loaded.next_batch_size() == opt.next_batch_size()  # the same seeded draw
    assert loaded.result().to_dict() == opt.result().to_dict()
    json.dumps(loaded.result().to_dict())  # the result is JSON-ready too


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_sizes": []}, "batch_sizes"),
        ({"batch_sizes": [0, 8]}, "batch_sizes"),
        ({"batch_sizes": [8, 8]}, "batch_sizes"),
        ({"batch_sizes": [8.0]}, "batch_sizes"),
        ({"batch_sizes": "8"}, "batch_sizes"),
        ({"eta": 1.5}, "eta"),
        ({"eta": -0.1}, "eta"),
        ({"eta": True}, "eta"),
        ({"beta": 0.5}, "beta"),
        ({"beta": math.inf}, "beta"),
        ({"max_power_w": 0}, "max_power_w"),
        ({"max_power_w": math.nan}, "max_power_w"),
        ({"default_batch_size": 7}, "default_batch_size"),
        ({"seed": "a"}, "seed"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    args = {"batch_sizes": [8, 16]} | kwargs
    sizes = args.pop("batch_sizes")
    with pytest.raises(WattprintInputError) as info:
        BatchSizeOptimizer(sizes, **args)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_other_bad_input() -> None:
    with pytest.raises(WattprintInputError, match="^target: "):
        epoch_fit(lambda b: lambda: 0.0, math.nan, max_epochs=3)
    with pytest.raises(WattprintInputError, match="^max_epochs: "):
        epoch_fit(lambda b: lambda: 0.0, 0.9, max_epochs=0)
    opt = BatchSizeOptimizer([8, 16], meter=WorkMeter())
    with pytest.raises(WattprintInputError, match="^batch_size: "):
        opt.observe(32, 1.0, 1.0, True)
    with pytest.raises(WattprintInputError, match="^state: "):
        BatchSizeOptimizer.from_dict({"version": 1, "batch_sizes": [8]})
    with pytest.raises(WattprintInputError, match="^state: "):
        BatchSizeOptimizer.from_dict({"version": 99})
    with pytest.raises(WattprintInputError, match="^max_power_w: "):
        BatchSizeOptimizer([8]).observe(8, 1.0, 1.0, True)  # no meter to take MAXPOWER from
    never = BatchSizeOptimizer([8, 16], meter=WorkMeter())
    never.explore(lambda b, stop: False)  # nothing reaches the target: exploitation has nothing to pick
    assert never.result().failed == [8, 16] and never.best_batch_size is None
    with pytest.raises(WattprintInputError, match="^fit: no batch size"):
        never.next_batch_size()


def test_with_wattprint_measuring() -> None:
    """The default meter: wattprint's EnergyMonitor on this process; the method it used is on every run."""
    x, y, _, _ = digits()
    with BatchSizeOptimizer([64, 256], eta=0.5, seed=0) as opt:
        result = opt.explore(epoch_fit(start_fn(), 0.9, max_epochs=40))
        meter = opt.meter
        assert isinstance(meter, MonitorMeter)
        assert opt.max_power_w is not None and opt.max_power_w > 0
        for run in result.runs:
            assert run.energy_method == meter.method and run.energy_method in ("measured", "estimated", "mixed")
            assert run.energy_j > 0 and run.time_s > 0
            assert run.cost == pytest.approx(energy_time_cost(run.energy_j, run.time_s, 0.5, opt.max_power_w))
        assert result.energy_method == meter.method
    assert opt._meter is None  # the meter it started is closed with it


def test_should_stop_reads_the_meter_only_when_there_is_a_bar() -> None:
    meter = WorkMeter()
    opt = optimizer(meter, eta=1.0)
    calls: list[bool] = []

    def fit(batch_size: int, should_stop: RunControl) -> bool:
        for _ in range(3):
            meter.step(batch_size)
            calls.append(should_stop())
        return batch_size == 16

    opt.run(fit, 16)  # no run to beat yet: never stops, never reads mid-run
    assert calls == [False] * 3
    first = opt.runs[0].cost
    calls.clear()
    opt.run(fit, 512)  # 512-sample steps: past 2 x the first run's cost at the first look
    assert calls == [True, True, True]  # stays stopped once told
    assert opt.runs[1].stopped_early and opt.runs[1].cost > 2 * first
