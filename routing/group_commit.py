"""Group commit: submissions that arrive while one commit runs share the next one.

A hub persists every submission before it publishes anything, and on SQLite (or
PostgreSQL with synchronous commit) each commit waits for the disk. Handlers
that call :meth:`GroupCommit.record` concurrently are stored together: the first
caller starts a commit at once, everyone arriving meanwhile waits for the next,
which takes them all (up to ``max_batch``). An idle hub therefore adds no delay,
and a busy one pays one flush per batch instead of one per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor

from axis.store import DuplicateSubmission, NewSubmission, Store, SubmissionRecord

Stored = SubmissionRecord | DuplicateSubmission


class GroupCommit:
    """Batches :meth:`Store.record_submissions` calls; one commit in flight at a time."""

    def __init__(self, store: Store, executor: Executor, max_batch: int = 128) -> None:
        self._store = store
        self._executor = executor
        self._max_batch = max_batch
        self._waiting: list[tuple[NewSubmission, asyncio.Future[Stored]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def record(self, item: NewSubmission) -> Stored:
        """Store ``item`` (record, deliveries, events); the stored record or the duplicate.

        Raises what the store raised for the batch that held ``item``.
        """
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_while_waiting())
        return await future

    async def _commit_while_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            items: Sequence[NewSubmission] = [item for item, _ in batch]
            try:
                stored = await loop.run_in_executor(
                    self._executor, self._store.record_submissions, items
                )
            except asyncio.CancelledError:  # shutting down: nobody may wait forever
                for _, future in [*batch, *self._waiting]:
                    future.cancel()
                raise
            except Exception as exc:  # every handler in the batch retries via redelivery
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, stored, strict=True):
                if not future.done():
                    future.set_result(outcome)
