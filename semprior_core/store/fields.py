"""Checks of the JSON records a run folder holds: each field's test and what its value must be, so that a
damaged file is one :class:`~semprior_core.io.DataError` naming the file and the field."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..io import DataError

Check = tuple[Callable[[Any], bool], str]  # (test, what the value must be)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A JSON number a float holds: a bigger integer would overflow every mean and plot of it."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, float) or abs(v) <= sys.float_info.max


def is_names(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(s, str) and s for s in v)


def numbers(v: Any) -> bool:
    return isinstance(v, list) and all(is_number(x) for x in v)


STRING: Check = (lambda v: isinstance(v, str), "a string")
# bounded like is_number: counts are averaged and plotted too
COUNT: Check = (lambda v: is_int(v) and 0 <= v <= sys.float_info.max, "a non-negative integer")


def short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_fields(where: str, obj: Any, fields: dict[str, Check], required: bool = True) -> dict[str, Any]:
    """``obj`` after checking it is an object whose ``fields`` pass their tests (absent ones too, unless
    ``required``); ``where`` names the file (and record) in the error."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key, (ok, what) in fields.items():
        if key not in obj:
            if required:
                raise DataError(f"{where}: field {key!r} is missing")
        elif not ok(obj[key]):
            raise DataError(f"{where}: field {key!r} must be {what}, got {short(obj[key])}")
    return obj
