"""What `Tracker.log` stores: every number as a number, anything else as text, decided when it is logged.

A numpy float32 or a torch scalar is what training loops log most, and pydantic cannot serialise either:
left as they were, every later save of the run failed. Converting at `log()` keeps the record storable.
"""

from __future__ import annotations

import decimal
import math
import numbers
from typing import Any


def metric_value(value: Any) -> Any:
    """`value` as JSON can hold it: None, bool, str, int and float as they are; any other real number
    (numpy, Decimal, Fraction) as int or float; a 0-d or one-element array or tensor as its number; a
    larger one, a list, tuple or dict element by element; anything else as `str(value)`."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral) and not _array_like(value):
        return int(value)
    if isinstance(value, (numbers.Real, decimal.Decimal)) and not _array_like(value):
        return float(value)
    if _array_like(value):
        if math.prod(value.shape) == 1 and callable(getattr(value, "item", None)):
            return metric_value(value.item())
        if callable(getattr(value, "tolist", None)):
            return metric_value(value.tolist())
    if isinstance(value, (list, tuple)):
        return [metric_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): metric_value(v) for k, v in value.items()}
    return str(value)


def _array_like(value: Any) -> bool:
    """numpy arrays and scalars, torch tensors: a shape (numpy's scalars have shape ())."""
    shape = getattr(value, "shape", None)
    return isinstance(shape, tuple) and all(isinstance(d, int) for d in shape)
