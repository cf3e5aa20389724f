"""GPU check: wattprint's power-limit optimizer on a real GPU, and the original limit back afterwards.

    sudo .venv/bin/python benchmarks/gpu_power_limit.py [--gpu 0] [--eta 0.5] [--size 8192] [--steps 200]

For NVML GPU --gpu (default 0), on an NVIDIA machine with `pip install -e .` and a CUDA build of torch, with a
short training loop on it (a bf16 MLP of two --size x --size layers, batch --size, MSE on random data, SGD):
  1. baseline: --steps steps at the limit the GPU has at start, energy from NVML's counter, time with
     torch.cuda.synchronize at both ends;
  2. `PowerLimitOptimizer(gpu_indices=[gpu], eta)` drives the same loop: it profiles its candidate limits
     (5 from the highest settable limit down to the lowest, --profile-steps steps each after --settle-steps),
     picks the one with the lowest energy-time cost and sets it; then --steps more steps are measured at it
     as in 1, and the `with` block ends;
  3. the limit is read back with nvmlDeviceGetPowerManagementLimit: it must be the one at start;
  4. SIGTERM: a child process starts an optimizer whose only candidate is the lowest limit, and is sent
     SIGTERM once that limit is set; the limit read afterwards must again be the one at start.
Printed: each candidate's energy and time per step and cost, the choice, energy and time per step at the
choice against the limit at start, and whether the limit came back.

Setting power limits needs root (or CAP_SYS_ADMIN). Without it the optimizer changes nothing and says why;
the script finds that out first (by setting the limit the GPU already has), prints the fix and exits 5.
Exit codes: 0 pass, 1 fail (a limit not restored, or no limit chosen), 3 no NVIDIA GPU (pynvml missing,
NVML unavailable, no GPU, no energy counter), 4 no CUDA-capable torch, 5 no permission to set power limits.
Whatever happens, the script sets the limit at start back itself if it finds another one at the end.
Results: benchmarks/results/gpu_power_limit.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, fmt, machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402
from gpu_nvml_check import NO_CUDA, NO_GPU, Unavailable, cuda_device, open_nvml  # noqa: E402

FAIL, NO_PERMISSION = 1, 5


def limit_w(nvml: Any, handle: Any) -> float:
    return float(nvml.nvmlDeviceGetPowerManagementLimit(handle)) / 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", type=int, default=0, help="NVML index of the GPU")
    ap.add_argument("--eta", type=float, default=0.5, help="energy weight of the cost, in [0, 1]")
    ap.add_argument("--size", type=int, default=8192, help="layer width and batch of the MLP")
    ap.add_argument("--steps", type=int, default=200, help="steps measured at the limit at start and at the choice")
    ap.add_argument("--warmup-steps", type=int, default=20)
    ap.add_argument("--profile-steps", type=int, default=40)
    ap.add_argument("--settle-steps", type=int, default=5)
    ap.add_argument("--no-sigterm-check", action="store_true", help="skip the SIGTERM check in a child process")
    ap.add_argument("--out-dir", type=Path, default=None, help="where to write results")
    args = ap.parse_args()

    try:
        nvml, handle, gpu = open_nvml(args.gpu)
    except Unavailable as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    original_w: float | None = None
    try:
        original_w = limit_w(nvml, handle)
        return check(args, nvml, handle, gpu, original_w)
    except Unavailable as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    finally:
        # whatever happened above: the limit at start, set back by the script itself if it is not there
        with contextlib.suppress(Exception):
            if original_w is not None and limit_w(nvml, handle) != original_w:
                nvml.nvmlDeviceSetPowerManagementLimit(handle, round(original_w * 1000))
                print(f"FAIL: the limit was not {original_w:g} W at the end; the script set it back", file=sys.stderr)
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def make_training(args: argparse.Namespace, device: Any) -> tuple[Any, Any]:
    """(step, sync): one SGD step of a bf16 MLP on random data, and a wait for the GPU's queued work."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    torch.manual_seed(0)
    n = args.size
    model = torch.nn.Sequential(torch.nn.Linear(n, n), torch.nn.GELU(), torch.nn.Linear(n, n))
    model = model.to(device=device, dtype=torch.bfloat16)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    x = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    y = torch.randn(n, n, device=device, dtype=torch.bfloat16)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.mse_loss(model(x), y).backward()
        optimizer.step()

    def sync() -> None:
        torch.cuda.synchronize(device)

    return step, sync


def measure(nvml: Any, handle: Any, step: Any, sync: Any, steps: int) -> dict[str, float]:
    """Energy (NVML counter) and time per step over `steps` steps, the GPU idle-synchronised at both ends."""
    sync()
    t0, e0 = time.perf_counter(), nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    for _ in range(steps):
        step()
    sync()
    t1, e1 = time.perf_counter(), nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    return {
        "steps": steps,
        "energy_per_step_j": (e1 - e0) / 1000.0 / steps,
        "time_per_step_s": (t1 - t0) / steps,
        "mean_power_w": (e1 - e0) / 1000.0 / (t1 - t0),
    }


def sigterm_check(nvml: Any, handle: Any, gpu_index: int, low_w: float, original_w: float) -> dict[str, Any]:
    """A child sets the lowest limit through the optimizer and is sent SIGTERM; then the limit is read here."""
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO_ROOT / "src")!r})
        from wattprint.optimize.power_limit import PowerLimitOptimizer
        plo = PowerLimitOptimizer(gpu_indices=[{gpu_index}], limits=[{low_w!r}], warmup_steps=0,
                                  profile_steps=10**9, settle_steps=0)
        plo.start()
        print(f"problem: {{plo.problem}}" if plo.problem else "set", flush=True)
        while True:
            plo.on_step()
            time.sleep(0.05)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        said = proc.stdout.readline().strip()
        if said != "set":
            proc.kill()
            _out, err = proc.communicate(timeout=30)
            return {"ran": False, "child_said": said or err.strip()[-500:]}
        time.sleep(0.5)
        during = limit_w(nvml, handle)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        after = limit_w(nvml, handle)
        return {
            "ran": True,
            "lowest_limit_w": low_w,
            "limit_while_child_ran_w": during,
            "child_exit": proc.returncode,
            "limit_after_w": after,
            "restored": after == original_w,
        }
    finally:
        if proc.poll() is None:
            proc.kill()


def check(args: argparse.Namespace, nvml: Any, handle: Any, gpu: dict[str, Any], original_w: float) -> int:
    try:
        import torch
    except ImportError:
        raise Unavailable(NO_CUDA, "torch is not installed") from None
    from wattprint.optimize.power_limit import PERMISSION_FIX, PowerLimitOptimizer

    low_mw, high_mw = nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
    try:
        default_w: float | None = nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle) / 1000.0
    except Exception:
        default_w = None
    gpu.update(
        limit_at_start_w=original_w, default_limit_w=default_w, min_limit_w=low_mw / 1000, max_limit_w=high_mw / 1000
    )
    try:  # setting the limit it has: changes nothing, and says at once whether limits may be set here
        nvml.nvmlDeviceSetPowerManagementLimit(handle, round(original_w * 1000))
    except nvml.NVMLError as exc:
        if getattr(exc, "value", None) != getattr(nvml, "NVML_ERROR_NO_PERMISSION", 4):
            raise
        print(f"skipped: no permission to set GPU {args.gpu}'s power limit ({exc}); nothing changed", file=sys.stderr)
        print(f"fix: {PERMISSION_FIX}", file=sys.stderr)
        return NO_PERMISSION
    device, device_note = cuda_device(torch, gpu["uuid"], args.gpu)
    info = machine_info()
    step, sync = make_training(args, device)
    for _ in range(args.warmup_steps):  # cuBLAS set-up, clocks up
        step()
    sync()

    baseline = measure(nvml, handle, step, sync, args.steps)
    per_step = f"{baseline['energy_per_step_j']:.3f} J and {baseline['time_per_step_s'] * 1e3:.2f} ms per step"
    print(f"at the limit at start ({original_w:g} W): {per_step}", flush=True)
    optimizer = PowerLimitOptimizer(
        gpu_indices=[args.gpu],
        eta=args.eta,
        warmup_steps=args.warmup_steps,
        profile_steps=args.profile_steps,
        settle_steps=args.settle_steps,
        sync=sync,
    )
    with optimizer as plo:
        if plo.problem is not None:
            unchanged = limit_w(nvml, handle) == original_w
            print(f"skipped: {plo.problem}", file=sys.stderr)
            if plo.problem.fix:
                print(f"fix: {plo.problem.fix}", file=sys.stderr)
            print(f"limit unchanged at {original_w:g} W: {'yes' if unchanged else 'NO'}", file=sys.stderr)
            if not unchanged:
                return FAIL
            return NO_PERMISSION if plo.problem.reason == "permission" else NO_GPU
        budget = args.warmup_steps + len(plo.limits_w) * (args.settle_steps + args.profile_steps) + 10
        for _ in range(budget):
            if plo.phase not in ("settle", "measure"):
                break
            step()
            plo.on_step()
        chosen_w = plo.chosen_limit_w
        held_w = limit_w(nvml, handle)
        at_choice = measure(nvml, handle, step, sync, args.steps) if chosen_w is not None else None
    restored_w = limit_w(nvml, handle)
    result = plo.result()

    sig: dict[str, Any] = {"ran": False, "skipped": args.no_sigterm_check}
    if not args.no_sigterm_check:
        sig = sigterm_check(nvml, handle, args.gpu, low_mw / 1000.0, original_w)

    headers = ["limit W", "energy/step J", "time/step ms", "power W", f"cost/step (eta {args.eta:g})", "chosen"]
    rows = [
        [
            f"{p['limit_w']:g}",
            f"{p['energy_per_step_j']:.3f}",
            f"{p['time_per_step_s'] * 1e3:.2f}",
            fmt(p["energy_j"] / p["time_s"], 0) if p["time_s"] else "n/a",
            f"{p['cost']:.3f}",
            "yes" if p["limit_w"] == chosen_w else "",
        ]
        for p in result["profile"]
    ]
    title = (
        f"GPU {args.gpu} ({gpu['name']}): candidate limits, {args.profile_steps} steps each "
        f"(MAXPOWER {result['max_power_w']:g} W, energy {result['energy_method']})"
    )
    print_table(title, headers, rows)
    lines = [
        f"Limit at start {original_w:g} W (driver default {default_w if default_w is None else f'{default_w:g}'} W; "
        f"settable {low_mw / 1000:g}-{high_mw / 1000:g} W); chosen {chosen_w} W, held during the run: "
        f"{held_w:g} W.",
    ]
    if at_choice is not None:
        lines.append(
            f"At the choice against the limit at start ({args.steps} steps each): energy per step "
            f"x{at_choice['energy_per_step_j'] / baseline['energy_per_step_j']:.3f}, time per step "
            f"x{at_choice['time_per_step_s'] / baseline['time_per_step_s']:.3f}, mean power "
            f"{at_choice['mean_power_w']:.0f} W against {baseline['mean_power_w']:.0f} W."
        )
    state = "restored" if restored_w == original_w else "NOT restored"
    lines.append(f"After the `with` block the limit reads {restored_w:g} W: {state}.")
    if sig.get("ran"):
        lines.append(
            f"SIGTERM: the child set {sig['limit_while_child_ran_w']:g} W, exited {sig['child_exit']} "
            f"(-15: killed by the signal, as without the optimizer), and the limit then read "
            f"{sig['limit_after_w']:g} W: {'restored' if sig['restored'] else 'NOT restored'}."
        )
    elif not args.no_sigterm_check:
        lines.append(f"SIGTERM check did not run: the child said {sig.get('child_said')!r}.")
    passed = (
        chosen_w is not None
        and held_w == chosen_w
        and restored_w == original_w
        and (args.no_sigterm_check or bool(sig.get("restored")))
    )
    lines.append(f"result: {'PASS' if passed else 'FAIL'}")
    for line in lines:
        print(line)

    data = {
        "benchmark": "gpu_power_limit",
        "machine": info,
        "gpu": gpu,
        "device": device_note,
        "torch_cuda": getattr(torch.version, "cuda", None),
        "settings": vars(args) | {"out_dir": str(args.out_dir) if args.out_dir else None},
        "baseline_at_start_limit": baseline,
        "optimizer": result,
        "limit_held_w": held_w,
        "at_choice": at_choice,
        "limit_after_w": restored_w,
        "sigterm": sig,
        "passed": passed,
    }
    md = "\n\n".join(
        [
            "# gpu_power_limit",
            machine_markdown(info),
            f"GPU {args.gpu}: {gpu['name']}, driver {gpu.get('driver')}; {device_note}; torch CUDA "
            f"{data['torch_cuda']}. Training step: bf16 MLP {args.size}x{args.size} x2, batch {args.size}, SGD.",
            f"## {title}",
            markdown_table(headers, rows),
            "\n".join(f"- {line}" for line in lines),
        ]
    )
    path = write_results("gpu_power_limit", data, md, args.out_dir)
    print(f"results: {path} and {path.with_suffix('.md')}")
    return 0 if passed else FAIL


if __name__ == "__main__":
    sys.exit(main())
