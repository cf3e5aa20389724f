"""Once-for-all: elastic layers, extraction, MACs, batch-norm recalibration, supernet training on digits, and the
budget-constrained search (measured energy and latency, "none fits")."""

from __future__ import annotations

import copy
import functools
import json
import random
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("optuna")
nn = torch.nn

from tests.optimize import accuracy, digits  # noqa: E402
from wattprint import count_flops  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize.ofa import (  # noqa: E402
    ElasticBatchNorm,
    ElasticConv2d,
    ElasticDepth,
    ElasticLinear,
    SubnetConfig,
    Supernet,
    extract,
    recalibrate_bn,
    sort_channels,
)
from wattprint.optimize.ofa_search import search_subnets  # noqa: E402
from wattprint.optimize.ofa_train import ShrinkConfig, train_supernet  # noqa: E402

FAST: dict[str, Any] = {"repeats": 3, "energy_min_s": 0.05, "progress": False}
ELASTIC = (ElasticConv2d, ElasticLinear, ElasticBatchNorm, ElasticDepth)


def chain(widths: tuple[int, ...] = (4, 8, 16), kernels: tuple[int, ...] = (3, 5)) -> Supernet:
    """conv -> stage of up to 2 convs (8x8) -> pool -> flatten -> hidden (8 or 16) -> 10; BN + ReLU after convs."""
    top = max(widths)

    def conv(in_channels: int) -> nn.Module:
        return nn.Sequential(ElasticConv2d(in_channels, widths, kernels, bias=False), ElasticBatchNorm(top), nn.ReLU())

    body = nn.Sequential(
        conv(1),
        ElasticDepth([conv(top), conv(top)]),
        nn.MaxPool2d(2),
        nn.Flatten(),
        ElasticLinear(top * 16, (8, 16)),
        nn.ReLU(),
        ElasticLinear(16, 10),
    )
    return Supernet(body, (1, 8, 8))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ElasticConv2d(8, (4, 8), (3, 5)),
            ElasticBatchNorm(8),
            nn.ReLU(),
            ElasticConv2d(8, 8, 1),
            ElasticBatchNorm(8),
        )

    def forward(self, x: Any) -> Any:
        return torch.relu(x + self.body(x))


def residual() -> Supernet:
    body = nn.Sequential(
        ElasticConv2d(1, 8, (3, 5)),
        nn.ReLU(),
        ElasticDepth([Residual(), Residual(), Residual()]),
        nn.Flatten(),
        ElasticLinear(8 * 64, 10),
    )
    return Supernet(body, (1, 8, 8))


def stir_batch_norms(net: Supernet) -> None:
    """Running statistics away from their (0, 1) start, so that extraction must copy them to match."""
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(32, 1, 8, 8) * 2 + 1)
    net.eval()


@functools.lru_cache(maxsize=1)
def _trained() -> Supernet:
    torch.manual_seed(0)
    net = chain(widths=(8, 16))
    x, y, _, _ = digits()
    config = ShrinkConfig(largest_epochs=3, kernel_epochs=1, depth_epochs=1, width_epochs=3, seed=0)
    train_supernet(net, x, y, config=config)
    return net


def trained() -> Supernet:
    """A supernet trained briefly on digits (cached; a deep copy each call)."""
    return copy.deepcopy(_trained())


# -- elastic layers ------------------------------------------------------------------------------------------------
def test_elastic_layers_at_full_size_equal_plain_layers() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    conv = ElasticConv2d(3, (4, 8), (3, 5))
    plain = nn.Conv2d(3, 8, 5, padding=2)
    plain.load_state_dict(conv.state_dict())
    assert torch.allclose(conv(x), plain(x), atol=1e-6)

    linear, plain_linear = ElasticLinear(12, (6, 10)), nn.Linear(12, 10)
    plain_linear.load_state_dict(linear.state_dict())
    features = torch.randn(5, 12)
    assert torch.allclose(linear(features), plain_linear(features), atol=1e-6)

    norm, plain_norm = ElasticBatchNorm(3), nn.BatchNorm2d(3)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    plain_norm.load_state_dict(norm.state_dict())
    for _ in range(2):  # training: batch statistics, and the same running averages
        assert torch.allclose(norm(x * 3 + 1), plain_norm(x * 3 + 1), atol=1e-5)
    assert torch.allclose(norm.running_mean, plain_norm.running_mean)
    assert torch.allclose(norm.running_var, plain_norm.running_var)
    norm.eval(), plain_norm.eval()
    assert torch.allclose(norm(x), plain_norm(x), atol=1e-5)


def test_smaller_choices_take_the_first_channels_and_the_centre_of_the_kernel() -> None:
    torch.manual_seed(0)
    conv = ElasticConv2d(3, (4, 8), (3, 5))
    conv.active_width, conv.active_kernel = 4, 3
    x = torch.randn(2, 2, 8, 8)  # two input channels: the first two of the weight
    expected = nn.functional.conv2d(x, conv.weight[:4, :2, 1:4, 1:4], conv.bias[:4], padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    plain = conv.export()
    assert (plain.in_channels, plain.out_channels, plain.kernel_size, plain.padding) == (2, 4, (3, 3), (1, 1))
    assert torch.allclose(plain(x), expected, atol=1e-6)


# -- space, configs, extraction ---------------------------------------------------------------------------------------
def test_space_lists_the_choices_and_configs_are_hashable_json_values() -> None:
    net = chain()
    space = net.space
    assert space.depths == ((1, 2),)
    assert space.kernels == ((3, 5),) * 3
    assert space.widths == ((4, 8, 16),) * 3 + ((8, 16),)  # the 10 outputs have one choice: no position
    assert space.largest() == SubnetConfig((2,), (5, 5, 5), (16, 16, 16, 16))
    assert space.smallest() == SubnetConfig((1,), (3, 3, 3), (4, 4, 4, 8))
    config = SubnetConfig((1,), (3, 5, 3), (8, 4, 4, 16))
    # the second block of the stage does not run: its kernel and width do not make another architecture
    canonical = space.canonical(config)
    assert canonical == SubnetConfig((1,), (3, 5, 5), (8, 4, 16, 16))
    assert space.canonical(SubnetConfig((1,), (3, 5, 5), (8, 4, 8, 16))) == canonical
    assert len({canonical, space.canonical(config)}) == 1
    assert SubnetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.label == "d1 k3,5,3 w8,4,4,16"


def test_extract_gives_a_standalone_plain_model_with_the_supernet_outputs() -> None:
    for make in (chain, residual):
        torch.manual_seed(1)
        net = make()
        stir_batch_norms(net)
        x = torch.randn(6, 1, 8, 8)
        rng = random.Random(0)
        configs = [net.space.largest(), net.space.smallest()] + [net.space.sample(rng) for _ in range(4)]
        for config in configs:
            model = extract(net, config)
            assert not any(isinstance(m, ELASTIC) for m in model.modules())
            assert not model.training and net.active == net.space.largest()  # the supernet is left as it was
            net.set_active(config)
            with torch.no_grad():
                expected, got = net(x), model(x)
            assert torch.allclose(got, expected, atol=1e-5), config.label
            net.set_active(net.space.largest())
        # standalone: its own copies of the weights
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
            assert torch.allclose(model(x), got)


def test_macs_follow_kernel_width_and_depth_exactly() -> None:
    net = chain()
    x = torch.zeros(1, 1, 8, 8)

    def macs(config: SubnetConfig) -> int:
        return count_flops(extract(net, config), x).macs

    def by_hand(config: SubnetConfig) -> int:
        (depth,), kernels, (w0, w1, w2, hidden) = config.depths, config.kernels, config.widths
        widths = [1, w0, w1, w2][: depth + 2]
        convs = sum(64 * a * b * k * k for a, b, k in zip(widths, widths[1:], kernels, strict=False))
        return convs + widths[-1] * 16 * hidden + hidden * 10

    largest = net.space.largest()
    configs = [largest, net.space.smallest(), SubnetConfig((1,), (5, 3, 5), (16, 8, 4, 16))]
    for config in configs:
        assert macs(config) == by_hand(config), config.label
    # each choice alone: the stem's kernel 5 -> 3 saves 64 * 16 * (25 - 9) MACs; the second block's width, depth
    assert macs(SubnetConfig((2,), (3, 5, 5), (16, 16, 16, 16))) == macs(largest) - 64 * 16 * 16
    assert macs(SubnetConfig((2,), (5, 5, 5), (16, 16, 8, 16))) == macs(largest) - 64 * 16 * 8 * 25 - 8 * 16 * 16
    assert macs(SubnetConfig((1,), (5, 5, 5), (16, 16, 16, 16))) == macs(largest) - 64 * 16 * 16 * 25


def test_sort_channels_keeps_the_largest_network_exact_and_orders_filters_by_importance() -> None:
    for make, count in ((chain, 4), (residual, 3)):  # residual: each block's inner layer, not the fixed 1x1 output
        torch.manual_seed(2)
        net = make()
        stir_batch_norms(net)
        x = torch.randn(5, 1, 8, 8)
        with torch.no_grad():
            before = net(x)
        assert sort_channels(net) == count
        with torch.no_grad():
            assert torch.allclose(net(x), before, atol=1e-5)
        first = next(m for m in net.width_layers if m.weight.dim() == 4).weight.abs().flatten(1).sum(1)
        assert torch.all(first[:-1] >= first[1:])


class Skip(nn.Module):
    """x + conv(x): the stem's channels also reach the sum, so reordering them changes the network."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = ElasticConv2d(8, 8, 3)

    def forward(self, x: Any) -> Any:
        return x + self.conv(x)


def test_sort_channels_leaves_a_network_that_is_not_a_chain_as_it_was(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(3)
    net = Supernet(
        nn.Sequential(ElasticConv2d(1, (4, 8), 3), Skip(), nn.Flatten(), ElasticLinear(8 * 64, 10)), (1, 8, 8)
    )
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert sort_channels(net) == 0
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert "do not form a chain" in caplog.text


# -- training, recalibration -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_short_supernet_training_on_digits_beats_chance_for_the_largest_and_a_small_subnet() -> None:
    net = trained()
    x, _, _, _ = digits()
    largest = recalibrate_bn(extract(net, net.space.largest()), x)
    small = recalibrate_bn(extract(net, net.space.smallest()), x)
    assert count_flops(small, x[:1]).macs * 10 < count_flops(largest, x[:1]).macs
    assert accuracy(largest) > 0.9  # chance: 0.1
    assert accuracy(small) > 0.7


def test_train_supernet_is_seeded_and_reports_its_phases() -> None:
    x, y, _, _ = digits()
    config = ShrinkConfig(largest_epochs=1, kernel_epochs=1, depth_epochs=0, width_epochs=1, subnets_per_step=2)
    nets = []
    for _ in range(2):
        torch.manual_seed(3)
        net = chain(widths=(4, 8))
        report = train_supernet(net, x[:256], y[:256], config=config)
        nets.append(net)
    first, second = (n.state_dict() for n in nets)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert [p["phase"] for p in report.phases] == ["largest", "kernel", "width"]
    assert [p["passes"] for p in report.phases] == [4, 12, 12]  # 4 steps; then the largest + 2 sub-networks
    assert report.channels_sorted == 4 and report.passes == 28
    assert not nets[0].training and nets[0].active == nets[0].space.largest()


@pytest.mark.slow
def test_recalibration_replaces_the_statistics_and_recovers_a_shrunk_subnet() -> None:
    net = trained()
    x, _, _, _ = digits()
    # statistics of the largest network everywhere: what a sub-network gets when nothing is recalibrated
    net.set_active(net.space.largest())
    recalibrate_bn(net, x)
    small = extract(net, net.space.smallest())
    stale = [m.running_mean.clone() for m in small.modules() if isinstance(m, nn.BatchNorm2d)]
    before = accuracy(small)
    assert recalibrate_bn(small, x) is small and not small.training
    fresh = [m.running_mean for m in small.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(not torch.allclose(a, b) for a, b in zip(stale, fresh, strict=True))
    assert accuracy(small) > before + 0.05


def test_recalibration_takes_batches_from_an_iterable() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))
    x = torch.randn(64, 1, 8, 8) * 3 + 2
    loader = [(x[i : i + 16], torch.zeros(16)) for i in range(0, 64, 16)]
    recalibrate_bn(model, loader)
    with torch.no_grad():
        out = model[0](x)
    # equal batches: the average of the batch means is the mean
    assert torch.allclose(model[1].running_mean, out.mean((0, 2, 3)), atol=1e-5)
    assert model[1].momentum == 0.1  # restored


# -- constrained search ----------------------------------------------------------------------------------------------
def _search(net: Supernet, **kwargs: Any) -> Any:
    x, _, x_test, _ = digits()
    return search_subnets(net, accuracy, x_test[:32], calibration_data=x, seed=0, **{**FAST, **kwargs})


@pytest.mark.slow
def test_the_constrained_search_never_returns_a_subnet_over_its_measured_budget() -> None:
    net = trained()
    steady = {"energy_min_s": 0.2}  # longer energy windows: a busy machine's noise must not decide the budget
    free = _search(net, n_trials=6, **steady)
    assert free.fits and free.reason is None and len(free.candidates) >= 2
    assert {free.candidates[0]["recipe"], free.candidates[1]["recipe"]} == {
        net.space.canonical(net.space.smallest()).label,
        net.space.largest().label,
    }
    for c in free.candidates:
        assert c["energy_per_inference_j"] > 0 and c["energy_method"] in ("measured", "estimated", "mixed")
        assert c["macs"] == count_flops(extract(net, SubnetConfig.from_dict(c["config"])), digits()[2][:32]).macs
    energies = sorted(c["energy_per_inference_j"] for c in free.candidates)
    latencies = sorted(c["latency_ms"] for c in free.candidates)
    # halfway between the least and the most: room for the smallest to be measured a little dearer again
    budget_j, budget_ms = (energies[0] + energies[-1]) / 2, latencies[-1] * 2
    result = _search(net, n_trials=6, max_energy_j=budget_j, max_latency_ms=budget_ms, **steady)
    assert result.fits, result.reason
    best = result.best
    assert best["energy_per_inference_j"] <= budget_j and best["latency_ms"] <= budget_ms
    assert best["second_measurement"]["energy_per_inference_j"] <= budget_j
    assert best["second_measurement"]["latency_ms"] <= budget_ms
    for c in result.pareto:
        assert c["feasible"] and c["energy_per_inference_j"] <= budget_j
    for c in result.candidates:
        assert c["feasible"] == (c["energy_per_inference_j"] <= budget_j and c["latency_ms"] <= budget_ms) or (
            "second measurement" in " ".join(c["over_budget"])
        )
    assert best["metric"] == max(c["metric"] for c in result.candidates if c["feasible"])
    assert result.best_config == SubnetConfig.from_dict(best["config"])
    # its document makes the search result page: sub-networks, metric vs energy per inference
    from wattprint.report.search_page import candidates_of, search_html

    kind, rows = candidates_of(result.to_dict())
    assert kind == "once-for-all sub-networks" and len(rows) == len(result.candidates)
    assert search_html(result.to_dict()).count("<svg") == 1


def test_an_impossible_budget_says_that_none_fits() -> None:
    net = chain(widths=(4, 8))
    x, _, _, _ = digits()
    for budget in ({"max_energy_j": 1e-12}, {"max_latency_ms": 1e-9}):
        result = _search(net, n_trials=2, **budget)
        assert not result.fits and result.best is None and result.best_config is None
        assert result.reason.startswith("none fits among 2 sub-networks measured")
        assert all(not c["feasible"] and c["over_budget"] for c in result.candidates)
        assert result.pareto == []
        assert json.dumps(result.to_dict(), default=str)


def test_a_study_in_a_database_continues_and_refuses_another_space(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ofa.db'}"
    net = chain(widths=(4, 8))
    first = _search(net, n_trials=2, storage=url, study_name="ofa")
    second = _search(net, n_trials=2, storage=url, study_name="ofa")
    assert len(first.candidates) == 2 and len(second.candidates) >= 2
    assert {c["recipe"] for c in first.candidates} <= {c["recipe"] for c in second.candidates}
    with pytest.raises(WattprintInputError) as info:
        _search(chain(widths=(4, 16)), n_trials=1, storage=url, study_name="ofa")
    assert info.value.field == "study_name"


# -- bad input -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ElasticConv2d(1, (4, 8), (3, 4)), "kernel_sizes"),
        (lambda: ElasticConv2d(1, [], 3), "out_channels"),
        (lambda: ElasticLinear(4, (0, 4)), "out_features"),
        (lambda: ElasticDepth([nn.ReLU()], depths=(1, 2)), "depths"),
        (lambda: ElasticDepth([]), "blocks"),
        (lambda: Supernet("not a module", (1, 8, 8)), "body"),  # type: ignore[arg-type]
        (lambda: Supernet(nn.Sequential(ElasticLinear(4, (2, 4))), (0,)), "input_shape"),
        (lambda: Supernet(nn.Linear(4, 4), (4,)), "body"),
        (lambda: extract(chain(), SubnetConfig((3,), (3, 3, 3), (4, 4, 4, 8))), "config"),
        (lambda: extract(nn.Linear(2, 2), SubnetConfig((1,), (), ())), "supernet"),  # type: ignore[arg-type]
        (lambda: SubnetConfig.from_dict({"depths": [1]}), "config"),
        (lambda: recalibrate_bn(nn.BatchNorm1d(2), 5), "data"),
        (lambda: recalibrate_bn(nn.BatchNorm1d(2), []), "data"),
        (lambda: train_supernet(chain(), digits()[0], digits()[1][:10]), "x"),
        (lambda: train_supernet(chain(), *digits()[:2], config=ShrinkConfig(alpha=2.0)), "alpha"),
        (lambda: train_supernet(chain(), *digits()[:2], config=ShrinkConfig(width_epochs=-1)), "width_epochs"),
        (lambda: train_supernet(chain(), *digits()[:2], config=ShrinkConfig(shrink_lr=0)), "shrink_lr"),
        (lambda: _search(chain(), n_trials=1, max_energy_j=-1.0), "max_energy_j"),
        (lambda: _search(chain(), n_trials=1, max_latency_ms=float("nan")), "max_latency_ms"),
        (lambda: _search(chain(), n_trials=0), "n_trials"),
        (lambda: _search(chain(), n_trials=1, storage="not a url"), "storage"),
        (lambda: search_subnets(chain(), accuracy, digits()[2][:8], n_trials=1), "calibration_data"),
        (lambda: search_subnets(nn.Linear(2, 2), accuracy, digits()[2][:8]), "supernet"),
    ],
)
def test_bad_input_names_the_field(make: Any, field: str) -> None:
    with pytest.raises(WattprintInputError) as info:
        make()
    assert info.value.field == field
    assert "accepted" in str(info.value)
