"""One hub process under cProfile, in every thread: ``python -m bench.hub_worker HOME OUT_DIR``.

``python -m cProfile -m cli serve`` would see only the event-loop thread, while the
hub decides in its ``axis-cpu`` thread and talks to the store in ``axis-db``
threads. This runner builds the hub exactly as ``axis serve`` does, but hands
it executors whose threads each run their own profiler (timer: the thread's CPU
clock, so time spent waiting for the GIL is not charged to the function holding
the frame). On SIGTERM it stops the hub gracefully and writes ``main.prof``,
``cpu.prof`` and ``db.prof`` into ``OUT_DIR``.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import routing.hub
from axis.commands.serve_cmd import hub_config
from axis.event_loop import run as run_on_loop
from axis.metrics import HubMetrics
from axis.pki_files import load_credential
from axis.receipts import HubReceiptSigner
from axis.settings import Settings, load_settings
from axis.store import Store
from routing.hub import Hub

_PROFILES: list[tuple[str, cProfile.Profile]] = []
_LOCK = threading.Lock()


def _profile_this_thread() -> None:
    profile = cProfile.Profile(time.thread_time)
    with _LOCK:
        _PROFILES.append((threading.current_thread().name, profile))
    profile.enable()


class ProfiledExecutor(ThreadPoolExecutor):
    """A thread pool whose threads are profiled from their first instruction."""

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "",
                 initializer: Callable[..., object] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        super().__init__(max_workers, thread_name_prefix, initializer=_profile_this_thread)


async def serve(settings: Settings) -> None:
    """Run one hub (as ``axis serve`` builds it) until SIGTERM/SIGINT."""
    store = Store(settings.db_url)
    hub = Hub(
        hub_config(settings),
        store,
        HubReceiptSigner(load_credential(settings.hub_key_path, settings.hub_cert_path)),
        HubMetrics())
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await hub.run_until(stop)
    finally:
        store.dispose()


def main(argv: list[str] | None = None) -> None:
    """Serve under the profiler; dump one stats file per kind of thread."""
    home, out = (Path(a) for a in (argv or sys.argv[1:])[:2])
    settings = load_settings(home)
    setattr(routing.hub, "ThreadPoolExecutor", ProfiledExecutor)  # noqa: B010 - the hook
    main_profile = cProfile.Profile(time.thread_time)
    main_profile.enable()
    run_on_loop(serve(settings), settings.event_loop)  # the loop `axis serve` would use
    main_profile.disable()
    out.mkdir(parents=True, exist_ok=True)
    pstats.Stats(main_profile).dump_stats(out / "main.prof")
    for prefix, name in (("axis-cpu", "cpu.prof"), ("axis-db", "db.prof")):
        group = [p for thread, p in _PROFILES if thread.startswith(prefix)]
        if group:
            stats = pstats.Stats(group[0])
            for other in group[1:]:
                stats.add(other)
            stats.dump_stats(out / name)


if __name__ == "__main__":
    main()
