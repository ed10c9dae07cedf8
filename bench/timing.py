"""Repeat an action for a stretch of wall time: the loop every micro-benchmark shares."""

from __future__ import annotations

import time
from collections.abc import Callable


def repeat_for(action: Callable[[], object], seconds: float) -> tuple[int, float]:
    """(operations, seconds taken): ``action`` repeated for about ``seconds`` (at least once)."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        action()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count, now - start
