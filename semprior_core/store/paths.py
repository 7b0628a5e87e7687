"""Where semprior keeps derived files that are not part of a run (VFM weights, features, points)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$SEMPRIOR_CACHE``, else ``$XDG_CACHE_HOME/semprior``, else ``~/.cache/semprior``."""
    env = os.environ.get("SEMPRIOR_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "semprior"
