"""What refused input costs the hub: ``python -m bench refusal [--json]``.

A real hub process (``axis serve``) on a private vhost. The sender publishes, one each:
a 100 MB body (above the broker's ``max_message_size``: the broker refuses it at the
publish, the hub never sees it), a body just above the hub's ``max_submission_bytes``
(the hub refuses it with a signed receipt), and a 5 KB signed package (the baseline,
accepted). For each it prints the growth of the hub process's peak memory (VmHWM)
and of the bytes the store keeps, beside the body size of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aio_pika

from bench.bench_hub import Bench, _spawn, _stop, bench_environment, wait_consumers
from bench.hub_load import read_bodies
from bench.peak_rss import peak_rss_bytes
from routing.contract import SUBMIT_EXCHANGE, SUBMIT_QUEUE, inbox_queue_name

MB = 1_000_000


@dataclass(frozen=True)
class Case:
    label: str
    body_bytes: int
    outcome: str
    hub_peak_growth_bytes: int
    store_growth_bytes: int


def _stored_bytes(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT COALESCE(SUM(LENGTH(raw) + LENGTH(receipt)), 0) "
                           "FROM submissions").fetchone()  # fmt: skip
        refusals = conn.execute("SELECT COALESCE(SUM(LENGTH(excerpt)), 0) FROM refusals")
        return int(row[0]) + int(refusals.fetchone()[0])


async def _submit(bench: Bench, body: bytes) -> str:
    """Publish ``body``; the outcome: the broker's refusal, or the hub's receipt event."""
    consignment = uuid.uuid4().hex
    connection = await aio_pika.connect(bench.sender_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(SUBMIT_EXCHANGE, ensure=False)
        try:
            await exchange.publish(aio_pika.Message(body, message_id=consignment,
                                                    user_id=bench.sender), "edoc")
        except aio_pika.exceptions.AMQPError as exc:
            return f"refused by the broker ({type(exc).__name__})"
        return await _receipt(connection, bench, consignment)
    finally:
        await connection.close()


async def _receipt(connection: aio_pika.abc.AbstractConnection, bench: Bench,
                   consignment: str) -> str:  # fmt: skip
    channel = await connection.channel()
    inbox = await channel.get_queue(inbox_queue_name(bench.sender), ensure=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        message = await inbox.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        if message.correlation_id == consignment:
            headers = message.headers or {}
            event = str(headers.get("axis-event", "?"))
            return f"{event} {headers.get('axis-error-code', '')!s}".strip()
    return "no receipt"


def run(limit: int) -> list[Case]:
    """Start a hub with ``max_submission_bytes = limit``, send the three bodies, measure."""
    with bench_environment(1) as bench:
        config = bench.settings.config_path
        config.write_text(config.read_text() + f"max_submission_bytes = {limit}\n")
        log = bench.tmp / "hub.log"
        hub = _spawn(["-m", "cli", "serve", "--home", str(bench.settings.home),
                      "--log-level", "WARNING"], log)  # fmt: skip
        try:
            wait_consumers(bench.guest_url, SUBMIT_QUEUE, 1, [hub], log)
            db = bench.settings.home / "axis.db"
            bodies = [("5 KB signed package (baseline)", read_bodies(bench.bodies)[0]),
                      ("just over max_submission_bytes", os.urandom(limit + 4096)),
                      ("100 MB body", os.urandom(100 * MB))]  # fmt: skip
            cases = []
            for label, body in bodies:
                peak, stored = peak_rss_bytes(hub.pid), _stored_bytes(db)
                outcome = asyncio.run(_submit(bench, body))
                time.sleep(0.5)
                cases.append(Case(label, len(body), outcome, peak_rss_bytes(hub.pid) - peak,
                                  _stored_bytes(db) - stored))  # fmt: skip
            return cases
        finally:
            _stop([hub])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=16 * 1024 * 1024,
                        help="the hub's max_submission_bytes (default 16 MiB)")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args(argv)
    cases = run(args.limit)
    if args.json:
        print(json.dumps({"max_submission_bytes": args.limit,
                          "cases": [asdict(c) for c in cases]}))  # fmt: skip
        return
    print(f"{'':<34} {'body':>10} {'hub peak +':>11} {'store +':>9}  outcome")
    for c in cases:
        print(f"{c.label:<34} {c.body_bytes / MB:>8.1f}MB {c.hub_peak_growth_bytes / MB:>9.1f}MB "
              f"{c.store_growth_bytes / 1000:>7.1f}kB  {c.outcome}")


if __name__ == "__main__":
    main()
