"""Rows of the views as a notebook table shows them."""

from __future__ import annotations

from typing import Any


def rounded(rows: list[dict[str, Any]], digits: int = 3) -> list[dict[str, Any]]:
    """``rows`` with every float rounded to ``digits`` decimals (a table cell needs no 15 decimals)."""
    return [{k: round(v, digits) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
