"""GPU power-limit optimizer: profile a few power limits over the first training steps, keep the cheapest.

As in Zeus (You, Chung and Chowdhury, NSDI'23), the price of a limit is the energy-time cost of one step

    cost = eta x energy + (1 - eta) x MAXPOWER x time

with `eta` in [0, 1] (1: energy only, 0: time only) and MAXPOWER the largest power limit the GPUs accept (summed
over the GPUs optimised together), which turns seconds into joules at the rate of a GPU running flat out.

    with PowerLimitOptimizer(eta=0.5, sync=torch.cuda.synchronize) as plo:
        for batch in loader:
            train_step(batch)
            plo.on_step()

The first `warmup_steps` steps run at the highest candidate limit; then each candidate limit is set, given
`settle_steps` steps to take hold and measured over `profile_steps` steps: energy from NVML (the GPU's energy
counter, or its power integrated at every step on GPUs without one), time from the clock. The limit with the
lowest cost per step (the higher limit on a tie) is then set for the rest of the run.

The limit each GPU had at start (nvmlDeviceGetPowerManagementLimit) is ALWAYS set back: when the `with` block
ends, normally or by an exception; on SIGTERM (a handler restores the limits, then passes the signal on to the
handler that was there before, or dies of it as the process would have); and at interpreter exit (atexit) for
a `start()` never followed by `close()`. Nothing can restore after SIGKILL or a power cut: `nvidia-smi -q -d
POWER` shows the limit, and `sudo nvidia-smi -i N -pl WATTS` sets it back (a driver reload sets the default).
Start a wattprint Tracker before the optimizer: the tracker handles SIGTERM only where nobody else does, and
the optimizer passes SIGTERM on to the handler it found, so that order keeps both.

Setting a limit needs root. Without it (NVML_ERROR_NO_PERMISSION), or without a GPU, driver or pynvml, the
optimizer does nothing: it never raises into the training loop. `problem` then holds a PowerSourceError that
says why and how to fix it, also logged as a warning. Bad arguments raise WattprintInputError.
`pynvml` is imported when the optimizer starts, never at module import.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from wattprint.errors import PowerSourceError, WattprintInputError
from wattprint.measure.nvml import NvmlSource, _describe, _load

log = logging.getLogger("wattprint")

MW_PER_W = 1000
DEFAULT_STEPS = 5  # candidate limits by default: evenly spaced from the highest settable to the lowest
_NO_PERMISSION = 4  # NVML_ERROR_NO_PERMISSION, where the module does not say
PERMISSION_FIX = (
    "run the training as root (in a container: --cap-add SYS_ADMIN); or have root set a limit before the job "
    "with `sudo nvidia-smi -i INDEX -pl WATTS` (a sudoers rule can allow just that command; `sudo nvidia-smi -pm 1` "
    "keeps a limit set that way while no process uses the GPU)"
)


@dataclass(frozen=True)
class LimitProfile:
    """One candidate limit, measured over `steps` training steps (all optimised GPUs together)."""

    limit_w: float
    steps: int
    energy_j: float
    time_s: float
    cost: float  # per step: eta x energy + (1 - eta) x MAXPOWER x time

    @property
    def energy_per_step_j(self) -> float:
        return self.energy_j / self.steps

    @property
    def time_per_step_s(self) -> float:
        return self.time_s / self.steps


@dataclass
class _Gpu:
    index: int
    handle: Any
    name: str
    original_mw: int
    min_mw: int
    max_mw: int
    changed: bool = False  # a limit was set on it since start (so it must be set back)


def _check_count(name: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise WattprintInputError(name, f"{value!r}; accepted: an integer >= {low}")
    return value


def check_eta(eta: Any) -> float:
    """`eta` as a float in [0, 1], or WattprintInputError naming it."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise WattprintInputError("eta", f"{eta!r}; accepted: a number in [0, 1] (1: energy only, 0: time only)")
    return float(eta)


class PowerLimitOptimizer:
    """Profiles candidate GPU power limits over the first steps of a training run and keeps the cheapest.

    Args:
        gpu_indices: NVML indices of the GPUs to optimise together (default: every GPU NVML sees). NVML numbers
            GPUs in PCI bus order, ignoring CUDA_VISIBLE_DEVICES.
        nvml_module: a pynvml-like module (tests pass a fake); default: pynvml, imported at start.
        eta: weight of energy against time in the cost, in [0, 1].
        limits: candidate limits in watts, applied to every GPU alike (default: DEFAULT_STEPS limits evenly spaced
            from the highest settable limit down to the lowest, in whole watts).
        warmup_steps: steps run at the first (highest) candidate before measuring anything.
        profile_steps: steps measured at each candidate limit.
        settle_steps: steps left unmeasured after each change of limit.
        sync: called before each reading of the clock and the counters (e.g. ``torch.cuda.synchronize``), so
            that a step's queued GPU work is counted in the step.
        clock: the monotonic clock, in seconds.
        handle_sigterm: restore the limits on SIGTERM (in the main thread only, and not where SIGTERM is ignored).
    """

    def __init__(
        self,
        gpu_indices: Sequence[int] | None = None,
        nvml_module: Any = None,
        eta: float = 0.5,
        limits: Sequence[float] | None = None,
        warmup_steps: int = 10,
        profile_steps: int = 20,
        *,
        settle_steps: int = 2,
        sync: Callable[[], Any] | None = None,
        clock: Callable[[], float] | None = None,
        handle_sigterm: bool = True,
    ) -> None:
        self.eta = check_eta(eta)
        self.warmup_steps = _check_count("warmup_steps", warmup_steps, 0)
        self.profile_steps = _check_count("profile_steps", profile_steps, 1)
        self.settle_steps = _check_count("settle_steps", settle_steps, 0)
        if gpu_indices is not None:
            indices = list(gpu_indices)
            if not indices:
                raise WattprintInputError("gpu_indices", "empty; accepted: NVML indices (integers >= 0), or None")
            for index in indices:
                _check_count("gpu_indices", index, 0)
            gpu_indices = list(dict.fromkeys(indices))
        self.gpu_indices = gpu_indices
        if limits is not None:
            wanted = list(limits)
            bad = [w for w in wanted if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w)]
            if not wanted or bad or any(w <= 0 for w in wanted):
                raise WattprintInputError("limits", f"{limits!r}; accepted: one or more power limits in watts, > 0")
        self._wanted_w = limits
        self._nvml_module = nvml_module
        self._sync = sync
        self._clock: Callable[[], float] = clock or time.monotonic
        self._handle_sigterm = handle_sigterm

        self.phase = "idle"  # idle -> settle/measure per limit -> done; inactive (a problem) or closed at the end
        self.problem: PowerSourceError | None = None
        self.profile: list[LimitProfile] = []
        self.chosen_limit_w: float | None = None
        self.limits_w: list[float] = []
        self.max_power_w: float | None = None
        self.energy_method: str | None = None
        self.restored = False
        self._nvml: Any = None
        self._source: Any = None
        self._gpus: list[_Gpu] = []
        self._limits_mw: list[int] = []
        self._current = 0  # index of the limit being profiled
        self._countdown = 0  # settle steps left
        self._steps = 0  # steps measured in the current window
        self._window: tuple[float, float] = (0.0, 0.0)  # (time, joules) at the window's start
        self._sample_each_step = False
        self._initialised = False
        self._previous_sigterm: Any = None
        self._sigterm_installed = False
        self._atexit_installed = False

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> PowerLimitOptimizer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def active(self) -> bool:
        """Whether limits are being profiled or the chosen one is held (False when idle, inactive or closed)."""
        return self.phase in ("settle", "measure", "done")

    @property
    def original_limits_w(self) -> dict[int, float]:
        """Each GPU's limit at start (watts, by NVML index): what is set back at the end."""
        return {gpu.index: gpu.original_mw / MW_PER_W for gpu in self._gpus}

    def start(self) -> PowerLimitOptimizer:
        """Open NVML, read each GPU's limit and constraints, install the restore hooks, set the first candidate.
        Never raises for a missing GPU, driver or permission (see `problem`); bad `limits` raise."""
        if self.phase != "idle":
            return self
        try:
            self._open()
        except PowerSourceError as exc:
            self._give_up(exc)
            return self
        except WattprintInputError:
            self._shutdown()
            self.phase = "closed"
            raise
        except Exception as exc:  # any other NVML fault: the training must go on without the optimizer
            self._give_up(PowerSourceError(f"NVML unusable: {_describe(exc)}"))
            return self
        self._install_hooks()
        self._current = 0
        if self._set_all(self._limits_mw[0]):
            self._countdown = self.warmup_steps
            self.phase = "settle"
            if self._countdown == 0:
                self._begin_window()
        return self

    def close(self) -> None:
        """Set every GPU back to its limit at start, remove the hooks, shut NVML down. Safe to call twice."""
        if self.phase == "closed":
            return
        self._restore()
        self._remove_hooks()
        self._shutdown()
        if self.phase != "inactive":
            self.phase = "closed"

    # -- the training loop's call --------------------------------------------------------------
    def on_step(self) -> None:
        """Call once after every training step. Cheap once the limit is chosen; never raises."""
        if self.phase not in ("settle", "measure"):
            return
        try:
            self._advance()
        except Exception as exc:  # an NVML fault mid-run: give up, set the limits back, train on
            self._give_up(PowerSourceError(f"power-limit profiling failed: {_describe(exc)}"))

    def _advance(self) -> None:
        if self.phase == "settle":
            self._countdown -= 1
            if self._countdown <= 0:
                self._begin_window()
            return
        self._steps += 1
        if self._sample_each_step and self._steps < self.profile_steps:
            self._source.read()  # power-sampling GPUs: integrate the power at every step boundary
        if self._steps < self.profile_steps:
            return
        t0, e0 = self._window
        t1, e1 = self._now()
        limit_w = self._limits_mw[self._current] / MW_PER_W
        energy_j, time_s = e1 - e0, t1 - t0
        cost = self._cost(energy_j / self._steps, time_s / self._steps)
        self.profile.append(LimitProfile(limit_w, self._steps, energy_j, time_s, cost))
        log.info(
            "wattprint: power limit %.0f W: %.3f J and %.4f s per step, cost %.3f",
            limit_w,
            energy_j / self._steps,
            time_s / self._steps,
            cost,
        )
        self._current += 1
        if self._current < len(self._limits_mw):
            if self._set_all(self._limits_mw[self._current]):
                self._countdown = self.settle_steps
                self.phase = "settle"
                if self._countdown == 0:
                    self._begin_window()
            return
        best = min(self.profile, key=lambda p: (p.cost, -p.limit_w))
        best_mw = round(best.limit_w * MW_PER_W)
        if best_mw == self._limits_mw[-1] or self._set_all(best_mw):  # the last one profiled is still set
            self.chosen_limit_w = best.limit_w
            self.phase = "done"
            gpus = ", ".join(str(g.index) for g in self._gpus)
            log.info("wattprint: power limit %.0f W chosen (eta %g) and set on GPU(s) %s", best.limit_w, self.eta, gpus)

    def _begin_window(self) -> None:
        self._steps = 0
        self._window = self._now()
        self.phase = "measure"

    def _now(self) -> tuple[float, float]:
        """(clock, joules of the optimised GPUs since open), after the GPUs finished their queued work."""
        if self._sync is not None:
            self._sync()
        reading = self._source.read()
        return self._clock(), float(sum(reading.energy_j.values()))

    def _cost(self, energy_j: float, time_s: float) -> float:
        assert self.max_power_w is not None
        return self.eta * energy_j + (1.0 - self.eta) * self.max_power_w * time_s

    # -- NVML ------------------------------------------------------------------------------------
    def _open(self) -> None:
        nvml = _load(self._nvml_module)
        try:
            nvml.nvmlInit()
        except Exception as exc:  # no driver, no library: nothing to optimise
            raise PowerSourceError(
                f"NVML could not start: {_describe(exc)}",
                reason="absent",
                fix="check that the NVIDIA driver is loaded (nvidia-smi answers) for this user",
            ) from None
        self._nvml = nvml
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            raise PowerSourceError(f"NVML could not count GPUs: {_describe(exc)}") from None
        if count <= 0:
            raise PowerSourceError("NVML sees no GPU", reason="absent")
        indices = list(range(count)) if self.gpu_indices is None else self.gpu_indices
        unknown = [i for i in indices if i >= count]
        if unknown:
            raise PowerSourceError(f"GPU index {unknown[0]} not visible: NVML sees GPUs 0-{count - 1}", reason="absent")
        for index in indices:
            self._gpus.append(self._open_gpu(index))
        low = max(g.min_mw for g in self._gpus)
        high = min(g.max_mw for g in self._gpus)
        if low > high:
            raise PowerSourceError(f"the GPUs have no power limit in common: {low} mW to {high} mW")
        self._limits_mw = self._candidates(low, high)
        self.limits_w = [mw / MW_PER_W for mw in self._limits_mw]
        self.max_power_w = sum(g.max_mw for g in self._gpus) / MW_PER_W
        self._source = NvmlSource(nvml, [g.index for g in self._gpus], clock=self._clock)
        methods = {gpu["energy_method"] for gpu in self._source.gpus()}
        if len(self._source.gpus()) != len(self._gpus):
            raise PowerSourceError("some of the GPUs report neither energy nor power: their cost cannot be measured")
        self.energy_method = methods.pop() if len(methods) == 1 else "mixed"
        self._sample_each_step = self.energy_method != "counter"

    def _open_gpu(self, index: int) -> _Gpu:
        nvml = self._nvml
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            raw_name = nvml.nvmlDeviceGetName(handle)
            name = raw_name.decode("utf-8", "replace") if isinstance(raw_name, bytes) else str(raw_name)
            original = int(nvml.nvmlDeviceGetPowerManagementLimit(handle))
            low, high = (int(v) for v in nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle))
        except nvml.NVMLError as exc:
            raise PowerSourceError(f"GPU {index}: its power limit cannot be read: {_describe(exc)}") from None
        return _Gpu(index, handle, name, original, low, high)

    def _candidates(self, low: int, high: int) -> list[int]:
        """Candidate limits in mW, highest first, without repeats."""
        if self._wanted_w is None:
            span = high - low
            raw = [high - span * k / (DEFAULT_STEPS - 1) for k in range(DEFAULT_STEPS)]
            # whole watts, kept inside the constraints
            mws = [min(high, max(low, round(mw / MW_PER_W) * MW_PER_W)) for mw in raw]
        else:
            mws = [round(w * MW_PER_W) for w in self._wanted_w]
            outside = [mw / MW_PER_W for mw in mws if not low <= mw <= high]
            if outside:
                raise WattprintInputError(
                    "limits",
                    f"{outside[0]:g} W is outside what the GPU(s) accept; accepted: {low / MW_PER_W:g} W to "
                    f"{high / MW_PER_W:g} W",
                )
        return sorted(set(mws), reverse=True)

    def _set_all(self, limit_mw: int) -> bool:
        """Set `limit_mw` on every GPU. On refusal: record the problem, set back what was changed, stop (False)."""
        for gpu in self._gpus:
            try:
                self._nvml.nvmlDeviceSetPowerManagementLimit(gpu.handle, limit_mw)
            except Exception as exc:  # NVML refused (permission, GPU lost) or a stranger fault: never into training
                self._give_up(self._refusal(gpu, limit_mw, exc))
                return False
            gpu.changed = True
            if self.restored:  # a SIGTERM handler restored the limits while this loop ran: keep them restored
                self._restore(again=True)
                return False
        return True

    def _refusal(self, gpu: _Gpu, limit_mw: int, exc: BaseException) -> PowerSourceError:
        code = getattr(exc, "value", None)
        what = f"GPU {gpu.index} ({gpu.name}): NVML refused to set its power limit to {limit_mw / MW_PER_W:g} W"
        if code == getattr(self._nvml, "NVML_ERROR_NO_PERMISSION", _NO_PERMISSION):
            return PowerSourceError(
                f"{what} ({_describe(exc)}): only root may change power limits; the training goes on at the "
                "current limit, not optimised",
                reason="permission",
                fix=PERMISSION_FIX,
            )
        return PowerSourceError(f"{what}: {_describe(exc)}; the training goes on, not optimised")

    def _give_up(self, problem: PowerSourceError) -> None:
        """Inactive from now on: log why, set back what was changed, release NVML."""
        self.problem = problem
        fix = f" (fix: {problem.fix})" if problem.fix else ""
        log.warning("wattprint: power-limit optimizer off: %s%s", problem, fix)
        self._restore()
        self._remove_hooks()
        self._shutdown()
        self.phase = "inactive"

    def _restore(self, again: bool = False) -> None:
        """Set each changed GPU back to its limit at start (once; `again` after a set that raced a restore)."""
        if self.restored and not again:
            return
        self.restored = True
        for gpu in self._gpus:
            if not gpu.changed:
                continue
            try:
                self._nvml.nvmlDeviceSetPowerManagementLimit(gpu.handle, gpu.original_mw)
                gpu.changed = False
            except Exception as exc:  # nothing more can be done here than to say how to do it by hand
                log.error(
                    "wattprint: could not set GPU %d back to its power limit of %g W: %s; run `sudo nvidia-smi -i "
                    "%d -pl %g`",
                    gpu.index,
                    gpu.original_mw / MW_PER_W,
                    _describe(exc),
                    gpu.index,
                    gpu.original_mw / MW_PER_W,
                )
        if self.phase in ("settle", "measure", "done"):
            self.phase = "closed"

    def _shutdown(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception as exc:  # shutting down must never fail the caller
                log.debug("nvmlShutdown failed: %s", exc)
            self._nvml = None

    # -- restore hooks ----------------------------------------------------------------------------
    def _install_hooks(self) -> None:
        atexit.register(self._at_exit)
        self._atexit_installed = True
        if not self._handle_sigterm or threading.current_thread() is not threading.main_thread():
            return
        try:
            previous = signal.getsignal(signal.SIGTERM)
            if previous in (signal.SIG_IGN, None):  # ignored, or a handler from C that cannot be chained
                return
            signal.signal(signal.SIGTERM, self._on_sigterm)
        except (ValueError, OSError) as exc:
            log.debug("wattprint: no SIGTERM handler for the power limits: %s", exc)
            return
        self._previous_sigterm = previous
        self._sigterm_installed = True

    def _remove_hooks(self) -> None:
        if self._atexit_installed:
            atexit.unregister(self._at_exit)
            self._atexit_installed = False
        if self._sigterm_installed:
            self._sigterm_installed = False
            try:
                if signal.getsignal(signal.SIGTERM) == self._on_sigterm:  # not replaced by someone else since
                    signal.signal(signal.SIGTERM, self._previous_sigterm)
            except (ValueError, OSError) as exc:  # closed from another thread: the handler stays, inert
                log.debug("wattprint: SIGTERM handler left in place: %s", exc)

    def _at_exit(self) -> None:
        self.close()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """Restore the limits, then do what SIGTERM would have done without this handler."""
        self._restore(again=True)  # even mid-close: GPUs not set back yet still say `changed`
        previous = self._previous_sigterm
        if callable(previous):
            previous(signum, frame)
            return
        if previous == signal.SIG_IGN:
            return
        signal.signal(signum, signal.SIG_DFL)  # die of the signal as the process would have without us
        os.kill(os.getpid(), signum)

    # -- results -----------------------------------------------------------------------------------
    def result(self) -> dict[str, Any]:
        """Everything known so far, JSON-ready: limits at start, candidates, profile, choice, problem."""
        return {
            "phase": self.phase,
            "eta": self.eta,
            "gpus": [{"index": g.index, "name": g.name} for g in self._gpus],
            "original_limits_w": {str(k): v for k, v in self.original_limits_w.items()},
            "limits_w": self.limits_w,
            "max_power_w": self.max_power_w,
            "energy_method": self.energy_method,
            "profile": [
                asdict(p) | {"energy_per_step_j": p.energy_per_step_j, "time_per_step_s": p.time_per_step_s}
                for p in self.profile
            ],
            "chosen_limit_w": self.chosen_limit_w,
            "restored": self.restored,
            "problem": None
            if self.problem is None
            else {"message": str(self.problem), "reason": self.problem.reason, "fix": self.problem.fix},
        }
