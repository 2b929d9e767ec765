"""One progress-bar factory for every long-running loop (tqdm when installed)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(
    total: int | None,
    *,
    desc: str,
    unit: str = "step",
    initial: int = 0,
    enabled: bool = True,
    leave: bool = True,
) -> Any:
    """A tqdm bar, or ``None`` when disabled or tqdm is missing.

    On a terminal it refreshes every second; in logs (no TTY) every 30 s, so files stay small.
    """
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the `sr` extra
        return None
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        leave=leave,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
    )
