"""torch.distributed tracking, where README has always imported it from; it lives in `tracking/distributed`
(`wattprint.track` uses it by itself in an initialised process group)."""

from wattprint.tracking.distributed import (
    DistributedTracker,
    merge_parts,
    node_id,
    part_id,
    plan_measurement,
    track_distributed,
)

__all__ = ["DistributedTracker", "merge_parts", "node_id", "part_id", "plan_measurement", "track_distributed"]
