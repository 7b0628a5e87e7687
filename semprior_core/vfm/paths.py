"""Where the VFM code keeps converted weights: under the project-wide cache root.

``$SEMPRIOR_CACHE``, else ``$XDG_CACHE_HOME/semprior``, else ``~/.cache/semprior``; one implementation,
:func:`semprior_core.store.paths.cache_dir`, re-exported here so the VFM code and the feature cache agree.
"""

from __future__ import annotations

from ..store.paths import cache_dir as user_cache_dir

__all__ = ["user_cache_dir"]
