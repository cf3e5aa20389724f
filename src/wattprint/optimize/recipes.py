"""Recipe strings, their parsing and `apply`: one entry point for every efficiency recipe.

A recipe is a name, optionally with a fraction: "bf16", "fp16", "int8", "int8-dynamic", "int8-static",
"sdpa", "prune:0.5", "prune-channels:0.5". Recipes compose with "+" (or as a list), applied left to
right: "prune-channels:0.5+int8". Pruning must come before a change of precision or quantization
(a quantized model has no float weights left to prune), and at most one precision/quantization step.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wattprint.errors import WattprintInputError

# name -> (module under wattprint.optimize, function); the precision/quantize modules are separate
_NUMERIC = {
    "bf16": ("precision", "to_bf16"),
    "fp16": ("precision", "to_fp16"),
    "int8": ("quantize", "int8"),
    "int8-dynamic": ("quantize", "int8_dynamic"),
    "int8-static": ("quantize", "int8_static"),
}
_PRUNING = ("prune", "prune-channels")
_OTHER = ("sdpa",)
RECIPE_NAMES: tuple[str, ...] = (*_NUMERIC, *(f"{p}:<fraction>" for p in _PRUNING), *_OTHER)
ACCEPTED = ", ".join(RECIPE_NAMES) + ", joined with '+' (e.g. 'prune-channels:0.5+int8')"


@dataclass(frozen=True)
class Step:
    """One parsed recipe step: `name` and, for pruning, the fraction of weights or channels removed."""

    name: str
    fraction: float | None = None

    def __str__(self) -> str:
        return self.name if self.fraction is None else f"{self.name}:{self.fraction:g}"

    @property
    def is_pruning(self) -> bool:
        return self.name in _PRUNING

    @property
    def is_numeric(self) -> bool:
        return self.name in _NUMERIC


def _parse_step(text: str) -> Step:
    name, sep, value = text.strip().partition(":")
    name = name.strip().lower()
    if name in _PRUNING:
        if not sep or not value.strip():
            raise WattprintInputError("recipe", f"{name!r} needs a fraction, e.g. '{name}:0.5'; accepted: {ACCEPTED}")
        try:
            fraction = float(value)
        except ValueError:
            raise WattprintInputError(
                "recipe",
                f"fraction {value.strip()!r} of {name!r} is not a number; accepted: a number strictly between 0 and 1",
            ) from None
        if not 0.0 < fraction < 1.0:
            raise WattprintInputError(
                "recipe",
                f"fraction {fraction:g} of {name!r} is outside (0, 1); accepted: a number strictly between 0 and 1",
            )
        return Step(name, fraction)
    if sep or name not in (*_NUMERIC, *_OTHER):
        raise WattprintInputError("recipe", f"unknown recipe {text.strip()!r}; accepted: {ACCEPTED}")
    return Step(name)


def parse_recipe(recipe: str | Sequence[str]) -> list[Step]:
    """Parse a recipe string ("a+b") or a list of them into steps; raise WattprintInputError when invalid."""
    if isinstance(recipe, str):
        parts = recipe.split("+")
    elif isinstance(recipe, Sequence) and all(isinstance(r, str) for r in recipe):
        parts = [p for r in recipe for p in r.split("+")]
    else:
        raise WattprintInputError(
            "recipe", f"expected a string or a list of strings, got {type(recipe).__name__}; accepted: {ACCEPTED}"
        )
    if not parts or any(not p.strip() for p in parts):
        raise WattprintInputError("recipe", f"empty recipe in {recipe!r}; accepted: {ACCEPTED}")
    steps = [_parse_step(p) for p in parts]
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise WattprintInputError(
            "recipe", f"a recipe appears twice in {format_recipe(steps)!r}; accepted: each recipe at most once"
        )
    numeric = [s for s in steps if s.is_numeric]
    if len(numeric) > 1:
        raise WattprintInputError(
            "recipe",
            f"{format_recipe(steps)!r} combines {', '.join(map(str, numeric))}; "
            "accepted: at most one of " + ", ".join(_NUMERIC),
        )
    if numeric and any(s.is_pruning for s in steps[names.index(numeric[0].name) :]):
        raise WattprintInputError(
            "recipe",
            f"pruning after {numeric[0]} in {format_recipe(steps)!r}; "
            "accepted: pruning steps before the precision/quantization step",
        )
    return steps


def format_recipe(steps: Sequence[Step]) -> str:
    """The canonical string of parsed steps ("prune-channels:0.5+int8")."""
    return "+".join(str(s) for s in steps)


def check_model(model: Any) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise WattprintInputError(
            "model",
            f"expected a torch.nn.Module, got {type(model).__name__}; "
            "accepted: a torch.nn.Module with at least one Linear layer",
        )
    if not has_layers(model, (torch.nn.Linear, torch.nn.modules.conv._ConvNd)):
        raise WattprintInputError(
            "model",
            f"{type(model).__name__} has no Linear or Conv layers, nothing to "
            "optimize; accepted: a torch.nn.Module with at least one Linear (or Conv) layer",
        )


def has_layers(model: Any, kinds: tuple[type, ...]) -> bool:
    return any(isinstance(m, kinds) for m in model.modules())


def apply(
    model: Any,
    recipe: str | Sequence[str],
    example_inputs: Any = None,
    *,
    train_fn: Callable[[Any], Any] | None = None,
    inplace: bool = False,
) -> Any:
    """Apply a recipe (or a "+"-joined / list combination) to a model and return the optimized model.

    Args:
        model: a ``torch.nn.Module``. It is deep-copied first, so the caller's model is left unchanged,
            unless ``inplace=True`` (then pruning changes it in place; the returned model may still be
            a new object, e.g. after quantization).
        recipe: see :data:`RECIPE_NAMES`; e.g. "int8-dynamic", "prune:0.8", "prune-channels:0.5+int8".
        example_inputs: a tensor or a tuple of tensors the model accepts; needed by structured pruning,
            static quantization and the attention rewrite (which checks outputs before and after).
        train_fn: optional fine-tuning callback ``train_fn(model)``, called once after each pruning
            step (magnitude pruning keeps its masks in place while it runs, so pruned weights stay zero).

    Raises:
        WattprintInputError: unknown recipe, fraction outside (0, 1), a model the recipe cannot handle.
    """
    steps = parse_recipe(recipe)
    check_model(model)
    if not inplace:
        model = copy.deepcopy(model)
    for step in steps:
        model = _apply_step(model, step, example_inputs, train_fn)
    return model


def _apply_step(model: Any, step: Step, example_inputs: Any, train_fn: Callable[[Any], Any] | None) -> Any:
    if step.name == "prune":
        from wattprint.optimize.prune import magnitude_prune

        return magnitude_prune(model, step.fraction or 0.0, train_fn=train_fn)
    if step.name == "prune-channels":
        from wattprint.optimize.prune import prune_channels

        return prune_channels(model, step.fraction or 0.0, example_inputs, train_fn=train_fn)
    if step.name == "sdpa":
        from wattprint.optimize.attention import to_sdpa

        return to_sdpa(model, example_inputs=example_inputs)
    module_name, func_name = _NUMERIC[step.name]
    module = importlib.import_module(f"wattprint.optimize.{module_name}")
    return getattr(module, func_name)(model, example_inputs=example_inputs)
