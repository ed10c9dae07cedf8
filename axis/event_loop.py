"""The event loop a hub process runs on: the ``event_loop`` setting of ``axis.toml``.

``"auto"`` (the default) takes uvloop where it is installed (it is a dependency on every
platform but Windows) and asyncio's own loop elsewhere; ``"asyncio"`` always takes
asyncio's own; ``"uvloop"`` insists on uvloop. ``axis serve`` and the benchmark's
processes start their loop through :func:`run`, so both sides of a comparison use the
same one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from axis.errors import InvalidSettings

EVENT_LOOPS = ("auto", "asyncio", "uvloop")

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def check_event_loop(choice: object) -> str:
    """``choice`` if it names a known loop; else ``config.invalid``."""
    if not isinstance(choice, str) or choice not in EVENT_LOOPS:
        raise InvalidSettings(
            f"event_loop must be one of {', '.join(EVENT_LOOPS)}, not {choice!r}")
    return choice


def select_loop(choice: str = "auto") -> tuple[str, LoopFactory | None]:
    """The loop ``choice`` stands for: its name (``"uvloop"`` or ``"asyncio"``) and its
    factory (``None``: asyncio's default). ``"uvloop"`` when uvloop cannot be imported is
    ``config.invalid``; ``"auto"`` then falls back to asyncio."""
    check_event_loop(choice)
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise InvalidSettings(
                'event_loop = "uvloop" but uvloop is not installed here; install it '
                '(it comes with Axis on Linux and macOS) or set event_loop = "auto"') from None
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"``: which kind of loop ``loop`` is (for logs and reports)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``choice`` selects (:func:`select_loop`)."""
    try:
        _, factory = select_loop(choice)
    except InvalidSettings:
        main.close()  # never awaited: say so quietly rather than with a RuntimeWarning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
