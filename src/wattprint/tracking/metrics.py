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
    larger one, a list, tuple or dict element by element; anything else, or a number no float can hold
    (Fraction(10**400), Decimal("sNaN")), as `str(value)`. Never raises."""
    try:
        return _converted(value, depth=0)
    except (ValueError, OverflowError, TypeError, RecursionError, ArithmeticError):
        try:
            return str(value)
        except Exception:  # a broken __str__: the type at least
            return f"<{type(value).__name__}>"


def _converted(value: Any, depth: int) -> Any:
    if depth > 20:
        raise RecursionError("metric nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral) and not _array_like(value):
        return int(value)
    if isinstance(value, (numbers.Real, decimal.Decimal)) and not _array_like(value):
        return float(value)
    if _array_like(value):
        if math.prod(value.shape) == 1 and callable(getattr(value, "item", None)):
            item = value.item()
            if _array_like(item):  # numpy's longdouble: .item() gives a longdouble back
                return float(item)
            return _converted(item, depth + 1)
        if callable(getattr(value, "tolist", None)):
            return _converted(value.tolist(), depth + 1)
    if isinstance(value, (list, tuple)):
        return [_converted(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _converted(v, depth + 1) for k, v in value.items()}
    return str(value)


def _array_like(value: Any) -> bool:
    """numpy arrays and scalars, torch tensors: a shape (numpy's scalars have shape ())."""
    shape = getattr(value, "shape", None)
    return isinstance(shape, tuple) and all(isinstance(d, int) for d in shape)
