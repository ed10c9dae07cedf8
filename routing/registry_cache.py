"""The hub's registry snapshot, reloaded only when the registry changed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from routing.decide import TrustIndex
from routing.ports import RegistrySource, RegistryView

log = logging.getLogger("axis.hub")


class RegistryCache:
    """The current :class:`RegistryView` and its parsed certificates, for one hub."""

    def __init__(
        self, source: RegistrySource, io: Executor, cpu: Executor,
        on_load: Callable[[RegistryView], None] = lambda _: None,
    ) -> None:  # fmt: skip
        """``on_load`` is told of every snapshot loaded (the monitor's gauges)."""
        self._source, self._io, self._cpu, self._on_load = source, io, cpu, on_load
        self._version = source.registry_version()
        self.snapshot: RegistryView = source.load_snapshot()
        self.trust = TrustIndex.from_snapshot(self.snapshot)
        on_load(self.snapshot)

    async def refresh(self) -> bool:
        """Reload the snapshot if the registry changed since the last load; True if reloaded.

        Asking is one cheap query; a reload reads the whole directory (about half a
        second for the national one), so it happens only when something changed.
        """
        loop = asyncio.get_running_loop()
        version = await loop.run_in_executor(self._io, self._source.registry_version)
        if version == self._version:
            return False
        # Read before loading: a change made during the load moves the version again.
        snapshot = await loop.run_in_executor(self._io, self._source.load_snapshot)
        trust = await loop.run_in_executor(self._cpu, TrustIndex.from_snapshot, snapshot)
        self.snapshot, self.trust, self._version = snapshot, trust, version
        self._on_load(snapshot)
        return True

    async def refresh_forever(self, interval: float) -> None:
        """Refresh every ``interval`` seconds until cancelled; a failed refresh keeps the
        previous snapshot."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("registry refresh failed; keeping the previous snapshot")
