"""The measurement harness on small real models: metric, latency, energy with its method, MACs, size."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tests.measure.test_rapl import build_tree  # noqa: E402
from tests.optimize import accuracy, digits, trained  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.measure.detect import detect_sources  # noqa: E402
from wattprint.optimize import apply, measure  # noqa: E402
from wattprint.optimize.harness import EnergyMeter  # noqa: E402


@pytest.fixture(scope="module")
def meter() -> EnergyMeter:
    m = EnergyMeter()
    yield m
    m.close()


def test_measurement_fields_and_energy_provenance(meter: EnergyMeter) -> None:
    model = trained("cnn")
    x = digits()[2][:8]
    result = measure(model, accuracy, x, batch_sizes=(1, 8), repeats=5, energy_min_s=0.2, meter=meter)
    assert result.recipe == "baseline"
    assert result.metric == pytest.approx(accuracy(model))
    assert set(result.latency_ms_by_batch) == {1, 8}
    assert result.latency_ms == result.latency_ms_by_batch[1] > 0
    assert result.energy_per_inference_j > 0
    assert result.energy_window_s >= 0.15
    assert result.inferences >= 5
    # this machine has no RAPL: the CPU energy is the model's estimate, and says so
    assert result.energy_sources["cpu"] == meter.choice.measurement["cpu"]
    if meter.choice.measurement["cpu"] == "model":
        assert result.energy_method == "estimated"
    assert result.macs == result.macs_nonzero > 0
    assert result.params == result.params_nonzero == sum(p.numel() for p in model.parameters())
    assert result.size_bytes > 4 * result.params  # float32 weights plus the pickle around them
    d = result.to_dict()
    assert d["latency_ms_by_batch"] == {"1": result.latency_ms_by_batch[1], "8": result.latency_ms_by_batch[8]}
    from wattprint.measure.cpu_caps import cpu_capabilities

    assert d["compute"] == {"cpu": cpu_capabilities().as_dict(), "param_dtypes": ["float32"]}


def test_int8_results_say_which_kernel_ran_and_in_what_the_rest_ran(meter: EnergyMeter) -> None:
    model = trained("cnn")  # its convolutions stay float: in bf16 where the CPU has it natively
    x = digits()[2][:8]
    quantized = apply(model, "int8", example_inputs=x)
    result = measure(quantized, accuracy, x, repeats=3, energy_min_s=0.1, meter=meter).to_dict()
    kernel = result["compute"]["int8_kernel"]
    assert kernel == quantized.wattprint_int8_kernel and kernel["exact"][kernel["kernel"]] is True
    assert result["compute"]["int8_rest_dtype"] in ("bfloat16", "unchanged")
    assert result["compute"]["int8_activation_scales"] in ("static", "per-tensor", "per-token")
    assert (result["compute"]["int8_rest_dtype"] == "bfloat16") == ("bfloat16" in result["compute"]["param_dtypes"])


def test_pruned_models_show_fewer_nonzero_macs_and_parameters(meter: EnergyMeter) -> None:
    model = trained("cnn")
    x = digits()[2][:4]
    base = measure(model, accuracy, x, repeats=3, energy_min_s=0.1, meter=meter)
    sparse = measure(apply(model, "prune:0.8"), accuracy, x, repeats=3, energy_min_s=0.1, meter=meter)
    slim = measure(
        apply(model, "prune-channels:0.5", example_inputs=x), accuracy, x, repeats=3, energy_min_s=0.1, meter=meter
    )
    assert sparse.macs == base.macs and sparse.macs_nonzero < base.macs_nonzero
    assert sparse.params == base.params and sparse.params_nonzero < 0.25 * base.params
    assert sparse.sparsity == pytest.approx(0.8, abs=0.01)
    assert slim.macs < base.macs / 3 and slim.params < base.params / 3
    assert slim.size_bytes < base.size_bytes / 2  # channels are really gone; zeros are not


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_dynamic_int8_weights_are_counted_as_parameters(meter: EnergyMeter) -> None:
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    q = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    result = measure(q, lambda m: 0.0, torch.randn(2, 64), repeats=2, energy_min_s=0.05, meter=meter)
    assert result.params == sum(p.numel() for p in model.parameters())
    assert result.macs == 2 * (64 * 32 + 32 * 10)


def test_a_rapl_machine_is_labelled_measured(tmp_path: Path) -> None:
    choice = detect_sources(powercap_root=str(build_tree(tmp_path)))
    meter = EnergyMeter(choice=choice)
    try:
        result = measure(nn.Linear(4, 2), lambda m: 1.0, torch.randn(1, 4), repeats=2, energy_min_s=0.05, meter=meter)
    finally:
        meter.close()
    assert result.energy_sources == {"cpu": "rapl", "ram": "rapl"}
    assert result.energy_method == "measured"


@pytest.mark.parametrize(
    "kwargs", [{"batch_sizes": ()}, {"batch_sizes": (0,)}, {"batch_sizes": (1.5,)}, {"repeats": 0}, {"energy_min_s": 0}]
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(WattprintInputError):
        measure(nn.Linear(4, 2), lambda m: 1.0, torch.randn(1, 4), **kwargs)  # type: ignore[arg-type]
