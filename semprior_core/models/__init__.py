"""Backbone registry (timm-style): ``@register_backbone``, ``create_backbone``, ``list_backbones``."""

from __future__ import annotations

from collections.abc import Callable

from .base import FeatureInfo, SegBackbone

_REGISTRY: dict[str, Callable[..., SegBackbone]] = {}


def register_backbone(name: str):
    def deco(fn: Callable[..., SegBackbone]) -> Callable[..., SegBackbone]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_backbones() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def create_backbone(name: str, **kwargs) -> SegBackbone:
    _import_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)


def _import_all() -> None:
    # Importing the modules runs their @register_backbone decorators.
    from . import acm, alcnet, dnanet, unet  # noqa: F401


__all__ = ["FeatureInfo", "SegBackbone", "create_backbone", "list_backbones", "register_backbone"]
