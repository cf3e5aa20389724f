"""Where this process stands in a distributed job, asked cheaply: `wattprint.track` asks at every call, before
it knows whether the distributed tracker (and the record model it merges into) is needed at all."""

from __future__ import annotations

import os
import sys


def in_process_group() -> bool:
    """Whether this process is a rank of an initialised torch.distributed group of more than one rank. Asked
    without importing torch: a process that has not imported torch.distributed is in no group."""
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return False
    try:
        return bool(dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)
    except Exception:  # a half-torn-down group answers nothing reliable: not one we can gather over
        return False


def launched_rank(env: dict[str, str] | None = None) -> tuple[int, int] | None:
    """(rank, world size) where a launcher (torchrun, Slurm) started this process as one of several ranks."""
    env = dict(os.environ) if env is None else env
    for rank_var, world_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        rank, world = env.get(rank_var, ""), env.get(world_var, "")
        if rank.isdigit() and world.isdigit() and int(world) > 1:
            return int(rank), int(world)
    return None
