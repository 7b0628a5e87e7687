"""Training recipes, by name: ``supervised`` (one network) and ``semprior`` (teacher + student)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the recipes import the config, which imports method.config: keep this package light
    from .base import Context, Method


def _supervised(ctx: Context, **kw) -> Method:
    from .supervised import SupervisedMethod

    return SupervisedMethod(ctx)


def _semprior(ctx: Context, **kw) -> Method:
    from .semprior import SempriorMethod

    return SempriorMethod(ctx, **kw)


METHODS: dict[str, Callable[..., Method]] = {"supervised": _supervised, "semprior": _semprior}


def create_method(cfg, ctx: Context, **kw) -> Method:
    try:
        factory = METHODS[cfg.method.name]
    except KeyError:
        raise ValueError(f"unknown method {cfg.method.name!r}; available: {', '.join(METHODS)}") from None
    return factory(ctx, **kw)


__all__ = ["METHODS", "create_method"]
