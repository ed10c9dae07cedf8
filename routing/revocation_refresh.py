"""Keeping the hub's revocation answers current, off the event loop.

A :class:`~routing.ports.RevocationKeeper` fetches CRLs and OCSP responses over the
network; the hub's decision only reads its memory. :class:`RevocationRefresher` runs the
fetching in a thread of its own (a slow CRL server must not hold up the database
threads): once when the hub starts, every ``interval`` seconds, and on demand when a
submission was refused for want of fresh material (the keeper fetches only what is
missing or due, and tries a failing source again only after its interval).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from routing.decide import Accepted, Rejected
from routing.ports import RegistryView, RevocationKeeper
from signing.errors import RevocationStale, RevocationUnavailable

log = logging.getLogger("axis.hub")
_FETCH_CODES = frozenset({RevocationUnavailable.code, RevocationStale.code})


class RevocationRefresher:
    """Runs one keeper's :meth:`~routing.ports.RevocationKeeper.refresh` in its thread."""

    def __init__(
        self,
        keeper: RevocationKeeper,
        registry: Callable[[], RegistryView],
        clock: Callable[[], datetime],
        interval: float,
    ) -> None:
        self._keeper, self._registry, self._clock = keeper, registry, clock
        self._interval = interval
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axis-revocation")

    async def refresh(self) -> bool:
        """Fetch what is missing or due now; True if an answer may have changed. A failure
        is logged, never raised: the previous answers stay."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._thread, self._keeper.refresh, self._registry(), self._clock())
        except Exception:
            log.exception("refreshing the revocation material failed; keeping what was fetched")
            return False

    async def refreshed_for(self, verdict: Accepted | Rejected) -> bool:
        """After a refusal for missing or stale material (a new signer's may not be fetched
        yet, a newer CRL be out), fetch what is due; True if deciding again may help."""
        if not isinstance(verdict, Rejected) or verdict.code not in _FETCH_CODES:
            return False
        return await self.refresh()

    def report(self, verdict: Accepted) -> None:
        """An accepted package whose signer's status was not good ("warn"): tell the keeper."""
        if verdict.revocation is not None and not verdict.revocation.good:
            self._keeper.accepted_anyway(verdict.revocation, verdict.sender_system)

    async def refresh_forever(self) -> None:
        """Refresh every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()

    def close(self) -> None:
        """Stop the thread without waiting for a fetch in progress (it has its timeout)."""
        self._thread.shutdown(wait=False, cancel_futures=True)
