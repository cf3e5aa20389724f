"""One measurement harness for every candidate: the user's metric, latency, energy, MACs, parameters, size.

- metric: ``eval_fn(model) -> float`` (higher is better unless told otherwise);
- latency: per batch size, warm-up runs then the median of timed repeats (ms per batch);
- energy per inference: joules of this process over a window of repeated inferences at the first batch size,
  from wattprint's EnergyMonitor, divided by the inferences run. The method (measured by a hardware counter,
  or estimated by the CPU/RAM model) and the source are carried on every result. Against a baseline model, the
  windows alternate between the two, round after round (`paired.py`): ratios with their spread and a verdict;
- MACs: dense MACs and MACs of nonzero weights (``count_flops(..., nonzero=True)``) at the example inputs;
- parameters (all and nonzero) and size in bytes of the serialized ``state_dict``.
"""

from __future__ import annotations

import io
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from wattprint.errors import WattprintInputError

log = logging.getLogger("wattprint")


@dataclass
class Measurement:
    """Everything measured about one candidate model. ``energy_*`` fields say how the energy was obtained."""

    recipe: str
    metric: float
    latency_ms: float  # median per batch at batch_sizes[0]
    latency_ms_by_batch: dict[int, float]
    energy_per_inference_j: float
    energy_method: str  # "measured" (hardware counter) | "estimated" (model) | "mixed"
    energy_sources: dict[str, str]  # component -> "rapl" | "model" | "nvml"
    energy_window_s: float
    inferences: int
    macs: int  # dense MACs of one forward pass at example_inputs
    macs_nonzero: int  # MACs of nonzero weights only (pruned weights do not count)
    params: int
    params_nonzero: int
    size_bytes: int
    sparsity: float
    macs_note: str = "counted on this model"
    compute: dict[str, Any] = field(default_factory=dict)  # CPU capabilities, int8 kernel, dtypes: see describe_compute
    paired: dict[str, Any] | None = None  # against the baseline in alternating windows: see paired.paired_rounds
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency_ms_by_batch"] = {str(k): v for k, v in self.latency_ms_by_batch.items()}
        return d


class EnergyMeter:
    """A started EnergyMonitor on this process, shared by all candidates so that they are measured alike."""

    def __init__(self, interval_s: float = 0.5, choice: Any = None) -> None:
        from wattprint.config import load_settings
        from wattprint.measure.detect import sources_for
        from wattprint.measure.monitor import EnergyMonitor
        from wattprint.measure.process import ProcessTree

        self.choice = choice if choice is not None else sources_for(load_settings())
        self.monitor = EnergyMonitor(self.choice.sources, interval_s=interval_s, tree=ProcessTree())
        self.monitor.start()
        self._n = 0

    @property
    def sources(self) -> dict[str, str]:
        return {c: s for c, s in self.choice.measurement.items() if s is not None}

    @property
    def method(self) -> str:
        kinds = {self.choice.methods[c]["method"] for c in self.sources if c in self.choice.methods}
        kinds.discard(None)
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def describe(self) -> dict[str, Any]:
        """Per component: measured or estimated, source and detail, for the result's provenance."""
        return {c: dict(self.choice.methods[c]) for c in self.sources if c in self.choice.methods}

    def window(self, fn: Callable[[], int]) -> tuple[float, float, int]:
        """Run `fn` (returning how many inferences it ran) inside a window; (joules, seconds, inferences)."""
        self._n += 1
        name = f"wattprint-optimize-{self._n}"
        self.monitor.begin_window(name)
        count = fn()
        result = self.monitor.end_window(name)
        return result.total_j, result.duration_s, count

    def close(self) -> None:
        self.monitor.close()


def accuracy_eval(x: Any, y: Any, batch_size: int = 1024) -> Callable[[Any], float]:
    """An `eval_fn` for classifiers: top-1 accuracy of `model(x)` against labels `y`, in [0, 1].

    Inputs follow the model's device; reduced-precision models cast them themselves (see precision.py).
    """

    def accuracy(model: Any) -> float:
        import torch

        device = _model_device(model)
        correct = 0
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                xb = x[i : i + batch_size]
                xb = xb.to(device) if device is not None else xb
                correct += int((model(xb).float().argmax(-1).cpu() == y[i : i + batch_size].cpu()).sum())
        return correct / len(x)

    return accuracy


def as_args(example_inputs: Any) -> tuple[Any, ...]:
    """Example inputs as positional arguments: a tuple is spread, anything else is one argument."""
    return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)


def _batched(example_inputs: Any, batch_size: int) -> tuple[Any, ...]:
    """Inputs of `batch_size` rows, repeating the example rows along dimension 0 as needed."""
    import torch

    out = []
    for x in as_args(example_inputs):
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            out.append(x)
            continue
        reps = -(-batch_size // x.shape[0])
        out.append(x.repeat(reps, *([1] * (x.dim() - 1)))[:batch_size])
    return tuple(out)


def _model_device(model: Any) -> Any:
    for p in model.parameters():
        return p.device
    return None


def _sync(device: Any) -> None:
    import torch

    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _size_bytes(model: Any) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def _weights(model: Any) -> list[Any]:
    """Float parameters plus the weights and biases packed inside quantized modules (not in parameters())."""
    import torch

    found: list[Any] = []
    for module in model.modules():
        found.extend(module.parameters(recurse=False))
        weight = getattr(module, "weight", None)
        if callable(weight) and not isinstance(weight, torch.Tensor):  # quantized Linear/Conv: weight() method
            try:
                found.append(weight().dequantize())
                bias = module.bias() if callable(getattr(module, "bias", None)) else None
            except Exception:  # an unknown packed layout: count what parameters() shows
                continue
            if isinstance(bias, torch.Tensor):
                found.append(bias)
    return found


def _param_counts(model: Any) -> tuple[int, int, float]:
    """(parameters, nonzero parameters, sparsity of Linear/Conv weights), quantized weights included."""
    from wattprint.optimize.prune import sparsity

    weights = _weights(model)
    params = sum(w.numel() for w in weights)
    nonzero = sum(int(w.count_nonzero()) for w in weights)
    return params, nonzero, sparsity(model)


def describe_compute(model: Any) -> dict[str, Any]:
    """What the candidate ran on and with: the CPU's probed capabilities, the parameters' dtypes, and for
    int8 models the kernel chosen for this CPU (with its timings), its activation scales (static, per-tensor,
    per-token) and the dtype of everything else."""
    from wattprint.measure.cpu_caps import cpu_capabilities
    from wattprint.optimize.quantize import KERNEL_ATTR, REST_ATTR, SCALES_ATTR

    out: dict[str, Any] = {
        "cpu": cpu_capabilities().as_dict(),
        "param_dtypes": sorted({str(p.dtype).replace("torch.", "") for p in model.parameters()}),
    }
    kernel = getattr(model, KERNEL_ATTR, None)
    if kernel is not None:
        out["int8_kernel"] = dict(kernel)
        out["int8_rest_dtype"] = str(getattr(model, REST_ATTR, "unchanged")).replace("torch.", "")
        out["int8_activation_scales"] = getattr(model, SCALES_ATTR, None)
    return out


def check_measure_inputs(batch_sizes: Sequence[int], warmup: int, repeats: int, energy_min_s: float) -> None:
    if not batch_sizes or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in batch_sizes):
        raise WattprintInputError("batch_sizes", f"{list(batch_sizes)!r}; accepted: one or more integers >= 1")
    if warmup < 0 or repeats < 1:
        raise WattprintInputError("repeats", f"warmup={warmup}, repeats={repeats}; accepted: warmup >= 0, repeats >= 1")
    if not energy_min_s > 0:
        raise WattprintInputError("energy_min_s", f"{energy_min_s!r}; accepted: seconds > 0")


def measure(
    model: Any,
    eval_fn: Callable[[Any], float],
    example_inputs: Any,
    *,
    recipe: str = "baseline",
    batch_sizes: Sequence[int] = (1,),
    warmup: int = 3,
    repeats: int = 20,
    energy_min_s: float = 1.0,
    meter: EnergyMeter | None = None,
    macs_model: Any = None,
    macs_note: str | None = None,
    baseline_model: Any = None,
    paired_rounds: int = 3,
) -> Measurement:
    """Measure one model with the same protocol as every other candidate (see module docs).

    `example_inputs` is a tensor or a tuple of tensors, batched along dimension 0; other batch sizes are made by
    repeating its rows. `energy_min_s` is the least time the energy window runs (longer windows average out
    the sampling granularity). Pass one `meter` to measure several candidates alike; one is made otherwise.
    `macs_model` is counted instead of `model` where the counter cannot see the model's kernels (quantized
    ops): the model before quantization has the same number of MACs, at a higher precision. With a
    `baseline_model`, energy and latency are measured against it in `paired_rounds` rounds of baseline, model,
    model, baseline windows, `energy_min_s` of each per round (`Measurement.paired`), and the energy per inference
    is the median of this model's rounds.
    """
    import torch

    from wattprint.flops import count_flops

    check_measure_inputs(batch_sizes, warmup, repeats, energy_min_s)
    metric = float(eval_fn(model))
    model.eval()
    device = _model_device(model)
    args = as_args(example_inputs)
    counted = macs_model if macs_model is not None else model
    with torch.inference_mode():
        dense = count_flops(counted, *args)
        sparse = count_flops(counted, *args, nonzero=True)
    latency: dict[int, float] = {}
    with torch.inference_mode():
        for b in batch_sizes:
            batch = _batched(example_inputs, b)
            for _ in range(warmup):
                model(*batch)
            _sync(device)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(*batch)
                _sync(device)
                times.append((time.perf_counter() - t0) * 1000.0)
            latency[b] = statistics.median(times)
    own_meter = meter is None
    meter = meter if meter is not None else EnergyMeter()
    b0 = batch_sizes[0]
    batch = _batched(example_inputs, b0)

    def run() -> int:
        # at least `repeats` batches and at least energy_min_s of running (long windows average out sampling)
        n_batches, t0 = 0, time.perf_counter()
        with torch.inference_mode():
            while n_batches < repeats or time.perf_counter() - t0 < energy_min_s:
                model(*batch)
                n_batches += 1
            _sync(device)
        return n_batches * b0

    paired = None
    try:
        if baseline_model is not None and paired_rounds > 0:
            paired = _paired(meter, model, baseline_model, batch, device, paired_rounds, energy_min_s)
            per_inference_j = paired["candidate"]["energy_per_inference_j"]
            seconds, inferences = paired["candidate_seconds"], paired["candidate_inferences"]
        else:
            joules, seconds, inferences = meter.window(run)
            per_inference_j = joules / inferences
        sources, method = meter.sources, meter.method
    finally:
        if own_meter:
            meter.close()
    params, nonzero, sparse_share = _param_counts(model)
    return Measurement(
        recipe=recipe,
        metric=metric,
        latency_ms=latency[b0],
        latency_ms_by_batch=latency,
        energy_per_inference_j=per_inference_j,
        energy_method=method,
        energy_sources=sources,
        energy_window_s=seconds,
        inferences=inferences,
        macs=dense.macs,
        macs_nonzero=sparse.macs,
        params=params,
        params_nonzero=nonzero,
        size_bytes=_size_bytes(model),
        sparsity=sparse_share,
        macs_note=macs_note or "counted on this model",
        compute=describe_compute(model),
        paired=paired,
    )


def aa_control(
    model: Any, example_inputs: Any, *, batch_size: int, meter: EnergyMeter, rounds: int, window_s: float
) -> dict[str, Any]:
    """The A/A control: `model` against a copy of itself (the same computation at other memory addresses) in the
    paired protocol, at `batch_size`. How far its rounds stray from 1 is the noise no recipe can claim as a saving."""
    import copy

    twin = copy.deepcopy(model)
    batch = _batched(example_inputs, batch_size)
    return _paired(meter, twin, model, batch, _model_device(model), rounds, window_s)


def _paired(
    meter: EnergyMeter, model: Any, baseline: Any, batch: tuple[Any, ...], device: Any, rounds: int, window_s: float
) -> dict[str, Any]:
    """`model` against `baseline` on the same batch in alternating windows (see paired.py)."""
    import torch

    from wattprint.optimize.paired import paired_rounds

    baseline.eval()
    base_device = _model_device(baseline)
    n = int(batch[0].shape[0]) if hasattr(batch[0], "shape") else 1

    def step(m: Any, on: Any) -> Callable[[], int]:
        def one() -> int:
            m(*batch)
            _sync(on)
            return n

        return one

    with torch.inference_mode():
        return paired_rounds(meter, step(baseline, base_device), step(model, device), rounds=rounds, window_s=window_s)
