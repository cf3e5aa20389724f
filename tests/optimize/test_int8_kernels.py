"""The int8 kernels and their per-CPU choice: exactness probe, saturation model, a lesser CPU in a subprocess.

CPUs without VNNI/AMX add pairs of u8 x s8 products in a saturating 16-bit register. `saturating_matmul`
models that; a subprocess with `ONEDNN_MAX_CPU_ISA=AVX2` runs oneDNN's AVX2 kernels on any x86 CPU, where
the model reproduces oneDNN's output exactly. FBGEMM picks its kernels from the CPU itself, ignoring those
variables, so its no-VNNI path is exercised through the model only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.measure.cpu_caps import cpu_capabilities  # noqa: E402
from wattprint.optimize import _int8_kernels as kernels  # noqa: E402
from wattprint.optimize import quantize  # noqa: E402
from wattprint.optimize._int8_linear import Int8Linear  # noqa: E402

from .test_quantize import OUTLIER_CHANNEL, _block, _rel_err  # noqa: E402


def saturating_matmul(qx: torch.Tensor, qw: torch.Tensor) -> torch.Tensor:
    """u8 (M, K) x s8 (N, K) -> int64 (M, N) as vpmaddubsw sums them: each pair of adjacent products clamped
    to int16, the pairs then added exactly."""
    prod = qx.long()[:, None, :] * qw.long()[None, :, :]
    m, n, k = prod.shape
    return prod.reshape(m, n, k // 2, 2).sum(-1).clamp(-32768, 32767).sum(-1)


def _asym_u8(x: torch.Tensor, levels: int = 255) -> tuple[torch.Tensor, float, int]:
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (hi - lo) / levels
    zero = int(round(-lo / scale))
    return (x / scale).round().add(zero).clamp(0, levels).to(torch.uint8), scale, zero


def _emulated_int8_linear(x: torch.Tensor, layer: Int8Linear, levels: int, saturate: bool) -> torch.Tensor:
    """Per-tensor u8 activations over `levels`, per-channel s8 weights, the product exact or saturating."""
    qx, scale, zero = _asym_u8(x, levels)
    qw = layer.weight_int8.t()
    acc = saturating_matmul(qx, qw) if saturate else qx.long() @ qw.long().t()
    acc = acc - zero * qw.long().sum(1)  # the zero point's compensation is exact in every kernel
    return acc.double().float() * scale * layer.weight_scale + layer.bias


def test_saturation_model_fails_on_full_range_and_not_on_7_bits() -> None:
    qw = torch.full((4, 64), 127, dtype=torch.int8)
    full = torch.full((2, 64), 255, dtype=torch.uint8)
    seven = torch.full((2, 64), 127, dtype=torch.uint8)
    assert int(saturating_matmul(full, qw)[0, 0]) == 32 * 32767 < 64 * 255 * 127  # the probe's input
    assert torch.equal(saturating_matmul(seven, qw), seven.long() @ qw.long().t())  # 2 x 127 x 127 < 32767


def test_quality_threshold_catches_the_saturation_defect() -> None:
    """The < 0.02 bound the int8 tests use fails on a saturating full-range kernel: it would have caught it."""
    model, calib, test = _block()
    q = quantize.int8(model, example_inputs=calib, rest_dtype="fp32", kernel="fp32-exact")
    x = nn.functional.layer_norm(test, (64,), model.ln.weight, model.ln.bias).reshape(-1, 64)
    x = x.index_fill(1, torch.tensor([OUTLIER_CHANNEL]), 0.0)  # the regular columns, as the layer sees them
    with torch.no_grad():
        ref = nn.functional.linear(x, q.fc1.weight_int8.t().float() * q.fc1.weight_scale[:, None], q.fc1.bias)
        exact = _emulated_int8_linear(x, q.fc1, 255, saturate=False)
        broken = _emulated_int8_linear(x, q.fc1, 255, saturate=True)
        seven_bits = _emulated_int8_linear(x, q.fc1, 127, saturate=True)
    assert _rel_err(exact, ref) < 0.02
    assert _rel_err(seven_bits, ref) < 0.02  # reduce-range cannot saturate
    assert _rel_err(broken, ref) > 0.02, _rel_err(broken, ref)


@pytest.mark.parametrize("kernel", kernels.available_kernels())
def test_each_kernel_is_exact_and_close_or_excluded(kernel: str) -> None:
    torch.manual_seed(1)
    lin = nn.Linear(96, 48)
    x = torch.randn(40, 96)
    x[:, 5] *= 30
    layer = Int8Linear.from_linear(lin, torch.tensor([5]))
    if not kernels.is_exact(kernel):
        # a saturating kernel is never picked, and naming it is refused with the exact ones listed
        assert kernels.choose_kernel([(96, 48)]).kernel != kernel
        model = nn.Sequential(lin)
        with pytest.raises(WattprintInputError, match=f"^kernel: '{kernel}' saturates full-range int8 sums"):
            quantize.int8(model, example_inputs=x, kernel=kernel, rest_dtype="fp32")
        return
    for per_token in (False, True):
        layer.set_kernel(kernel, per_token=per_token)
        with torch.no_grad():
            out = layer(x)
            assert layer(x.reshape(4, 10, 96)).shape == (4, 10, 48)
            assert layer(x.bfloat16()).dtype == torch.bfloat16
        bound = 0.01 if kernels.FULL_RANGE[kernel] else 0.02
        assert _rel_err(out, lin(x).detach()) < bound, (kernel, per_token, _rel_err(out, lin(x).detach()))


def test_int_mm_and_fp32_exact_match_the_dequantized_reference() -> None:
    torch.manual_seed(1)
    lin = nn.Linear(48, 24)
    x = torch.randn(40, 48)
    x[:, 5] *= 30
    layer = Int8Linear.from_linear(lin, torch.tensor([5]))
    w_deq = layer.weight_int8.float() * layer.weight_scale  # (in, out)
    xr = x.clone()
    xr[:, 5] = 0
    s = xr.abs().amax(1, keepdim=True) / 127
    expected = (torch.round(xr / s) * s) @ w_deq + x[:, 5:6] @ lin.weight[:, 5:6].t() + lin.bias
    for kernel in ("fp32-exact", "int_mm"):
        if not kernels.is_exact(kernel):
            continue
        layer.set_kernel(kernel)
        with torch.no_grad():
            assert torch.allclose(layer(x), expected.detach(), atol=1e-4, rtol=1e-4), kernel


def test_choice_prefers_full_range_and_reports_its_figures() -> None:
    choice = kernels.choose_kernel([(128, 256), (256, 128)], rows=64)
    exact = [k for k, ok in choice.exact.items() if ok]
    assert choice.kernel in exact and "fp32-exact" in exact
    # a 7-bit twin of an exact full-range kernel is neither timed nor chosen: noise alone could pick it
    twins = [k for k, full in kernels.SEVEN_BIT_TWIN.items() if choice.exact.get(full)]
    assert choice.kernel not in twins
    assert all(any(note.startswith(f"{k}: not timed") for note in choice.notes) for k in twins)
    assert set(choice.time_ms) == set(exact) - set(twins) and choice.fp32_ms > 0
    best_full = min((k for k in choice.time_ms if kernels.FULL_RANGE[k]), key=choice.time_ms.__getitem__)
    if not kernels.FULL_RANGE[choice.kernel]:
        assert choice.time_ms[best_full] > choice.time_ms[choice.kernel] * kernels.REDUCE_RANGE_MARGIN
    assert choice.shapes == ((64, 128, 256), (64, 256, 128))
    d = choice.as_dict()
    assert d["kernel"] == choice.kernel and d["faster_than_fp32"] == (choice.time_ms[choice.kernel] < choice.fp32_ms)
    assert json.loads(json.dumps(d)) == d
    # the int8 recipe carries the choice on the model, and the harness on every result
    model, calib, _ = _block()
    q = quantize.int8(model, example_inputs=calib, rest_dtype="fp32")
    assert q.wattprint_int8_kernel["kernel"] in exact
    assert {m.kernel for m in q.modules() if isinstance(m, Int8Linear)} == {q.wattprint_int8_kernel["kernel"]}
    with pytest.raises(WattprintInputError, match="^kernel: 'avx9' is not accepted; accepted: auto, "):
        quantize.int8(model, example_inputs=calib, kernel="avx9")


def test_the_flags_verdict_agrees_with_the_probe() -> None:
    """Where the flags (after the kernel limits) show VNNI or AMX, oneDNN's full-range int8 must be exact;
    on an x86 CPU without them (and no limit lifting it), it must saturate."""
    caps = cpu_capabilities()
    if "onednn" not in kernels.available_kernels() or not caps.arch.startswith("x86"):
        pytest.skip("oneDNN's int8 kernel is not in this torch build, or not an x86 CPU")
    assert kernels.is_exact("onednn") == (caps.int8_dot is not None)


_LESSER_CPU = textwrap.dedent("""
    import json, torch
    from wattprint.measure.cpu_caps import cpu_capabilities
    from wattprint.optimize import _int8_kernels as kernels
    from wattprint.optimize import quantize
    from tests.optimize.test_int8_kernels import saturating_matmul
    from tests.optimize.test_quantize import _block, _rel_err
    out = {"caps": cpu_capabilities().as_dict(), "exact": {k: kernels.is_exact(k) for k in kernels.available_kernels()}}
    if "onednn" in kernels.available_kernels():
        torch.manual_seed(0)
        qx = torch.randint(0, 256, (16, 64), dtype=torch.uint8)
        qw = torch.randint(-127, 128, (8, 64), dtype=torch.int8)
        packed = torch.ops.onednn.qlinear_prepack(qw, None)
        y = torch.ops.onednn.qlinear_pointwise(qx, 1.0, 0, packed, torch.ones(8), torch.zeros(8, dtype=torch.long),
                                               None, 1.0, 0, torch.float32, "none", [], "")
        out["onednn_is_the_model"] = torch.equal(y.long(), saturating_matmul(qx, qw))
        out["onednn_is_exact"] = torch.equal(y.long(), qx.long() @ qw.long().t())
    model, calib, test = _block()
    q = quantize.int8(model, example_inputs=calib, rest_dtype="fp32")
    with torch.no_grad():
        out["int8_err"] = _rel_err(q(test), model(test))
    out["kernel"] = q.wattprint_int8_kernel["kernel"]
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_a_cpu_without_vnni_through_the_kernel_limits(tmp_path: pytest.TempPathFactory) -> None:
    """The AVX2 limits make oneDNN run its no-VNNI kernels: they saturate exactly as modelled, the probe
    excludes them, and int8 keeps its quality on the kernel chosen instead."""
    caps = cpu_capabilities()
    if not caps.arch.startswith("x86") or caps.isa_hardware in ("sse4", "baseline", "unknown"):
        pytest.skip("needs an x86 CPU with AVX2")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # inductor's cache does not key on these limits: a lesser CPU's process gets a cache of its own
    env = dict(
        os.environ,
        ATEN_CPU_CAPABILITY="avx2",
        ONEDNN_MAX_CPU_ISA="AVX2",
        PYTHONPATH=root,
        TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"),
    )
    done = subprocess.run(
        [sys.executable, "-c", _LESSER_CPU], env=env, cwd=root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["caps"]["isa"] == "avx2" and out["caps"]["int8_dot"] is None and not out["caps"]["bf16_native"]
    assert out["caps"]["limits"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    if "onednn_is_the_model" in out:
        assert out["onednn_is_the_model"] and not out["onednn_is_exact"]
        assert out["exact"]["onednn"] is False and out["kernel"] != "onednn"
    assert out["exact"]["fp32-exact"] and out["exact"].get("fbgemm-reduce-range", True)
    assert out["int8_err"] < 0.02, out


EXACT = [k for k in kernels.available_kernels() if kernels.is_exact(k)]


@pytest.mark.parametrize("kernel", EXACT)
@pytest.mark.parametrize(
    "mode", ["no_grad", "inference_mode", "grad", "expanded", "inference_tensor_outside", "saved_for_backward"]
)
def test_the_callers_input_is_left_as_it_was(kernel: str, mode: str) -> None:
    """Outlier columns are zeroed for the int8 product: in place and restored only for a contiguous inference
    tensor in inference mode, on a copy otherwise. The caller's tensor holds the same bits afterwards, its
    autograd history still works, and the result is the same."""
    torch.manual_seed(3)
    lin = nn.Linear(64, 32)
    layer = Int8Linear.from_linear(lin, torch.tensor([2, 40]))
    layer.set_kernel(kernel)
    x = torch.randn(16, 64)
    x[:, 2] *= 50
    with torch.no_grad():
        expected = layer(x.clone())
    if mode == "expanded":  # a stride-0 view: writing one element would write them all
        row = x[0].clone()
        with torch.no_grad():
            out = layer(row.expand(16, 64))
        assert torch.equal(row, x[0]) and torch.equal(out, layer(x[0].expand(16, 64).clone()))
        return
    if mode == "inference_tensor_outside":
        with torch.inference_mode():
            x = x.clone()
        with torch.no_grad():
            out = layer(x)
        assert torch.equal(out, expected)
        return
    if mode == "saved_for_backward":
        w = torch.randn(64, requires_grad=True)
        loss = (x * w).sum()  # saves x for backward
        with torch.no_grad():
            layer(x)
        loss.backward()  # x's version counter did not move
        assert torch.equal(w.grad, x.sum(0))
        return
    before = x.clone()
    context = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode, "grad": torch.enable_grad}[mode]
    with context():
        if mode == "inference_mode":
            x = x.clone()  # an inference tensor: the in-place path
        out = layer(x)
    assert torch.equal(x, before)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("kernel", EXACT)
def test_symmetric_and_edge_inputs(kernel: str) -> None:
    """x spanning [-m, m] puts a value on the top of the u8 range (it must not wrap to 0); an empty batch and
    non-finite inputs behave as the fp32 product would."""
    torch.manual_seed(4)
    lin = nn.Linear(8, 4)
    layer = Int8Linear.from_linear(lin)
    layer.set_kernel(kernel)
    x = torch.zeros(2, 8)
    x[0, 0], x[1, 1] = 1.0, -1.0
    with torch.no_grad():
        ref = lin(x)
        assert (layer(x) - ref).abs().max() < 0.02, (layer(x), ref)
        assert layer(torch.zeros(0, 8)).shape == (0, 4)
        nan_in = torch.full((2, 8), float("nan"))
        assert torch.isnan(layer(nan_in)).all()


def test_a_model_saved_on_one_cpu_gets_an_exact_kernel_on_another(tmp_path: Path) -> None:
    """The kernel is chosen on the CPU that built the model; loading it where that kernel saturates (here: the
    AVX2 limits in a subprocess) switches to an exact one instead of computing wrong sums."""
    if "onednn" not in EXACT or not cpu_capabilities().arch.startswith("x86"):
        pytest.skip("needs oneDNN's int8 kernel exact here (VNNI/AMX)")
    torch.manual_seed(5)
    lin = nn.Linear(64, 32)
    layer = Int8Linear.from_linear(lin)
    layer.set_kernel("onednn")
    path = tmp_path / "layer.pt"
    torch.save(layer, path)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = textwrap.dedent(f"""
        import torch
        layer = torch.load({str(path)!r}, weights_only=False)
        torch.manual_seed(6)
        x = torch.rand(32, 64)
        with torch.no_grad():
            ref = x @ (layer.weight_int8.float() * layer.weight_scale) + layer.bias
            err = float((layer(x) - ref).norm() / ref.norm())
        print(layer.kernel, err)
    """)
    env = dict(
        os.environ,
        ATEN_CPU_CAPABILITY="avx2",
        ONEDNN_MAX_CPU_ISA="AVX2",
        PYTHONPATH=root,
        TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"),
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    kernel, err = done.stdout.split()
    assert kernel != "onednn" and float(err) < 0.02, (kernel, err)


STATIC = [k for k in EXACT if kernels.has_static_form(k)]


def _static_reference(x: torch.Tensor, layer: Int8Linear, low: float, high: float, levels: int) -> torch.Tensor:
    """u8 activations on the fixed range [low, high] (clipped), per-channel s8 weights, exact sums."""
    scale, zero = kernels.static_qparams(low, high, levels)
    qx = (x / scale).round().add(zero).clamp(0, levels).long()
    qw = layer.weight_int8.t().long()
    acc = qx @ qw.t() - zero * qw.sum(1)
    return acc.double().float() * scale * layer.weight_scale + layer.bias


@pytest.mark.parametrize("kernel", STATIC)
def test_a_fixed_activation_range_quantizes_on_it_and_clips_beyond(kernel: str) -> None:
    """Static scales: the product is the fixed-range quantization's, and values outside the range clip to it."""
    torch.manual_seed(7)
    lin = nn.Linear(64, 16)
    layer = Int8Linear.from_linear(lin, qmax=kernels.WEIGHT_QMAX[kernel])
    layer.set_kernel(kernel)
    layer.static_range = (-1.5, 2.0)
    levels = 255
    inside = torch.rand(32, 64) * 3.5 - 1.5
    beyond = inside * 3  # most values past the range: clipped
    with torch.no_grad():
        for x in (inside, beyond):
            expected = _static_reference(x, layer, -1.5, 2.0, levels)
            assert torch.allclose(layer(x), expected, rtol=1e-4, atol=1e-4), kernel
        dynamic = Int8Linear.from_linear(lin, qmax=kernels.WEIGHT_QMAX[kernel])
        dynamic.set_kernel(kernel)
        # the dynamic scale follows the input instead: on `beyond` the two differ
        assert not torch.allclose(dynamic(beyond), layer(beyond), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kernel", STATIC)
def test_static_outlier_columns_are_added_in_float_without_touching_the_input(kernel: str) -> None:
    """With a fixed range the outlier columns are not zeroed: they clip, and their zero int8 weight rows add
    nothing; the float columns add their exact product. The caller's tensor is never written."""
    torch.manual_seed(8)
    lin = nn.Linear(32, 8)
    idx = torch.tensor([3, 17])
    layer = Int8Linear.from_linear(lin, idx, qmax=kernels.WEIGHT_QMAX[kernel])
    layer.set_kernel(kernel)
    layer.static_range = (-1.0, 1.0)
    x = torch.rand(16, 32) * 2 - 1
    x[:, idx] *= 60.0  # outliers far beyond the range
    before = x.clone()
    regular = x.index_fill(1, idx, 0.0)
    expected = _static_reference(regular, layer, -1.0, 1.0, 255) + x[:, idx] @ layer.outlier_weight
    with torch.inference_mode():
        x_inf = x.clone()
        out = layer(x_inf)
    assert torch.equal(x_inf, before)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)  # the dynamic range would be ~3e-3 off here


def test_the_recipe_fixes_ranges_where_the_kernel_has_a_static_form() -> None:
    """auto: static scales with calibration on a kernel that has a static form (the plan gives each layer's
    range, count_flops sees the static op), per-tensor on one that has none; asking for static where it
    cannot run is refused in one line."""
    from wattprint import count_flops

    model, calib, test = _block()
    for kernel in EXACT:
        q = quantize.int8(model, example_inputs=calib, rest_dtype="fp32", kernel=kernel)
        entry = q.wattprint_int8_plan["fc1"]
        with torch.no_grad():
            assert _rel_err(q(test), model(test)) < 0.03, kernel
        if kernels.has_static_form(kernel):
            assert q.wattprint_int8_activation_scales == "static"
            low, high = entry["activation_range"]
            assert low < 0 < high and entry["activation_scales"] == "static"
            if kernel != "onednn-qlinear":
                ops = count_flops(q, test).by_op
                assert ops.get(f"quantized.{kernels._STATIC_OP}", 0) > 0 and "quantized.linear_dynamic" not in ops
        else:
            real = "per-token" if kernel in ("int_mm", "fp32-exact") else "per-tensor"  # the generic ones: per row
            assert q.wattprint_int8_activation_scales == real, kernel
            assert "activation_range" not in entry and entry["activation_scales"] == real
            with pytest.raises(WattprintInputError, match="^activation_scales: 'static' needs a kernel with a static"):
                quantize.int8(model, example_inputs=calib, kernel=kernel, activation_scales="static")
    with pytest.raises(WattprintInputError, match="^activation_scales: 'static' needs example_inputs"):
        quantize.int8(model, activation_scales="static")
    if STATIC:  # an explicit request picks among the kernels that have a static form
        q = quantize.int8(model, example_inputs=calib, activation_scales="static")
        assert q.wattprint_int8_kernel["kernel"] in STATIC and q.wattprint_int8_activation_scales == "static"


def test_seven_bit_weights_cannot_saturate_and_keep_full_range_activations() -> None:
    """`fbgemm-w7`: with |w| <= 63, pairs of full-range u8 x s8 products stay inside 16 bits (the saturation
    model gives the exact sums on the worst input), so the kernel is exact on a CPU without VNNI; a layer
    quantized for 8-bit weights is requantized for it (a copy: the layer's own buffers stay 8-bit)."""
    qw7 = torch.full((4, 64), -63, dtype=torch.int8)
    full = torch.full((2, 64), 255, dtype=torch.uint8)
    assert torch.equal(saturating_matmul(full, qw7), full.long() @ qw7.long().t())
    assert not torch.equal(saturating_matmul(full, qw7 * 2), full.long() @ (qw7 * 2).long().t())
    assert kernels.WEIGHT_QMAX["fbgemm-w7"] == 63 and kernels.FULL_RANGE["fbgemm-w7"]
    assert not kernels.has_static_form("fbgemm-reduce-range")  # FBGEMM would clip a fixed range to 8 bits
    if "fbgemm-w7" not in EXACT:
        pytest.skip("no FBGEMM in this torch build")
    torch.manual_seed(9)
    lin = nn.Linear(64, 16)
    eight = Int8Linear.from_linear(lin)
    eight.set_kernel("fbgemm-w7")
    assert int(eight.weight_int8.abs().max()) == 127  # the buffers are untouched
    x = torch.rand(32, 64) * 2 - 1
    with torch.no_grad():
        ref = lin(x)
        assert _rel_err(eight(x), ref) < 0.03
        seven = Int8Linear.from_linear(lin, qmax=63)
        assert int(seven.weight_int8.abs().max()) == 63
        seven.set_kernel("fbgemm-w7")
        assert torch.allclose(seven(x), _emulated_int8_linear(x, seven, 255, saturate=True), rtol=1e-4, atol=1e-4)


def test_an_unusable_calibration_range_falls_back_to_dynamic_scales_and_labels_say_what_runs() -> None:
    """All-zero or NaN calibration activations give no range to fix (it would clip every later input): those
    layers run dynamic scales and the plan says why; every label names what really runs."""
    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(32, 32)).eval()
    x = torch.randn(16, 32)
    for calib in (torch.zeros(8, 32), torch.full((8, 32), float("nan"))) if STATIC else ():
        q = quantize.int8(model, example_inputs=calib, rest_dtype="fp32", kernel=STATIC[0])
        entry = q.wattprint_int8_plan["0"]
        assert "activation_range" not in entry and "unusable" in entry["note"], entry
        assert entry["activation_scales"] in ("per-tensor", "per-token")
        with torch.no_grad():
            assert _rel_err(q(x), model(x)) < 0.02
    model, calib, test = _block()
    if "int_mm" in EXACT:  # the generic kernels scale per token whatever was asked
        q = quantize.int8(model, example_inputs=calib, rest_dtype="fp32", kernel="int_mm")
        assert q.wattprint_int8_activation_scales == "per-token"
        assert {e["activation_scales"] for e in q.wattprint_int8_plan.values()} == {"per-token"}
