"""Pruning on small real models: magnitude, channels (Torch-Pruning), lottery tickets with rewinding, RigL."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from tests.optimize import accuracy, cnn, digits, mlp, train, trained  # noqa: E402
from wattprint import count_flops  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize.prune import RigL, lottery_ticket, magnitude_prune, prune_channels, sparsity  # noqa: E402


def _one_step(model: nn.Module) -> None:
    x, y, _, _ = digits()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    opt.zero_grad()
    F.cross_entropy(model(x[:64]), y[:64]).backward()
    opt.step()


def test_magnitude_prune_is_global_and_counts_only_nonzero_macs() -> None:
    model = trained("cnn")
    x = digits()[2][:1]
    base = count_flops(model, x)
    magnitude_prune(model, 0.8)
    assert sparsity(model) == pytest.approx(0.8, abs=0.005)
    per_layer = [float((m.weight == 0).float().mean()) for m in model.modules() if hasattr(m, "weight")]
    assert max(per_layer) - min(per_layer) > 0.05  # one global threshold, not the same share per layer
    assert not any(name.endswith("_orig") for name, _ in model.named_parameters())  # masks folded in
    after = count_flops(model, x)
    assert after.macs == base.macs  # dense kernels still multiply the zeros: no dense speed-up
    # fewer nonzero MACs, though far fewer than 80%: the parameter-heavy Linear layers lose most weights
    assert count_flops(model, x, nonzero=True).macs < 0.6 * base.macs


def test_magnitude_prune_keeps_zeros_during_fine_tuning() -> None:
    model = trained("mlp")
    seen: list[float] = []

    def fine_tune(m: nn.Module) -> None:
        for _ in range(3):
            _one_step(m)
        seen.append(float((m[1].weight == 0).float().mean()))  # the masked weight the forward pass sees

    magnitude_prune(model, 0.6, train_fn=fine_tune)
    assert len(seen) == 1 and seen[0] > 0.3
    assert sparsity(model) == pytest.approx(0.6, abs=0.005)  # steps did not revive pruned weights


def test_fine_tuning_recovers_accuracy_of_heavy_magnitude_pruning() -> None:
    torch.manual_seed(0)
    model = trained("mlp")
    untuned = magnitude_prune(trained("mlp"), 0.95)
    tuned = magnitude_prune(model, 0.95, train_fn=lambda m: train(m, epochs=3))
    assert accuracy(tuned) > accuracy(untuned)
    assert sparsity(tuned) == pytest.approx(0.95, abs=0.005)


def test_prune_channels_removes_dense_macs_and_keeps_the_head() -> None:
    model = trained("cnn")
    x = digits()[2][:1]
    base = count_flops(model, x)
    calls: list[int] = []
    prune_channels(model, 0.5, x, train_fn=lambda m: calls.append(1))
    assert calls == [1]
    assert [m.out_channels for m in model if isinstance(m, nn.Conv2d)] == [4, 8]
    assert model[-1].out_features == 10  # the classifier keeps its classes
    after = count_flops(model, x)
    assert after.macs < base.macs / 3.5
    assert after.params < base.params / 3
    assert model(x).shape == (1, 10)


def test_prune_channels_needs_example_inputs_and_valid_fraction() -> None:
    with pytest.raises(WattprintInputError) as info:
        prune_channels(cnn(), 0.5, None)
    assert info.value.field == "example_inputs"
    for bad in (0.0, 1.0, 2.0, -1.0):
        with pytest.raises(WattprintInputError):
            prune_channels(cnn(), bad, torch.randn(1, 1, 8, 8))
        with pytest.raises(WattprintInputError):
            magnitude_prune(mlp(), bad)


def test_erk_densities_keep_the_overall_density() -> None:
    from wattprint.optimize.prune import erk_densities

    shapes = [(16, 1, 3, 3), (32, 16, 3, 3), (64, 512), (10, 64)]
    sizes = [144, 4608, 32768, 640]
    dens = erk_densities(shapes, 0.1)
    assert sum(d * n for d, n in zip(dens, sizes, strict=True)) == pytest.approx(0.1 * sum(sizes))
    assert dens[0] > 0.5 and dens[3] > 0.5 and dens[1] < 0.1  # small layers stay dense, big ones sparse
    dens = erk_densities(shapes, 0.3)
    assert dens[0] == dens[3] == 1.0  # they would need a density above 1: kept dense, the others rescaled
    assert sum(d * n for d, n in zip(dens, sizes, strict=True)) == pytest.approx(0.3 * sum(sizes))
    assert erk_densities([(8, 8), (8, 8)], 0.5) == pytest.approx([0.5, 0.5])


def test_integer_weights_cannot_be_pruned() -> None:
    model = nn.Sequential(nn.Linear(8, 8))
    model[0].weight = nn.Parameter(torch.ones(8, 8, dtype=torch.int8), requires_grad=False)
    with pytest.raises(WattprintInputError) as info:
        magnitude_prune(model, 0.5)
    assert "floating point" in str(info.value)


def test_lottery_ticket_rewinds_survivors_to_initial_weights() -> None:
    torch.manual_seed(1)
    model = mlp()
    init = model[1].weight.detach().clone()
    rounds = 3
    calls = []

    def train_fn(m: nn.Module) -> None:
        calls.append(1)
        if len(calls) == rounds + 1:  # the final training starts from the rewound ticket
            w = m[1].weight.detach()
            mask = w != 0
            assert torch.equal(w[mask], init[mask])
            assert float((~mask).float().mean()) == pytest.approx(0.8, abs=0.02)
        train(m, epochs=1)

    lottery_ticket(model, 0.8, train_fn, rounds=rounds)
    assert len(calls) == rounds + 1
    assert sparsity(model) == pytest.approx(0.8, abs=0.005)
    assert accuracy(model) > 0.6  # the sparse ticket learns (chance is 0.1)
    with pytest.raises(WattprintInputError):
        lottery_ticket(mlp(), 0.5, train_fn, rounds=0)


@pytest.mark.slow
def test_rigl_keeps_density_regrows_connections_and_learns() -> None:
    torch.manual_seed(0)
    model = mlp(128)
    x, y, _, _ = digits()
    steps_per_epoch = -(-len(x) // 64)
    rigl = RigL(model, density=0.2, total_steps=steps_per_epoch * 6, update_every=10, alpha=0.3)
    start_masks = [m.clone() for m in rigl.masks]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(6):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            F.cross_entropy(model(x[i : i + 64]), y[i : i + 64]).backward()
            rigl.step()
            opt.step()
            rigl.apply_masks()
    assert rigl.updates > 5
    densities = list(rigl.layer_densities())
    assert densities == [float(m.float().mean()) for m in start_masks]  # each layer keeps its density
    sizes = [m.numel() for m in rigl.masks]
    assert sum(d * n for d, n in zip(densities, sizes, strict=True)) / sum(sizes) == pytest.approx(0.2, abs=0.01)
    assert densities[1] > densities[0]  # ERK: the small 128 -> 10 head stays denser than the 64 -> 128 layer
    changed = [float((a != b).float().mean()) for a, b in zip(start_masks, rigl.masks, strict=True)]
    assert all(c > 0.01 for c in changed)  # connections moved
    assert sparsity(model) >= 0.79
    assert accuracy(model) > 0.85
