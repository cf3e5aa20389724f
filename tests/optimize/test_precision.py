"""bf16/fp16 recipes and mixed-precision helpers on real small models and real dtype probes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize import precision  # noqa: E402


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.LayerNorm(64), nn.Linear(64, 8)).eval()


class _Prototypes(nn.Module):
    """Nearest-prototype head: torch.cdist has no bf16/fp16 kernel on CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 8)
        self.prototypes = nn.Parameter(torch.randn(4, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(self.proj(x), self.prototypes)


def test_to_bf16_casts_weights_keeps_original_and_output_close() -> None:
    model = _mlp()
    x = torch.randn(16, 32)
    with torch.no_grad():
        ref = model(x)
        low = precision.to_bf16(model, example_inputs=x, check_speed=False)  # the cast, on any CPU
        out = low(x)  # fp32 input is cast by the model's pre-hook
    assert {p.dtype for p in low.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert out.dtype == torch.bfloat16
    # bf16 keeps 8 mantissa bits: ~0.4% relative error per op
    assert torch.allclose(out.float(), ref, atol=5e-2, rtol=5e-2)
    assert not torch.allclose(out.float(), ref, atol=1e-6, rtol=0)  # really computed in bf16


def test_probe_times_both_dtypes_on_this_cpu() -> None:
    result = precision.probe_dtype("cpu", torch.bfloat16, "matmul", (64, 64, 64))
    assert result.fp32_ms > 0 and result.low_ms > 0
    assert result.speedup == pytest.approx(result.fp32_ms / result.low_ms)
    conv = precision.probe_dtype("cpu", torch.bfloat16, "conv2d", (2, 8, 16, 16))
    assert conv.fp32_ms > 0 and conv.op == "conv2d"


def test_fp16_follows_the_probe_verdict() -> None:
    """fp16 is accepted exactly when the real probe says this CPU runs it at most 2x slower than fp32."""
    model = _mlp()
    verdict = precision.probe_dtype("cpu", torch.float16, "matmul", (256, 256, 256))  # the shape to_fp16 probes
    if verdict.ok:
        low = precision.to_fp16(model, example_inputs=torch.randn(4, 32))
        assert {p.dtype for p in low.parameters()} == {torch.float16}
    else:
        with pytest.raises(WattprintInputError, match="^recipe: fp16 refused"):
            precision.to_fp16(model)


def test_refuses_a_dtype_slower_than_the_limit() -> None:
    # a limit no low dtype can meet turns the real timing into a refusal that names the op and the ratio
    with pytest.raises(WattprintInputError) as info:
        precision.to_bf16(_mlp(), max_slowdown=1e-9)
    assert info.value.field == "recipe"
    assert "bf16 refused on this hardware: matmul " in str(info.value)
    assert "fp32" in str(info.value) and "use fp32, or int8 for inference" in str(info.value)
    assert "\n" not in str(info.value)


def test_refuses_a_model_whose_ops_lack_the_dtype() -> None:
    model = _Prototypes().eval()
    with pytest.raises(WattprintInputError, match="^recipe: bf16 refused: the model does not run in"):
        precision.to_bf16(model, example_inputs=torch.randn(3, 16), check_speed=False)
    with pytest.raises(WattprintInputError, match="^model: expected a torch.nn.Module"):
        precision.to_bf16(lambda x: x)


def test_autocast_context_runs_matmuls_in_bf16_on_cpu() -> None:
    model = _mlp()
    with precision.autocast_context("cpu", check=False):
        out = model[0](torch.randn(4, 32))
    assert out.dtype == torch.bfloat16
    assert model[0].weight.dtype == torch.float32
    with pytest.raises(WattprintInputError, match="^dtype: "), precision.autocast_context("cpu", torch.float64):
        pass


def test_grad_scaler_is_a_pass_through_off_cuda_fp16_and_training_works() -> None:
    assert precision.default_amp_dtype("cpu") == torch.bfloat16
    scaler = precision.grad_scaler("cpu")
    assert not scaler.is_enabled()
    model = _mlp().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 32, generator=gen), torch.randint(0, 8, (64,), generator=gen)
    losses = []
    for _ in range(15):
        with precision.autocast_context("cpu", torch.bfloat16, check=False):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9


def test_bf16_model_round_trips_through_torch_save(tmp_path: pytest.TempPathFactory) -> None:
    low = precision.to_bf16(_mlp(), check_speed=False)
    x = torch.randn(4, 32)
    path = tmp_path / "bf16.pt"
    torch.save(low, path)
    with torch.no_grad():
        assert torch.equal(torch.load(path, weights_only=False)(x), low(x))  # the input-cast hook survives


def test_bf16_follows_the_cpu_capability() -> None:
    """Native bf16 (AVX512_BF16 or AMX, after the kernel limits): accepted, faster than fp32 on the probe and
    close to fp32. A CPU without AVX-512 (e.g. AVX2 only): refused in one line that names the measured
    slowdown and what to use instead. AVX-512 without BF16 converts in software: either verdict, as probed."""
    from wattprint.measure.cpu_caps import cpu_capabilities

    caps = cpu_capabilities()
    model, x = _mlp(), torch.randn(64, 32)
    probe = precision.probe_dtype("cpu", torch.bfloat16, "matmul", (256, 256, 256))  # what to_bf16 probes
    if caps.bf16_native:
        assert probe.ok and probe.speedup > 1.0, probe
        low = precision.to_bf16(model, example_inputs=x)
        with torch.no_grad():
            cos = nn.functional.cosine_similarity(low(x).float(), model(x), dim=-1).mean()
        assert cos >= 0.999
    elif caps.arch.startswith("x86") and caps.isa in ("avx2", "avx2-vnni", "sse4", "baseline"):
        assert not probe.ok, probe
        with pytest.raises(WattprintInputError) as info:
            precision.to_bf16(model, example_inputs=x)
        message = str(info.value)
        assert message.startswith("recipe: bf16 refused on this hardware: matmul runs ") and "\n" not in message
        assert "x slower than fp32" in message and "use fp32, or int8 for inference" in message
        refused = pytest.raises(WattprintInputError, match="^dtype: autocast bfloat16 refused on this hardware")
        with refused, precision.autocast_context("cpu"):
            pass
    else:
        pytest.skip(f"{caps.isa} without native bf16: the probe decides ({probe.speedup:.2f}x fp32)")
