"""Name -> factory registry of frozen VFM backends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config.tree import ConfigError
from .frozen import FrozenVFM


@dataclass(frozen=True)
class VFMRequest:
    """What a backend factory is asked to build."""

    weights: Path | None = None  # a local weights file; None = the backend's default (if it has one)
    input_size: int = 448  # long side fed to the encoder
    seed: int = 0  # for randomly initialised backends

    def __post_init__(self) -> None:
        if self.input_size < 1:
            raise ValueError(f"input_size must be positive, got {self.input_size}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.weights is not None and not isinstance(self.weights, Path):
            object.__setattr__(self, "weights", Path(self.weights))


VFMFactory = Callable[[VFMRequest], FrozenVFM]
_REGISTRY: dict[str, VFMFactory] = {}


def register_vfm(name: str) -> Callable[[VFMFactory], VFMFactory]:
    """Decorator: ``@register_vfm("my_vit")`` on a ``(VFMRequest) -> FrozenVFM`` factory."""

    def decorate(factory: VFMFactory) -> VFMFactory:
        if name in _REGISTRY:
            raise ValueError(f"a VFM named {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorate


def create_vfm(
    name: str, *, weights: str | Path | None = None, input_size: int = 448, seed: int = 0
) -> FrozenVFM:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown VFM {name!r}; registered: {', '.join(list_vfms())}")
    return _REGISTRY[name](
        VFMRequest(weights=None if weights is None else Path(weights), input_size=input_size, seed=seed)
    )


def list_vfms() -> list[str]:
    return sorted(_REGISTRY)
