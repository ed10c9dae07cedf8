"""The processes of the end-to-end benchmark that are not the hub.

``python -m bench.hub_load load CONFIG.json`` is the publisher and the recipient
consumer (one process, so publish and receive times come from one clock); it
prints its figures as one JSON line. Its timed phase is either windowed (at most
``window`` messages outstanding: the peak throughput) or paced (``rate`` > 0: one
message every 1/rate s on a fixed schedule, open loop). ``python -m bench.hub_load
relay URL`` is the bare aio-pika pass-through the hub is compared with: consume,
publish with a confirm, ack. Both run apart from the hub so they do not take its
GIL, on the event loop the hub uses (``--loop``, :mod:`axis.event_loop`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from axis.event_loop import EVENT_LOOPS, loop_name
from axis.event_loop import run as run_on_loop
from routing.topology import queue_arguments

RELAY_IN = "bench.pt.in"
RELAY_OUT = "bench.pt.out"
H_EVENT = "axis-event"
H_ERROR = "axis-error-code"
PREFETCH = 64
CONSUMER_PREFETCH = 512
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """One run of the load process (written as JSON by the orchestrator)."""

    publish_url: str
    consume_url: str
    exchange: str
    routing_key: str
    deliver_queue: str
    bodies: str
    count: int
    window: int
    warmup: int
    serial: int
    tag: str
    user_id: str | None = None
    receipt_queue: str | None = None
    hub_pids: tuple[int, ...] = ()
    broker_pids: tuple[int, ...] = ()
    timeout: float = 120.0
    rate: float = 0.0  # > 0: the timed phase publishes at this many messages per second
    event_loop: str = "auto"


@dataclass(slots=True)
class LoadResult:
    """What one run measured; latencies in milliseconds."""

    count: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    serial_p50_ms: float
    serial_p99_ms: float
    hub_cpu_ms: float
    broker_cpu_ms: float
    load_cpu_ms: float
    machine_busy: float
    receipts: dict[str, int] = field(default_factory=dict)
    rate: float = 0.0
    lag_p99_ms: float = 0.0  # paced: how late the publish calls were against their schedule
    lag_max_ms: float = 0.0
    event_loop: str = ""


def write_bodies(path: Path, bodies: Sequence[bytes]) -> None:
    """Length-prefixed concatenation of the pre-signed packages."""
    with path.open("wb") as out:
        for body in bodies:
            out.write(struct.pack(">I", len(body)))
            out.write(body)


def read_bodies(path: Path) -> list[bytes]:
    data, bodies, at = path.read_bytes(), [], 0
    while at < len(data):
        (size,) = struct.unpack_from(">I", data, at)
        bodies.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return bodies


def cpu_seconds(pids: Sequence[int]) -> float:
    """user + system CPU of ``pids`` (and their reaped children) from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / _CLK_TCK


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- the load process ------------------------------------------------------------------


class _Load:
    """Publisher with a bounded window of outstanding messages, plus the recipient."""

    def __init__(self, config: LoadConfig, bodies: list[bytes]) -> None:
        self.config = config
        self.bodies = bodies
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []
        self.receipts: dict[str, int] = {}
        self.failure: str | None = None
        self.window = asyncio.Semaphore(config.window)
        self.idle = asyncio.Event()
        self.serial_no = 0

    async def on_delivery(self, message: AbstractIncomingMessage) -> None:
        now = time.perf_counter()
        await message.ack()
        key = (message.message_id or "").rsplit("/", 1)[-1]
        started = self.sent.pop(key, None)
        if started is None:
            return  # a copy published twice: counted once
        self.latencies.append(now - started)
        self.window.release()
        if not self.sent:
            self.idle.set()

    async def on_receipt(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        headers = message.headers or {}
        event = _text(headers.get(H_EVENT, "?"))
        self.receipts[event] = self.receipts.get(event, 0) + 1
        if event == "rejected" and self.failure is None:
            self.failure = f"the hub rejected a submission: {_text(headers.get(H_ERROR, '?'))}"
            self.idle.set()

    async def phase(self, channel: AbstractChannel, count: int, window: int) -> list[float]:
        """Publish ``count`` messages, at most ``window`` outstanding; their latencies."""
        self.window = asyncio.Semaphore(window)
        self.latencies = []
        exchange = await self._exchange(channel)
        publishes: list[asyncio.Task[object]] = []
        for _ in range(count):
            await self.window.acquire()
            self._check()
            self._publish(exchange, publishes)
        await self._settle(publishes)
        return list(self.latencies)

    async def paced(self, channel: AbstractChannel, count: int,
                    rate: float) -> tuple[list[float], list[float]]:
        """Publish ``count`` messages at ``rate`` per second on a fixed schedule, whether
        or not the ones before them arrived (open loop); their latencies, and how late
        each publish call was against its schedule."""
        self.window = asyncio.Semaphore(count + 1)  # deliveries release it: never binding
        self.latencies = []
        exchange = await self._exchange(channel)
        publishes: list[asyncio.Task[object]] = []
        lags: list[float] = []
        start = time.perf_counter()
        for number in range(count):
            due = start + number / rate
            # Sleep even when late, so deliveries are read while catching up.
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            self._check()
            lags.append(self._publish(exchange, publishes) - due)
        await self._settle(publishes)
        return list(self.latencies), lags

    async def _exchange(self, channel: AbstractChannel) -> AbstractExchange:
        if not self.config.exchange:
            return channel.default_exchange
        return await channel.get_exchange(self.config.exchange, ensure=False)

    def _publish(self, exchange: AbstractExchange, tasks: list[asyncio.Task[object]]) -> float:
        """Publish the next message as a task (awaiting the confirm) added to ``tasks``;
        return its send time."""
        self.serial_no += 1
        key = f"{self.config.tag}-{self.serial_no}"
        message = aio_pika.Message(
            body=self.bodies[self.serial_no % len(self.bodies)], message_id=key,
            user_id=self.config.user_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/xml")
        self.sent[key] = sent = time.perf_counter()
        tasks.append(asyncio.create_task(
            exchange.publish(message, self.config.routing_key, mandatory=True)))
        return sent

    async def _settle(self, publishes: Sequence[asyncio.Task[object]]) -> None:
        """Wait for the confirms and for every delivery still outstanding."""
        await asyncio.gather(*publishes)
        if self.sent:
            self.idle.clear()  # it may have been set at a moment with nothing outstanding
            try:
                await asyncio.wait_for(self.idle.wait(), self.config.timeout)
            except TimeoutError:
                raise SystemExit(f"{len(self.sent)} deliveries missing after "
                                 f"{self.config.timeout:g} s") from None
        self._check()

    async def wait_receipts(self, want: int) -> None:
        deadline = time.perf_counter() + self.config.timeout
        while sum(self.receipts.values()) < want and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        self._check()

    def _check(self) -> None:
        if self.failure is not None:
            raise SystemExit(self.failure)


async def run_load(config: LoadConfig) -> LoadResult:
    """Warm up, measure serial latency, then the saturated run; return the figures."""
    load = _Load(config, read_bodies(Path(config.bodies)))
    publisher = await aio_pika.connect(config.publish_url)
    consumer = await aio_pika.connect(config.consume_url)
    try:
        pub_channel = await publisher.channel(publisher_confirms=True)
        con_channel = await consumer.channel()
        await con_channel.set_qos(prefetch_count=CONSUMER_PREFETCH)
        inbox = await con_channel.get_queue(config.deliver_queue, ensure=False)
        await inbox.consume(load.on_delivery)
        if config.receipt_queue:
            receipts = await con_channel.get_queue(config.receipt_queue, ensure=False)
            await receipts.consume(load.on_receipt)
        await load.phase(pub_channel, config.warmup, config.window)
        serial = await load.phase(pub_channel, config.serial, 1)
        cpu_before, ticks_before = _cpu(config), machine_ticks()
        started = time.perf_counter()
        lags: list[float] = []
        if config.rate > 0:
            latencies, lags = await load.paced(pub_channel, config.count, config.rate)
        else:
            latencies = await load.phase(pub_channel, config.count, config.window)
        seconds = time.perf_counter() - started
        cpu_after, ticks_after = _cpu(config), machine_ticks()
        if config.receipt_queue:
            await load.wait_receipts(config.warmup + config.serial + config.count)
    finally:
        await publisher.close()
        await consumer.close()
    spent = [(after - before) * 1000 / config.count for before, after in zip(cpu_before, cpu_after,
                                                                              strict=True)]
    return LoadResult(
        count=config.count, seconds=seconds, per_second=config.count / seconds,
        p50_ms=statistics.median(latencies) * 1000, p99_ms=percentile(latencies, 0.99) * 1000,
        serial_p50_ms=statistics.median(serial) * 1000 if serial else float("nan"),
        serial_p99_ms=percentile(serial, 0.99) * 1000,
        hub_cpu_ms=spent[0], broker_cpu_ms=spent[1], load_cpu_ms=spent[2],
        machine_busy=(ticks_after[0] - ticks_before[0]) / max(1, ticks_after[1] - ticks_before[1]),
        receipts=dict(load.receipts), rate=config.rate,
        lag_p99_ms=percentile(lags, 0.99) * 1000 if lags else 0.0,
        lag_max_ms=max(lags, default=0.0) * 1000,
        event_loop=loop_name(asyncio.get_running_loop()))


def _cpu(config: LoadConfig) -> tuple[float, float, float]:
    own = time.process_time()
    return cpu_seconds(config.hub_pids), cpu_seconds(config.broker_pids), own


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


# -- the pass-through ------------------------------------------------------------------


async def declare_relay_queues(channel: AbstractChannel) -> None:
    """The pass-through's two quorum queues (same arguments as the hub's queues)."""
    for name in (RELAY_IN, RELAY_OUT):
        await channel.declare_queue(name, durable=True, arguments=queue_arguments("quorum",
                                                                                  dead_letter=False))


async def run_relay(url: str) -> None:
    """Consume ``bench.pt.in``; publish each body to ``bench.pt.out`` with a confirm; ack."""
    print(f"relay on {loop_name(asyncio.get_running_loop())}", flush=True)
    connection = await aio_pika.connect_robust(url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=PREFETCH)
    await declare_relay_queues(channel)
    queue = await channel.get_queue(RELAY_IN, ensure=False)

    async def relay(message: AbstractIncomingMessage) -> None:
        copy = aio_pika.Message(
            body=bytes(message.body), message_id=message.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, content_type=message.content_type)
        await channel.default_exchange.publish(copy, RELAY_OUT, mandatory=True)
        await message.ack()

    await queue.consume(relay)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await connection.close()


def main(argv: Sequence[str] | None = None) -> None:
    """``load CONFIG.json`` or ``relay AMQP_URL [--loop auto|asyncio|uvloop]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=("load", "relay"))
    parser.add_argument("target", help="the load's JSON config, or the relay's AMQP URL")
    parser.add_argument("--loop", choices=EVENT_LOOPS, default="auto",
                        help="the relay's event loop (the load's is in its config)")
    args = parser.parse_args(argv)
    if args.role == "relay":
        run_on_loop(run_relay(args.target), args.loop)
        return
    raw = json.loads(Path(args.target).read_text())
    raw["hub_pids"], raw["broker_pids"] = tuple(raw["hub_pids"]), tuple(raw["broker_pids"])
    config = LoadConfig(**raw)
    result = run_on_loop(run_load(config), config.event_loop)
    sys.stdout.write(json.dumps(asdict(result)) + "\n")


if __name__ == "__main__":
    main()
