"""Comparing training histories of runs that should be identical (resumed vs uninterrupted)."""

from __future__ import annotations

import json


def assert_same_history(a: list[dict], b: list[dict]) -> None:
    """Every record equal except each epoch's measured wall time (``epoch_s``), which must be present and > 0."""

    def untimed(history: list[dict]) -> str:
        assert all(r["epoch_s"] > 0 for r in history)
        return json.dumps([{k: v for k, v in r.items() if k != "epoch_s"} for r in history], sort_keys=True)

    assert untimed(a) == untimed(b)
