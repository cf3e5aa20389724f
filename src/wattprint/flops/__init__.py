"""FLOP/MAC counting for PyTorch models (dispatch-level, via ``torch.utils.flop_counter``).

Importing this package does not import torch; torch is imported when :func:`count_flops` runs.
"""

from wattprint.flops.counter import FlopReport, count_flops

__all__ = ["FlopReport", "count_flops"]
