"""The semprior dashboard (Panel): ``serve(run_dirs)`` or ``semprior dashboard --run DIR``."""

from __future__ import annotations

from .app import DashboardState, build_app, serve

__all__ = ["DashboardState", "build_app", "serve"]
