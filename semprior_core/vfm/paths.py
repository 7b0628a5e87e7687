"""Where the VFM code keeps converted weights on the user's machine."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """The semprior cache root: ``$SEMPRIOR_CACHE``, else ``$XDG_CACHE_HOME/semprior``, else ``~/.cache/semprior``.

    Only computes the path; callers create what they need below it.
    """
    explicit = os.environ.get("SEMPRIOR_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "semprior"
