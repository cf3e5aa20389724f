"""Quantization recipes: "int8-dynamic" (torch.ao, plain), "int8" (outlier-aware), static int8 for convnets.

- `int8_dynamic`: torch.ao dynamic quantization of every nn.Linear; one activation scale per tensor. Fast,
  but a few outlier features in transformer activations cost accuracy (MiniLM: cosine 0.947 to fp32).
- `int8`: int8 weights per output channel; the input columns that carry outliers (found on
  `example_inputs`) computed in float, LLM.int8()-style, so the dynamic activation scale fits the rest
  (or per-token activation scales on request); a layer whose outliers are spread over too many columns is
  kept whole in higher precision; everything that is not an int8 Linear runs in bf16 where the CPU has
  it natively. The int8 product is the fastest kernel that is exact on this CPU (CPUs without VNNI/AMX
  saturate full-range int8 sums): see `_int8_kernels` and `_int8_linear`.
- `int8_static`: torch.ao FX static quantization (weights and activations int8, scales from calibration
  batches), for convolutional models on CPU.

Every function returns a new model and leaves its input unchanged. Why not torchao for "int8": its
per-token int8 config (Int8DynamicActivationInt8WeightConfig) has no outlier decomposition, and on CPU it runs
`torch._int_mm`, which saturates without VNNI and is slower than fp32 in eager (a 4096x384x1536 product:
21 ms vs 14 ms fp32 on a Xeon with AMX, where oneDNN's int8 takes 3 ms); benchmarks/bench_optimize_minilm.py
measures it next to these recipes.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Iterable
from typing import Any

from wattprint.errors import WattprintInputError
from wattprint.optimize.precision import run_model

log = logging.getLogger("wattprint")

DEFAULT_OUTLIER_RATIO = 6.0
DEFAULT_MAX_OUTLIER_FRACTION = 0.1
PLAN_ATTR = "wattprint_int8_plan"
REST_ATTR = "wattprint_int8_rest_dtype"
KERNEL_ATTR = "wattprint_int8_kernel"
SCALES_ATTR = "wattprint_int8_activation_scales"
REST_DTYPES = ("auto", "bf16", "fp32")
ACTIVATION_SCALES = ("auto", "per-tensor", "static", "per-token")


def _rest_dtype(model: Any, choice: str) -> Any:
    """The dtype for everything but the int8 layers: bf16 where the probe finds it native ("auto"), else
    the model's own (None)."""
    import torch

    from wattprint.optimize.precision import _device_of, probe_dtype

    if choice not in REST_DTYPES:
        raise WattprintInputError("rest_dtype", f"{choice!r} is not accepted; accepted: {', '.join(REST_DTYPES)}")
    if choice == "fp32":
        return None
    result = probe_dtype(_device_of(model), torch.bfloat16)
    if not result.ok:
        if choice == "bf16":
            raise WattprintInputError(
                "rest_dtype", f"bf16 refused on this hardware: {result.reason}; accepted: fp32 or auto"
            )
        log.info("wattprint: int8: the rest of the model stays in its dtype (%s)", result.reason)
        return None
    return torch.bfloat16


def _cast_rest(model: Any, dtype: Any) -> None:
    """Cast floating-point parameters and buffers of every module except the int8 layers (whose scales and
    float columns stay fp32); at the model's boundary, cast floating inputs to `dtype` and floating outputs
    back to the model's original dtype, so that the int8 model stays a drop-in replacement."""
    import torch

    from wattprint.optimize._int8_linear import Int8Linear
    from wattprint.optimize.precision import _cast_inputs_hook, _CastOutputs

    original = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)

    for module in model.modules():
        if isinstance(module, Int8Linear):
            continue
        for key, param in module._parameters.items():
            if param is not None and param.is_floating_point():
                module._parameters[key] = torch.nn.Parameter(param.detach().to(dtype), requires_grad=False)
        for key, buf in module._buffers.items():
            if buf is not None and buf.is_floating_point():
                module._buffers[key] = buf.to(dtype)
    model.register_forward_pre_hook(_cast_inputs_hook(dtype), with_kwargs=True)
    model.register_forward_hook(_CastOutputs(original))


def _check_module(model: Any) -> None:
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise WattprintInputError("model", f"expected a torch.nn.Module, got {type(model).__name__}")


def _linear_names(model: Any) -> list[str]:
    import torch.nn as nn

    return [name for name, m in model.named_modules() if type(m) is nn.Linear]


def _require_linear(model: Any, recipe: str) -> list[str]:
    names = _linear_names(model)
    if not names:
        raise WattprintInputError(
            "model", f"has no nn.Linear layers to quantize ({recipe}); accepted: a model with Linear layers"
        )
    return names


def _require_cpu(model: Any, recipe: str) -> None:
    devices = {t.device.type for t in list(model.parameters()) + list(model.buffers())}
    if devices - {"cpu"}:
        raise WattprintInputError(
            "model", f"is on {sorted(devices)}; {recipe} runs on CPU only; accepted: a model on cpu (model.cpu())"
        )


def int8_dynamic(model: Any, *, example_inputs: Any = None) -> Any:
    """torch.ao dynamic int8 on every nn.Linear (per-tensor activation scales, CPU). The plain, legacy path
    and the peer that "int8" is measured against. `example_inputs`, when given, is run once as a check."""
    import torch
    import torch.nn as nn

    _check_module(model)
    _require_linear(model, "int8-dynamic")
    _require_cpu(model, "int8-dynamic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    if example_inputs is not None:
        _check_runs(quantized, example_inputs, "the int8-dynamic model")
    return quantized


def _check_runs(model: Any, example_inputs: Any, what: str) -> None:
    """Run `model` once on `example_inputs`; a failure is the user's inputs not fitting: one line naming them."""
    import torch

    try:
        with torch.no_grad():
            run_model(model, example_inputs)
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise WattprintInputError("example_inputs", f"{what} fails on them: {first}") from exc


def _set_child(root: Any, dotted: str, new: Any) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def int8(
    model: Any,
    *,
    example_inputs: Any = None,
    outlier_ratio: float = DEFAULT_OUTLIER_RATIO,
    max_outlier_fraction: float = DEFAULT_MAX_OUTLIER_FRACTION,
    rest_dtype: str = "auto",
    activation_scales: str = "auto",
    kernel: str = "auto",
    compile: bool = False,
) -> Any:
    """Outlier-aware int8 for Linear layers: keeps quality where plain dynamic int8 loses it.

    `example_inputs` (a tensor, a tuple of arguments or a dict of keyword arguments) is run once through the
    model to calibrate: for every Linear, an input column whose max |activation| exceeds `outlier_ratio` x the
    median column's is computed in float; a Linear with more than `max_outlier_fraction` of its columns
    flagged is kept whole in higher precision. Use a few representative inputs (MiniLM: 8 sentences).

    `activation_scales`: "per-tensor" (one dynamic scale per call, which fits once the outlier columns are
    out), "static" (the per-tensor range of each layer's regular columns fixed from the calibration inputs:
    no pass over the input to find it, values beyond it clip; needs `example_inputs`; runs on the FBGEMM
    and `onednn-qlinear` kernels, so `kernel="auto"` picks among those), "per-token" (one scale per row as
    well: two more passes over the activations, 1.3x vs 2.1-2.4x fp32's speed on MiniLM here; for inputs
    whose outliers move between columns), or "auto" = static with calibration where the chosen kernel has
    a static form (per-tensor where it has none, e.g. oneDNN's fused kernel on AMX), per-token without
    calibration (no outlier columns are known then; a warning is logged).

    `rest_dtype` is the precision of everything that is not an int8 Linear (attention, norms, activations,
    embeddings, kept layers): "auto" = bf16 where the dtype probe finds it native on this device (int8
    matmuls with bf16 elsewhere, as int8 inference is usually deployed on Xeon), else unchanged; "bf16" or
    "fp32" to force. Outputs come back in the model's original dtype either way.

    `kernel` is the int8 product: "auto" picks, on this CPU, the fastest kernel whose sums are exact on an
    input built to overflow 16 bits (CPUs without VNNI/AMX saturate full-range int8), preferring full-range
    activations (see `_int8_kernels`); or one of "onednn", "onednn-qlinear", "fbgemm", "fbgemm-reduce-range",
    "fbgemm-w7" (7-bit weights, exact without VNNI), "int_mm",
    "fp32-exact" (a named kernel that saturates here is refused). Where no exact kernel beats fp32 on the
    probe, a warning gives the figures. `compile=True` runs the per-token `torch._int_mm` kernel under
    torch.compile instead.

    Attached to the returned model: the plan (per layer: "int8", "int8+float-columns" or "kept") as
    `wattprint_int8_plan` (see `plan_summary`; with each layer's activation scales, and its range where
    static), the rest dtype as `wattprint_int8_rest_dtype`, the activation scales in use as
    `wattprint_int8_activation_scales`, and the kernel choice with its figures as `wattprint_int8_kernel`.
    """
    import torch

    from wattprint.optimize import _int8_kernels
    from wattprint.optimize._int8_linear import ActivationStats, Int8Linear, outlier_columns

    _check_module(model)
    if not outlier_ratio > 1.0:
        raise WattprintInputError("outlier_ratio", f"must be > 1, got {outlier_ratio}")
    if not 0.0 <= max_outlier_fraction <= 1.0:
        raise WattprintInputError("max_outlier_fraction", f"must be in [0, 1], got {max_outlier_fraction}")
    if activation_scales not in ACTIVATION_SCALES:
        raise WattprintInputError(
            "activation_scales", f"{activation_scales!r} is not accepted; accepted: {', '.join(ACTIVATION_SCALES)}"
        )
    if activation_scales == "static" and example_inputs is None:
        raise WattprintInputError(
            "activation_scales",
            "'static' needs example_inputs to calibrate on; accepted without: auto, per-tensor, per-token",
        )
    if activation_scales == "auto" and example_inputs is None:
        activation_scales = "per-token"
    _check_kernel(kernel, compile, static=activation_scales == "static")
    names = _require_linear(model, "int8")
    quantized = copy.deepcopy(model)
    stats = ActivationStats()
    calibrated = example_inputs is not None
    if calibrated:
        handles = [quantized.get_submodule(n).register_forward_pre_hook(stats.hook(n)) for n in names]
        try:
            _check_runs(quantized, example_inputs, "the model")
        finally:
            for handle in handles:
                handle.remove()
    else:
        log.warning(
            "wattprint: int8 without example_inputs: no outlier calibration, %s activation scales only",
            activation_scales,
        )

    choice = _int8_kernel_choice(
        model, names, kernel, compile, max(stats.rows.values(), default=0), static=activation_scales == "static"
    )
    if activation_scales == "static" and not _int8_kernels.has_static_form(choice["kernel"]):
        raise WattprintInputError(
            "activation_scales",
            f"'static' cannot run here: the int8 kernel for this model is {choice['kernel']} ({choice['reason']}), "
            "which has no static form; accepted here: auto, per-tensor, per-token",
        )
    if activation_scales == "auto":  # calibrated: a fixed range where the kernel can use one
        activation_scales = (
            "static" if not compile and _int8_kernels.has_static_form(choice["kernel"]) else "per-tensor"
        )
    all_absmax = stats.col_absmax
    plan: dict[str, dict[str, Any]] = {}
    for name in names:
        linear = quantized.get_submodule(name)
        col_absmax = all_absmax.get(name)
        idx = torch.empty(0, dtype=torch.long)
        entry: dict[str, Any] = {"in_features": linear.in_features, "out_features": linear.out_features}
        if col_absmax is not None:
            idx = outlier_columns(col_absmax, outlier_ratio)
            median = float(col_absmax.median())
            entry["max_to_median"] = float(col_absmax.max()) / median if median > 0 else float("inf")
        elif calibrated:
            entry["note"] = "not reached by example_inputs"
        entry["outlier_columns"] = idx.tolist()
        if idx.numel() > max_outlier_fraction * linear.in_features:
            entry["mode"] = "kept"
            plan[name] = entry
            continue
        entry["mode"] = "int8+float-columns" if idx.numel() else "int8"
        layer = Int8Linear.from_linear(linear, idx, qmax=_int8_kernels.WEIGHT_QMAX[choice["kernel"]])
        if activation_scales == "static" and col_absmax is not None:
            low, high = stats.range_without(name, idx)
            if math.isfinite(low) and math.isfinite(high) and high - low > 1e-6 * max(abs(low), abs(high), 1.0):
                layer.static_range = (low, high)
                entry["activation_range"] = [low, high]
            else:  # all zero, or NaN/inf, in calibration: a fixed range would clip everything later
                entry["note"] = f"calibration range [{low:g}, {high:g}] unusable: dynamic scales"
        layer.compiled = compile
        # packs once here: FBGEMM's packing flips the process-wide quantized engine briefly
        layer.set_kernel(choice["kernel"], per_token=activation_scales == "per-token")
        entry["activation_scales"] = _int8_kernels.activation_scales_of(layer)  # what really runs
        _set_child(quantized, name, layer)
        plan[name] = entry
    rest = _rest_dtype(quantized, rest_dtype)
    if rest is not None:
        _cast_rest(quantized, rest)
    setattr(quantized, PLAN_ATTR, plan)
    setattr(quantized, REST_ATTR, str(rest or "unchanged"))
    # what the int8 layers really run with: one mode, "mixed: ..." (e.g. layers calibration never reached), or
    # "none" when every Linear was kept in float
    modes = sorted({e["activation_scales"] for e in plan.values() if "activation_scales" in e})
    label = "none" if not modes else modes[0] if len(modes) == 1 else "mixed: " + ", ".join(modes)
    setattr(quantized, SCALES_ATTR, label)
    setattr(quantized, KERNEL_ATTR, choice)
    kept = sum(1 for e in plan.values() if e["mode"] == "kept")
    log.info("wattprint: int8: %d Linear layers quantized, %d kept in float", len(plan) - kept, kept)
    return quantized


def _check_kernel(kernel: str, compile: bool, static: bool = False) -> None:
    """`kernel` and `compile` as given to int8: a name this build has and a kernel exact on this CPU (with a
    static form where `static` activation scales were asked for)."""
    from wattprint.optimize import _int8_kernels

    if static and compile:
        raise WattprintInputError(
            "activation_scales",
            "'static' does not run under compile=True (per-token kernel); accepted: auto, per-token",
        )
    if static and kernel != "auto" and not _int8_kernels.has_static_form(kernel):
        with_static = [k for k in _int8_kernels.KERNEL_NAMES if _int8_kernels.has_static_form(k)]
        raise WattprintInputError(
            "activation_scales",
            f"'static' needs a kernel with a static form, not {kernel!r}; "
            f"accepted kernels: auto, {', '.join(with_static)}",
        )

    accepted = ("auto", *_int8_kernels.KERNEL_NAMES)
    if kernel not in accepted:
        raise WattprintInputError("kernel", f"{kernel!r} is not accepted; accepted: {', '.join(accepted)}")
    if compile and not _int8_kernels.is_exact("int_mm"):
        raise WattprintInputError(
            "compile", "torch._int_mm saturates full-range int8 sums on this CPU (no VNNI/AMX); accepted: compile=False"
        )
    if kernel == "auto" or compile:
        return
    if kernel not in _int8_kernels.available_kernels():
        raise WattprintInputError(
            "kernel",
            f"{kernel!r} is not in this torch build; accepted: auto, {', '.join(_int8_kernels.available_kernels())}",
        )
    if not _int8_kernels.is_exact(kernel):
        exact = [k for k in _int8_kernels.available_kernels() if _int8_kernels.is_exact(k)]
        raise WattprintInputError(
            "kernel",
            f"{kernel!r} saturates full-range int8 sums on this CPU (no VNNI/AMX); accepted: auto, {', '.join(exact)}",
        )


def _int8_kernel_choice(
    model: Any, names: list[str], kernel: str, compile: bool, rows_seen: int, static: bool = False
) -> dict[str, Any]:
    """The int8 kernel for this model on this CPU, as a dict for the model and the results (see int8);
    `rows_seen` is the most rows a Linear got in calibration (0: none), the size its timing probe uses;
    `static`: only kernels with a static form."""
    from wattprint.optimize import _int8_kernels
    from wattprint.optimize.precision import _device_of

    if compile:
        return {
            "kernel": "int_mm",
            "reason": "compile=True: per-token torch._int_mm under torch.compile",
            "full_range": True,
            "maintained_api": True,
            "compiled": True,
        }
    device = _device_of(model)
    if device.type != "cpu":
        # off CPU only the generic kernels apply: _int_mm (int32 accumulation on GPUs) where the device runs it
        chosen = "int_mm" if _int8_kernels.int_mm_runs(device) else "fp32-exact"
        return {"kernel": chosen, "reason": f"on {device}: generic kernel", "full_range": True, "maintained_api": True}
    layers = [model.get_submodule(n) for n in names]
    # the widest input and the widest output: memory-bound activation passes weigh most on the former
    shapes = [
        (m.in_features, m.out_features)
        for m in (
            max(layers, key=lambda m: (m.in_features, m.out_features)),
            max(layers, key=lambda m: (m.out_features, m.in_features)),
        )
    ]
    rows = min(max(rows_seen, 256), 4096) if rows_seen else 1024
    if kernel == "auto" and static:
        static_kernels = tuple(k for k in _int8_kernels.available_kernels() if _int8_kernels.has_static_form(k))
        choice = _int8_kernels.choose_kernel(shapes, rows, candidates=static_kernels)
    elif kernel == "auto":
        choice = _int8_kernels.choose_kernel(shapes, rows)
    else:
        choice = _int8_kernels.choose_kernel(shapes, rows, candidates=(kernel,))
    result = choice.as_dict()
    if not choice.faster_than_fp32:
        log.warning(
            "wattprint: int8: no int8 kernel beats fp32 on this CPU: %s took %.3f ms vs fp32 %.3f ms for "
            "layers of %s; int8 still shrinks the weights 4x",
            choice.kernel,
            choice.time_ms[choice.kernel],
            choice.fp32_ms,
            ", ".join(f"{r}x{i}x{o}" for r, i, o in choice.shapes),
        )
    return result


def plan_summary(model: Any) -> dict[str, int]:
    """Counts of Linear layers by int8 mode ("int8", "int8+float-columns", "kept") and of float columns."""
    plan: dict[str, dict[str, Any]] = getattr(model, PLAN_ATTR, {})
    counts: dict[str, int] = {"int8": 0, "int8+float-columns": 0, "kept": 0, "float_columns": 0}
    for entry in plan.values():
        counts[entry["mode"]] += 1
        if entry["mode"] != "kept":
            counts["float_columns"] += len(entry["outlier_columns"])
    return counts


def int8_static(
    model: Any, *, example_inputs: Any = None, calibration: Iterable[Any] | None = None, backend: str = "x86"
) -> Any:
    """Static int8 (weights and activations) for convolutional models on CPU, via torch.ao FX graph mode.

    `calibration` is an iterable of input batches (each a tensor, a tuple of arguments or a dict), run
    through the observed model to fix the activation scales; `example_inputs` defaults to its first batch
    and is used for tracing. Without `calibration` (e.g. the "int8-static" recipe string), `example_inputs`
    is the one calibration batch, so it should be a representative batch, not a single sample.
    Conv/Linear/ReLU/BatchNorm patterns are fused and quantized; ops without an
    int8 kernel stay in fp32 with (de)quantize steps around them. `backend` is the torch.ao engine
    ("x86" or "fbgemm"; "onednn"/"qnnpack" where built).
    """
    import torch
    import torch.nn as nn

    _check_module(model)
    if calibration is None and example_inputs is None:
        raise WattprintInputError(
            "calibration", "static int8 needs calibration data; accepted: an iterable of input batches"
        )
    if calibration is None:
        calibration = [example_inputs]
    if not any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) for m in model.modules()):
        raise WattprintInputError("model", "has no Conv or Linear layers to quantize; accepted: a convolutional model")
    _require_cpu(model, "int8 static")
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if backend not in engines:
        raise WattprintInputError("backend", f"{backend!r} is not available; accepted: {', '.join(engines)}")
    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise WattprintInputError("calibration", "is empty; accepted: an iterable of at least one input batch")
    example = example_inputs if example_inputs is not None else first
    example_args = (
        tuple(example) if isinstance(example, (tuple, list)) else (() if isinstance(example, dict) else (example,))
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        previous_engine = torch.backends.quantized.engine
        torch.backends.quantized.engine = backend
        try:
            float_model = copy.deepcopy(model).eval()
            try:
                prepared = prepare_fx(float_model, get_default_qconfig_mapping(backend), example_args)
            except Exception as exc:  # torch.fx raises many types on untraceable control flow  # noqa: BLE001
                first_line = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                raise WattprintInputError(
                    "model",
                    f"cannot be traced by torch.fx for static int8 ({first_line}); accepted: a model "
                    "without data-dependent control flow, or use int8-dynamic",
                ) from exc
            n_batches = 0
            with torch.no_grad():
                for batch in [first, *batches]:
                    try:
                        run_model(prepared, batch)
                    except (RuntimeError, TypeError) as exc:
                        line = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                        raise WattprintInputError("calibration", f"batch {n_batches} fails: {line}") from exc
                    n_batches += 1
            quantized = convert_fx(prepared)
        finally:
            torch.backends.quantized.engine = previous_engine  # packed weights carry their engine
    log.info("wattprint: int8 static: calibrated on %d batches (%s engine)", n_batches, backend)
    return quantized
