"""The fault suite's recipient: ``python -m bench.faults_recipient URL[,URL…] SYSTEM LOG``.

Consumes the system's inbox (prefetch 100) and, for each delivery, appends its message id
to LOG and flushes it to disk before acking: what it logged it received, what it did not
ack comes again. Runs until killed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from aio_pika.abc import AbstractIncomingMessage

from routing.amqp import connect_robust_any
from routing.contract import inbox_queue_name


async def main(url: str, system_id: str, log_path: str) -> None:
    for name in ("aio_pika", "aiormq"):  # reconnection attempts are expected here, not news
        logging.getLogger(name).setLevel(logging.CRITICAL)
    connection = await connect_robust_any(url.split(","), reconnect_interval=1)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=100)
    # declared (passively), not just named: a robust channel restores its consumer then
    queue = await channel.get_queue(inbox_queue_name(system_id))
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life

    async def on_message(message: AbstractIncomingMessage) -> None:
        log.write(f"{message.message_id}\n")
        log.flush()
        os.fsync(log.fileno())
        await message.ack()

    await queue.consume(on_message)
    await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
