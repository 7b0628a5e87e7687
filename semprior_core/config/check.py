"""Validation shared by every config dataclass: one error type and one way to state a field's rule.

Pure (dataclasses and typing only), so that the pure packages (``labels/``, ``method/``) can validate their
configs without importing the YAML loader or file I/O of :mod:`semprior_core.config.tree`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A config value or key is invalid; the message names the key path."""


class FieldError(ConfigError):
    """One field's value breaks its rule. Raised by :func:`check_fields` while a config is constructed;
    :func:`from_dict` re-raises it under the field's key path (``labels.lesps.window``), and a config built
    directly names its class (``LespsConfig.window``)."""

    def __init__(self, owner: str, name: str, rule: str, value: Any) -> None:
        self.name, self.rule, self.value = name, rule, value
        super().__init__(f"{owner}.{name} {rule}, got {value!r}")

    def at(self, path: str) -> ConfigError:
        key = f"{path}.{self.name}" if path else self.name
        return ConfigError(f"{key} {self.rule}, got {self.value!r}")


def check_fields(cfg: Any, rules: dict[str, tuple[bool, str]] | None = None) -> None:
    """Validate config dataclass ``cfg``: every ``Literal`` field holds one of its values, then each
    ``{field: (ok, rule)}`` in order; the first failure raises a :class:`FieldError` naming that field, its
    rule and its value. Every config class calls this from ``__post_init__``, so direct construction is as
    strict as the YAML loader. A rule that relates two fields is filed under the one it constrains."""
    hints = get_type_hints(type(cfg))
    owner = type(cfg).__name__
    for f in dataclasses.fields(cfg):
        tp, value = hints[f.name], getattr(cfg, f.name)
        if get_origin(tp) is Literal and value not in get_args(tp):
            raise FieldError(owner, f.name, f"must be one of {list(get_args(tp))}", value)
    for name, (ok, rule) in (rules or {}).items():
        if not ok:
            raise FieldError(owner, name, rule, getattr(cfg, name))
