"""wattprint.optimize.apply: recipe parsing, refusals, composition, no mutation of the caller's model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tests.optimize import accuracy, digits, trained  # noqa: E402
from wattprint import count_flops  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize import apply, parse_recipe, precision  # noqa: E402
from wattprint.optimize.precision import _probes_for, probe_dtype  # noqa: E402
from wattprint.optimize.prune import sparsity  # noqa: E402


def _error(recipe: object, model: object = None) -> WattprintInputError:
    model = model if model is not None else nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(WattprintInputError) as info:
        apply(model, recipe, example_inputs=torch.randn(2, 4))  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize("recipe", ["int4", "prune-heads:0.5", "bf16:0.5", "", "int8+", "quantize"])
def test_unknown_recipe_names_field_and_accepted_values(recipe: str) -> None:
    err = _error(recipe)
    assert err.field == "recipe"
    assert "accepted:" in str(err)


@pytest.mark.parametrize(
    "recipe",
    [
        "prune:0",
        "prune:1",
        "prune:1.5",
        "prune:-0.2",
        "prune-channels:0",
        "prune-channels:1.0",
        "prune:nan",
        "prune:abc",
        "prune",
        "prune-channels:",
    ],
)
def test_fraction_outside_open_interval_is_refused(recipe: str) -> None:
    err = _error(recipe)
    assert err.field == "recipe"
    assert "accepted:" in str(err)


@pytest.mark.parametrize(
    "recipe", ["prune:0.5+prune:0.3", "bf16+int8", "int8-dynamic+prune:0.5", "fp16+prune-channels:0.5"]
)
def test_invalid_combinations_are_refused(recipe: str) -> None:
    assert _error(recipe).field == "recipe"


def test_model_without_linear_layers_is_refused() -> None:
    err = _error("prune:0.5", nn.Sequential(nn.ReLU(), nn.Dropout()))
    assert err.field == "model"
    assert "Linear" in str(err)
    assert _error("int8-dynamic", nn.Sequential(nn.ReLU())).field == "model"


def test_not_a_module_is_refused() -> None:
    assert _error("prune:0.5", lambda x: x).field == "model"  # type: ignore[arg-type]


def test_recipe_list_and_plus_string_parse_the_same() -> None:
    assert parse_recipe("prune-channels:0.5+int8") == parse_recipe(["prune-channels:0.5", "int8"])
    assert [str(s) for s in parse_recipe(" Prune:0.50 + INT8-dynamic ")] == ["prune:0.5", "int8-dynamic"]


def test_apply_does_not_mutate_the_callers_model() -> None:
    model = trained("mlp")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _, _, x, _ = digits()
    pruned = apply(model, "prune-channels:0.5+prune:0.5", example_inputs=x[:4])
    assert pruned is not model
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert pruned[1].out_features == 32  # half the hidden neurons removed
    assert sparsity(pruned) == pytest.approx(0.5, abs=0.01)


def test_composed_recipe_reduces_macs_and_keeps_working() -> None:
    model = trained("cnn")
    _, _, x, _ = digits()
    base = count_flops(model, x[:1]).macs
    small = apply(model, "prune-channels:0.5+prune:0.5", example_inputs=x[:1])
    assert count_flops(small, x[:1]).macs < base / 3  # channel pruning removes dense MACs (about 4x here)
    nonzero = count_flops(small, x[:1], nonzero=True).macs
    assert nonzero < count_flops(small, x[:1]).macs * 0.75  # magnitude pruning removes only nonzero MACs
    assert accuracy(small) > 0.3  # still a classifier, though not fine-tuned


def test_inplace_prunes_the_given_model() -> None:
    model = trained("mlp")
    out = apply(model, "prune:0.7", inplace=True)
    assert out is model
    assert sparsity(model) == pytest.approx(0.7, abs=0.01)


def test_train_fn_runs_after_pruning_only() -> None:
    calls: list[float] = []
    model = trained("mlp")
    apply(model, "prune:0.5", train_fn=lambda m: calls.append(sparsity(m)))
    assert len(calls) == 1
    apply(model, "prune-channels:0.3", example_inputs=digits()[2][:2], train_fn=lambda m: calls.append(-1.0))
    assert len(calls) == 2


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize(
    "recipe",
    ["bf16", "fp16", "int8", "int8-dynamic", "int8-static", "prune-channels:0.3+int8-dynamic", "prune:0.5+bf16"],
)
def test_precision_and_quantization_recipes_dispatch(recipe: str) -> None:
    """apply() reaches the precision/quantize recipes by name; each keeps the digits CNN close to fp32."""
    model = trained("cnn")
    x = digits()[2][:32]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(recipe.rpartition("+")[2])
    if low is not None and not all(probe_dtype("cpu", low, op, shape).ok for op, shape in _probes_for(model)):
        # this CPU runs the dtype slowly (the probe that apply() consults says so): a clear, named refusal
        with pytest.raises(WattprintInputError, match=r"^recipe: \w+ refused on this hardware: "):
            apply(model, recipe, example_inputs=x)
        # the cast and its dispatch still work where the speed check is waived
        apply_fn = precision.to_bf16 if low == torch.bfloat16 else precision.to_fp16
        cast = apply_fn(model, example_inputs=x, check_speed=False)
        assert {p.dtype for p in cast.parameters()} == {low}
        assert accuracy(cast) > accuracy(model) - 0.05
        return
    out = apply(model, recipe, example_inputs=x)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert accuracy(out) > accuracy(model) - 0.05
    if "bf16" in recipe:
        assert {p.dtype for p in out.parameters()} == {torch.bfloat16}
    if recipe.endswith("int8-dynamic"):
        assert any("quantized" in type(m).__module__ for m in out.modules())
    if recipe == "prune:0.5+bf16":
        assert sparsity(out) == pytest.approx(0.5, abs=0.01)
