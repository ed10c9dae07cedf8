"""Batched trips off the loop; group commit on a real store: outcomes reach the right caller."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from axis.store import Store
from routing.batching import Batcher
from routing.values import DocumentIdTaken, DuplicateSubmission, NewSubmission, SubmissionRecord

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


class CountingStore(Store):
    """A real SQLite store that remembers the size of every batch it was given."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches: list[int] = []

    def record_submissions(
        self, items: Sequence[NewSubmission]
    ) -> list[SubmissionRecord | DuplicateSubmission | DocumentIdTaken]:
        self.batches.append(len(items))
        return super().record_submissions(items)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    s = CountingStore(f"sqlite:///{tmp_path}/axis.db")
    s.create_all()
    yield s
    s.dispose()


def record(message_id: str, receipt: bytes = b"<Receipt/>") -> SubmissionRecord:
    raw = f"<edXML>{message_id}</edXML>".encode()
    return SubmissionRecord(
        user_id="000.00.00.G22", message_id=message_id, kind="edoc",
        sha256=hashlib.sha256(raw).hexdigest(), outcome="accepted", raw=raw,
        receipt=receipt, received_at=T0, document_id=f"doc-{message_id}",
    )  # fmt: skip


async def record_all(
    store: Store, records: list[SubmissionRecord], max_batch: int = 128
) -> list[SubmissionRecord | DuplicateSubmission | DocumentIdTaken]:
    with ThreadPoolExecutor(max_workers=2) as io:
        commits = Batcher(store.record_submissions, io, max_batch=max_batch)
        return await asyncio.gather(*(commits.run((r, [], [])) for r in records))


def test_concurrent_records_share_commits_and_each_gets_its_own(store: CountingStore) -> None:
    records = [record(f"m{n}") for n in range(60)]
    outcomes = asyncio.run(record_all(store, records))
    assert [o.message_id for o in outcomes if isinstance(o, SubmissionRecord)] == [
        r.message_id for r in records
    ]
    assert all(isinstance(o, SubmissionRecord) and o.id is not None for o in outcomes)
    assert store.count_submissions() == 60
    assert sum(store.batches) == 60
    assert len(store.batches) < 60 and max(store.batches) > 1  # commits were shared


def test_batches_respect_the_bound(store: CountingStore) -> None:
    asyncio.run(record_all(store, [record(f"m{n}") for n in range(50)], max_batch=8))
    assert max(store.batches) <= 8 and sum(store.batches) == 50


def test_a_lone_record_is_committed_at_once(store: CountingStore) -> None:
    outcomes = asyncio.run(record_all(store, [record("only")]))
    assert store.batches == [1] and isinstance(outcomes[0], SubmissionRecord)


def test_a_duplicate_in_a_batch_does_not_fail_the_others(store: CountingStore) -> None:
    first = store.record_submission(record("m3"), [], [])
    again = replace(record("m3"), receipt=b"<Receipt>again</Receipt>")
    outcomes = asyncio.run(record_all(store, [record("m1"), again, record("m2")]))
    assert isinstance(outcomes[1], DuplicateSubmission) and outcomes[1].existing == first
    assert isinstance(outcomes[0], SubmissionRecord) and isinstance(outcomes[2], SubmissionRecord)
    assert store.count_submissions() == 3


def test_a_store_failure_reaches_every_caller_of_that_batch(store: CountingStore) -> None:
    store.dispose()
    Path(store.url.removeprefix("sqlite:///")).unlink()
    Path(store.url.removeprefix("sqlite:///")).mkdir()  # the database can no longer be opened

    async def attempt() -> list[object]:
        with ThreadPoolExecutor(max_workers=1) as io:
            commits = Batcher(store.record_submissions, io)
            calls = (commits.run((record(f"m{n}"), [], [])) for n in range(5))
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(attempt())
    assert all(isinstance(o, OperationalError) for o in outcomes), outcomes


def test_a_batch_function_sees_what_arrived_while_it_ran() -> None:
    seen: list[list[int]] = []

    def square_all(items: Sequence[int]) -> list[int]:
        seen.append(list(items))
        return [n * n for n in items]

    async def main() -> list[int]:
        with ThreadPoolExecutor(max_workers=1) as cpu:
            squares = Batcher(square_all, cpu, max_batch=50)
            return await asyncio.gather(*(squares.run(n) for n in range(120)))

    assert asyncio.run(main()) == [n * n for n in range(120)]
    assert [n for batch in seen for n in batch] == list(range(120))  # in order, each once
    assert [len(batch) for batch in seen] == [50, 50, 20]  # all were waiting: bounded batches


def test_cancelling_the_runner_releases_every_waiter() -> None:
    release = threading.Event()

    def slow(items: Sequence[int]) -> list[int]:
        release.wait(5)
        return list(items)

    async def main() -> list[int | BaseException]:
        with ThreadPoolExecutor(max_workers=1) as cpu:
            batcher = Batcher(slow, cpu)
            waiters = [asyncio.create_task(batcher.run(n)) for n in range(3)]
            await asyncio.sleep(0.05)
            assert batcher._runner is not None
            batcher._runner.cancel()
            outcomes = await asyncio.gather(*waiters, return_exceptions=True)
            release.set()
            return outcomes

    outcomes = asyncio.run(main())
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)


def test_a_batch_function_that_loses_items_fails_its_callers_not_the_batcher() -> None:
    def drops_one(items: Sequence[int]) -> list[int]:
        return list(items)[1:] if len(items) > 1 else list(items)

    async def main() -> tuple[list[int | BaseException], int]:
        with ThreadPoolExecutor(max_workers=1) as cpu:
            batcher = Batcher(drops_one, cpu)
            first = await asyncio.gather(*(batcher.run(n) for n in range(3)),
                                         return_exceptions=True)
            return first, await batcher.run(7)  # the batcher still serves later callers

    outcomes, later = asyncio.run(main())
    assert all(isinstance(o, RuntimeError) for o in outcomes), outcomes
    assert later == 7
