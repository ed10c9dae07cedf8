"""One fault scenario's world: a vhost on the private broker, a hub home and store, real
``axis serve`` processes, the recipient process, the sender and its receipts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from axis.client.agency import AgencyClient, ClientConfig
from axis.pki_files import init_pki, issue_agency_files, load_credential
from axis.provision import Management
from axis.registration import register_system
from axis.settings import load_settings
from axis.store import Store
from bench.faults_traffic import (
    RECIPIENT,
    SENDER,
    DeliveryLog,
    Tally,
    collect_receipts,
    drain_dead_letters,
    send_all,
    signed_documents,
    summary,
)
from bench.pg_nodes import PrivatePostgres
from bench.rabbit_nodes import RabbitCluster
from routing.amqp import broker_urls
from signing.keys import SigningKey, load_certificate

REPO = Path(__file__).resolve().parents[1]
STALL_SECONDS = 30.0  # settling ends when nothing moved for this long


@dataclass(frozen=True)
class SuiteKeys:
    """The agencies' certificates (one CA for the whole suite) and the pre-signed traffic."""

    sender_key: SigningKey
    sender_cert: bytes
    recipient_cert: bytes
    documents: list[bytes]


def suite_keys(folder: Path, count: int) -> SuiteKeys:
    """Issue A's and B's certificates and sign ``count`` documents once for every scenario."""
    now = datetime.now(UTC)
    init_pki(folder, now)
    a = issue_agency_files(folder, SENDER[0], SENDER[1], now)
    b = issue_agency_files(folder, RECIPIENT[0], RECIPIENT[1], now)
    key = load_credential(a.key, a.cert)
    return SuiteKeys(key, a.cert.read_bytes(), b.cert.read_bytes(), signed_documents(key, count))


@dataclass
class World:
    """Everything one scenario runs on, with the operations its fault uses."""

    name: str
    folder: Path
    broker: RabbitCluster
    home: Path
    keys: SuiteKeys
    count: int
    kills: int
    outage_seconds: float
    recipient_url: str = ""
    postgres: PrivatePostgres | None = None
    client: AgencyClient | None = None
    hubs: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    recipient: subprocess.Popen[bytes] | None = None
    tally: Tally = field(default_factory=Tally)
    delivery_log: DeliveryLog = field(init=False)

    def __post_init__(self) -> None:
        self.delivery_log = DeliveryLog(self.folder / "deliveries.log")

    # processes

    def start_hub(self, index: int) -> None:
        log = (self.folder / f"hub{index}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--home", str(self.home), "--log-level",
             "WARNING"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        while len(self.hubs) <= index:
            self.hubs.append(None)
        self.hubs[index] = process

    def kill_hub(self, index: int) -> None:
        process = self.hubs[index]
        if process is not None:
            process.kill()
            process.wait()
            self.hubs[index] = None

    def start_recipient(self) -> None:
        self.recipient = subprocess.Popen(
            [sys.executable, "-m", "bench.faults_recipient", self.recipient_url, RECIPIENT[0],
             str(self.folder / "deliveries.log")], cwd=REPO,
        )  # fmt: skip

    def kill_recipient(self) -> None:
        if self.recipient is not None:
            self.recipient.kill()
            self.recipient.wait()
            self.recipient = None

    def deliveries(self) -> Counter[str]:
        return self.delivery_log.read()

    # waiting

    async def until(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def until_receipts(self, count: int, timeout: float = 300) -> None:
        await self.until(lambda: len(self.tally.receipts) >= count, timeout)

    async def until_deliveries(self, count: int, timeout: float = 300) -> None:
        await self.until(lambda: len(self.deliveries()) >= count, timeout)

    async def recovery_since(self, moment: float, timeout: float = 120) -> float | None:
        """Seconds from ``moment`` (the fault's end) until every consignment confirmed by then
        has its receipt and its delivery: the exchange has caught up."""
        confirmed = set(self.tally.confirmed)
        wanted = {f"{SENDER[0]}/{c}" for c in confirmed}

        def caught_up() -> bool:
            return confirmed <= self.tally.receipts.keys() and wanted <= self.deliveries().keys()

        done = await self.until(caught_up, timeout)
        return time.monotonic() - moment if done else None

    async def send_all(self) -> None:
        assert self.client is not None
        await send_all(self.client, self.keys.documents[: self.count], self.tally, self.name)

    async def settle(self, timeout: float) -> None:
        """Until every confirmed consignment has its receipt and its delivery, or nothing
        moved for a while, or ``timeout``."""
        deadline, last, moved = time.monotonic() + timeout, (-1, -1), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - moved < STALL_SECONDS:
            now = (len(self.tally.receipts), len(self.deliveries()))
            if now[0] >= len(self.tally.confirmed) and now[1] >= len(self.tally.confirmed):
                return
            if now != last:
                last, moved = now, time.monotonic()
            await asyncio.sleep(0.2)

    async def summary(self, recovery: float | None) -> dict[str, Any]:
        url = self.broker.nodes[0].url.rstrip("/") + "/" + f"faults-{self.name}"
        self.tally.dead = await drain_dead_letters(url, "guest")
        return summary(self.tally, self.deliveries(), recovery)


def _config(home: Path, amqp_url: str, db_url: str, management_url: str,
            failover: list[str]) -> None:  # fmt: skip
    home.mkdir(parents=True)
    (home / "axis.toml").write_text(
        f'amqp_url = "{amqp_url}"\ndb_url = "{db_url}"\nmanagement_url = "{management_url}"\n'
        f'metrics_port = 0\nqueue_type = "quorum"\namqp_failover = {json.dumps(failover)}\n',
        encoding="utf-8",
    )


@contextlib.asynccontextmanager
async def make_world(
    folder: Path, name: str, broker: RabbitCluster, keys: SuiteKeys, *, store: str, hubs: int,
    count: int, kills: int, outage_seconds: float,
) -> AsyncIterator[World]:  # fmt: skip
    """Set up the scenario's vhost, store, hub home, systems and processes; tear all down."""
    node = broker.nodes[0]
    vhost = f"faults-{name}"
    management = Management(node.management_url)
    management.ensure_vhost(vhost)
    management.set_permissions(vhost, "guest", ".*", ".*", ".*")
    folder.mkdir(parents=True)
    world = World(name, folder, broker, folder / "hub", keys, count, kills, outage_seconds)
    receipts: asyncio.Task[None] | None = None
    try:
        if store == "postgres":
            world.postgres = PrivatePostgres.create(folder / "pg")
            world.postgres.start()
            db_url = world.postgres.url.replace("postgresql://", "postgresql+psycopg://")
        else:
            db_url = f"sqlite:///{folder / 'axis.db'}"
        base = f"127.0.0.1:{node.amqp_port}/{vhost}"
        failover = [f"127.0.0.1:{other.amqp_port}" for other in broker.nodes[1:]]
        _config(world.home, f"amqp://guest:guest@{base}", db_url, node.management_url, failover)
        settings = load_settings(world.home, env={})
        pki = init_pki(settings.pki_dir, datetime.now(UTC))
        Store(db_url).create_all()
        a = register_system(settings, SENDER[0], SENDER[1], keys.sender_cert)
        b = register_system(settings, RECIPIENT[0], RECIPIENT[1], keys.recipient_cert)
        world.recipient_url = ",".join(broker_urls(
            f"amqp://{RECIPIENT[0]}:{b['amqp_password']}@{base}", failover))  # fmt: skip
        sender_url = f"amqp://{SENDER[0]}:{a['amqp_password']}@{base}"
        world.client = AgencyClient(ClientConfig(
            amqp_url=sender_url, failover=tuple(failover), system_id=SENDER[0],
            signing_key=keys.sender_key,
            hub_certificate=load_certificate(pki.hub_cert.read_bytes()),
            trust_anchors=(load_certificate(pki.ca_cert.read_bytes()),),
        ))  # fmt: skip
        await world.client.connect()
        receipts = asyncio.create_task(collect_receipts(
            broker_urls(sender_url, failover), SENDER[0],
            load_certificate(pki.hub_cert.read_bytes()), world.tally))  # fmt: skip
        for index in range(hubs):
            world.start_hub(index)
        world.start_recipient()
        yield world
    finally:
        if receipts is not None:
            receipts.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receipts
        if world.client is not None:
            with contextlib.suppress(Exception):
                await world.client.close()
        for index in range(len(world.hubs)):
            world.kill_hub(index)
        world.kill_recipient()
        if world.postgres is not None:
            with contextlib.suppress(Exception):
                world.postgres.stop("immediate")
        for user in (SENDER[0], RECIPIENT[0]):
            with contextlib.suppress(Exception):
                management.delete_user(user)
        with contextlib.suppress(Exception):
            management.delete_vhost(vhost)
