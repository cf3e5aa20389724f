"""The GPU power-limit optimizer against the fake NVML: the choice for each eta, and the original limit set back
after a normal exit, an exception, interpreter exit and SIGTERM (in real subprocesses); no permission or no GPU
leaves the training alone, flagged."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.measure import fake_nvml
from tests.measure.fake_nvml import FakeGpu, FakeNvml
from wattprint.errors import PowerSourceError, WattprintInputError
from wattprint.optimize.power_limit import PowerLimitOptimizer

REPO = Path(__file__).resolve().parents[2]
ORIGINAL_MW = 300_000  # the limit at start, not the default nor the maximum: what must come back
DEFAULT_LIMITS_W = [400.0, 325.0, 250.0, 175.0, 100.0]  # 5 steps from the fake's max (400 W) to its min (100 W)


def gpu(**kwargs: Any) -> FakeGpu:
    spec: dict[str, Any] = {"energy_mj": 5_000_000, "power_limit_mw": ORIGINAL_MW}
    return FakeGpu(**(spec | kwargs))


def optimizer(fake: FakeNvml, **kwargs: Any) -> PowerLimitOptimizer:
    spec: dict[str, Any] = {"warmup_steps": 3, "profile_steps": 4, "settle_steps": 1}
    return PowerLimitOptimizer(nvml_module=fake, clock=fake.clock, **(spec | kwargs))


def train(fake: FakeNvml, plo: PowerLimitOptimizer, steps: int) -> None:
    for _ in range(steps):
        fake.run_step()
        plo.on_step()


def expected_cost(limit_w: float, eta: float, max_w: float = 400.0, full_s: float = 0.1) -> float:
    """Per step, from the fake's documented model: time = full_s x (max / limit) ** (1/3), power = limit."""
    seconds = full_s * (max_w / limit_w) ** (1.0 / 3.0)
    return eta * limit_w * seconds + (1.0 - eta) * max_w * seconds


# -- the fake's additions mirror pynvml ------------------------------------------------------------------
def test_fake_power_management_mirrors_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    names = (
        "nvmlDeviceGetPowerManagementLimit",
        "nvmlDeviceGetPowerManagementLimitConstraints",
        "nvmlDeviceGetPowerManagementDefaultLimit",
        "nvmlDeviceSetPowerManagementLimit",
    )
    for name in names:
        assert callable(getattr(pynvml, name)) and callable(getattr(FakeNvml(), name))
    real, fake = pynvml.NVMLError(4), fake_nvml.NVMLError(fake_nvml.NVML_ERROR_NO_PERMISSION)
    assert type(fake).__name__ == type(real).__name__ == "NVMLError_NoPermission"
    nvml = FakeNvml([gpu(default_limit_mw=350_000)])
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle) == [100_000, 400_000]
    assert nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle) == 350_000
    with pytest.raises(fake_nvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceSetPowerManagementLimit(handle, 450_000)
    nvml.nvmlDeviceSetPowerManagementLimit(handle, 200_000)
    assert nvml.nvmlDeviceGetPowerManagementLimit(handle) == nvml.nvmlDeviceGetEnforcedPowerLimit(handle) == 200_000
    assert nvml.set_calls == [(0, 450_000), (0, 200_000)]  # refused calls are recorded too
    nvml.nvmlShutdown()


# -- the choice ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("eta", "chosen_w"), [(0.0, 400.0), (1.0, 100.0), (0.5, 175.0)])
def test_picks_the_limit_with_the_lowest_energy_time_cost(eta: float, chosen_w: float) -> None:
    fake = FakeNvml([gpu()])
    with optimizer(fake, eta=eta) as plo:
        assert plo.original_limits_w == {0: 300.0}
        assert plo.limits_w == DEFAULT_LIMITS_W
        train(fake, plo, 3 + 5 * 4 + 4 * 1)  # warm-up, 5 windows of 4 steps, one settling step after each change
        assert plo.phase == "done"
        assert plo.chosen_limit_w == chosen_w
        assert fake.gpus[0].power_limit_mw == chosen_w * 1000  # held for the rest of the run
        assert plo.max_power_w == 400.0 and plo.energy_method == "counter"
        for profile in plo.profile:
            assert profile.steps == 4
            assert profile.cost == pytest.approx(expected_cost(profile.limit_w, eta), rel=1e-5)
        assert [p.limit_w for p in plo.profile] == DEFAULT_LIMITS_W
        train(fake, plo, 10)  # on_step after the choice: nothing more set
    profiled = [(0, int(w * 1000)) for w in DEFAULT_LIMITS_W]
    chosen = [] if chosen_w == 100.0 else [(0, int(chosen_w * 1000))]  # 100 W, profiled last, is still set
    assert fake.set_calls == [*profiled, *chosen, (0, ORIGINAL_MW)]
    assert fake.gpus[0].power_limit_mw == ORIGINAL_MW
    assert plo.restored and plo.phase == "closed" and fake.refcount == 0


def test_two_gpus_and_given_limits_each_get_their_own_limit_back() -> None:
    fake = FakeNvml([gpu(), gpu(uuid="GPU-1", power_limit_mw=250_000, limit_constraints_mw=(150_000, 450_000))])
    with optimizer(fake, eta=0.5, limits=[200, 350.4]) as plo:
        assert plo.limits_w == [350.4, 200.0]  # highest first
        assert plo.max_power_w == 850.0  # both GPUs flat out
        train(fake, plo, 40)
        assert plo.chosen_limit_w in (350.4, 200.0)
    assert [g.power_limit_mw for g in fake.gpus] == [ORIGINAL_MW, 250_000]
    assert fake.set_calls[-2:] == [(0, ORIGINAL_MW), (1, 250_000)]


def test_power_sampling_gpus_give_the_same_choice() -> None:
    fake = FakeNvml([gpu(energy_mj=None)])  # pre-Volta: no energy counter, power integrated at every step
    with optimizer(fake, eta=0.5) as plo:
        train(fake, plo, 40)
        assert plo.energy_method == "power-sampling"
        assert plo.chosen_limit_w == 175.0
        for profile in plo.profile:
            assert profile.cost == pytest.approx(expected_cost(profile.limit_w, 0.5), rel=1e-6)


# -- restoring ---------------------------------------------------------------------------------------------
def test_restores_after_an_exception_in_the_training() -> None:
    fake = FakeNvml([gpu()])
    with pytest.raises(RuntimeError, match="loss is nan"), optimizer(fake) as plo:
        train(fake, plo, 12)  # in the middle of profiling
        assert fake.gpus[0].power_limit_mw != ORIGINAL_MW
        raise RuntimeError("loss is nan")
    assert fake.set_calls[-1] == (0, ORIGINAL_MW)
    assert fake.gpus[0].power_limit_mw == ORIGINAL_MW
    assert fake.refcount == 0


def test_restores_before_profiling_ends_and_hooks_are_removed() -> None:
    before = signal.getsignal(signal.SIGTERM)
    fake = FakeNvml([gpu()])
    plo = optimizer(fake).start()
    assert signal.getsignal(signal.SIGTERM) == plo._on_sigterm
    train(fake, plo, 8)  # 3 warm-up steps, 4 at 400 W, then 325 W is set
    plo.close()
    plo.close()  # twice: nothing more
    assert signal.getsignal(signal.SIGTERM) == before
    assert fake.set_calls == [(0, 400_000), (0, 325_000), (0, ORIGINAL_MW)]
    train(fake, plo, 5)  # on_step after close: nothing
    assert len(fake.set_calls) == 3


def child(tmp_path: Path, body: str) -> subprocess.Popen[str]:
    """A Python process that imports the fake NVML from tests/measure, as a training job would use pynvml; every set
    call is appended to tmp_path/calls at once, so that a process killed by a signal leaves them behind."""
    script = textwrap.dedent(
        f"""
        import signal, sys, time
        from tests.measure.fake_nvml import FakeGpu, FakeNvml
        from wattprint.optimize.power_limit import PowerLimitOptimizer

        fake = FakeNvml([FakeGpu(energy_mj=0, power_limit_mw={ORIGINAL_MW})])
        fake.set_calls_file = {str(tmp_path / "calls")!r}
        plo = PowerLimitOptimizer(nvml_module=fake, clock=fake.clock, warmup_steps=1, profile_steps=2, settle_steps=0)
        """
    ) + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    return subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def calls(tmp_path: Path) -> list[tuple[int, int]]:
    lines = (tmp_path / "calls").read_text().split("\n")
    return [(int(a), int(b)) for a, b in (line.split() for line in lines if line)]


TRAIN_UNTIL_SIGNALLED = """
    plo.start()
    for _ in range(4):  # warm-up, then into the second limit's window
        fake.run_step()
        plo.on_step()
    print("training", flush=True)
    while True:
        time.sleep(0.01)
"""


def test_restores_on_sigterm_in_a_real_process(tmp_path: Path) -> None:
    proc = child(tmp_path, TRAIN_UNTIL_SIGNALLED)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "training\n", proc.stderr
        assert calls(tmp_path)[-1] != (0, ORIGINAL_MW)  # profiling: another limit is set now
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM  # then it died of the signal, as it would have without the optimizer
    assert calls(tmp_path) == [(0, 400_000), (0, 325_000), (0, ORIGINAL_MW)]


def test_sigterm_goes_on_to_the_handler_that_was_there(tmp_path: Path) -> None:
    body = (
        f"""
    def graceful(signum, frame):
        with open({str(tmp_path / "calls")!r}, "a") as f:
            f.write("# graceful\\n")
        sys.exit(7)

    signal.signal(signal.SIGTERM, graceful)
    """
        + TRAIN_UNTIL_SIGNALLED
    )
    proc = child(tmp_path, body)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "training\n", proc.stderr
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 7
    lines = (tmp_path / "calls").read_text().splitlines()
    assert lines[-2:] == [f"0 {ORIGINAL_MW}", "# graceful"]  # restored first, then the job's own handler


def test_restores_at_interpreter_exit_without_close(tmp_path: Path) -> None:
    body = TRAIN_UNTIL_SIGNALLED.split("    while True:")[0] + "    raise SystemExit(3)\n"
    proc = child(tmp_path, body)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert calls(tmp_path)[-1] == (0, ORIGINAL_MW)


# -- no permission, no GPU: the training goes on -------------------------------------------------------------
def test_no_permission_is_flagged_and_training_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNvml([gpu(set_limit_error=fake_nvml.NVML_ERROR_NO_PERMISSION)])
    with caplog.at_level(logging.WARNING, logger="wattprint"), optimizer(fake) as plo:
        train(fake, plo, 50)  # no exception: the job trains on at its limit
        assert plo.phase == "inactive" and not plo.active
        assert isinstance(plo.problem, PowerSourceError)
        assert plo.problem.reason == "permission"
        assert "Insufficient Permissions" in str(plo.problem) and "only root" in str(plo.problem)
        assert plo.problem.fix is not None and "root" in plo.problem.fix and "nvidia-smi" in plo.problem.fix
        assert plo.chosen_limit_w is None and plo.profile == []
    assert fake.set_calls == [(0, 400_000)]  # the one refused attempt; nothing changed, so nothing to set back
    assert fake.gpus[0].power_limit_mw == ORIGINAL_MW and fake.refcount == 0
    assert "only root may change power limits" in caplog.text
    result = plo.result()
    assert result["problem"]["reason"] == "permission" and result["chosen_limit_w"] is None


@pytest.mark.parametrize(
    ("fake", "message"),
    [
        (FakeNvml([]), "NVML sees no GPU"),
        (FakeNvml([gpu()], init_error=fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED), "Driver Not Loaded"),
        (FakeNvml([gpu(limit_constraints_mw=None)]), "power limit cannot be read"),
    ],
)
def test_no_gpu_or_no_driver_is_flagged_not_raised(fake: FakeNvml, message: str) -> None:
    with optimizer(fake) as plo:
        train(fake, plo, 10)
        assert plo.phase == "inactive" and plo.problem is not None and message in str(plo.problem)
    assert fake.set_calls == [] and fake.refcount == 0


def test_a_gpu_lost_mid_profile_stops_the_optimizer_and_restores() -> None:
    fake = FakeNvml([gpu()])
    with optimizer(fake) as plo:
        train(fake, plo, 6)
        fake.gpus[0].fail_with = fake_nvml.NVML_ERROR_UNKNOWN  # energy reads fail from now on
        train(fake, plo, 30)
        assert plo.phase == "inactive" and "Unknown Error" in str(plo.problem)
    assert fake.set_calls[-1] == (0, ORIGINAL_MW) and fake.refcount == 0


# -- input -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"eta": 1.5}, "eta"),
        ({"eta": "high"}, "eta"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"profile_steps": 0}, "profile_steps"),
        ({"settle_steps": 1.5}, "settle_steps"),
        ({"limits": []}, "limits"),
        ({"limits": [250, -1]}, "limits"),
        ({"limits": [float("nan")]}, "limits"),
        ({"gpu_indices": []}, "gpu_indices"),
        ({"gpu_indices": [-1]}, "gpu_indices"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(WattprintInputError) as info:
        PowerLimitOptimizer(nvml_module=FakeNvml([gpu()]), **kwargs)
    assert info.value.field == field


def test_limits_outside_the_gpu_range_are_refused_at_start() -> None:
    before = signal.getsignal(signal.SIGTERM)
    fake = FakeNvml([gpu()])
    with pytest.raises(WattprintInputError, match="limits: 450 W is outside .* 100 W to 400 W"):
        optimizer(fake, limits=[450, 300]).start()
    assert fake.set_calls == [] and fake.refcount == 0
    assert signal.getsignal(signal.SIGTERM) == before
