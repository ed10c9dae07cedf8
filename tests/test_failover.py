"""Several broker addresses: settings, the URLs derived from them, and a robust connection
that moves to the next address when its node dies."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from yarl import URL

from axis.client.profile import load_profile, profile_toml
from axis.errors import InvalidSettings
from axis.settings import check_addresses
from bench.rabbit_nodes import RABBIT_BIN, RabbitCluster
from routing.amqp import broker_urls, connect_robust_any


def test_failover_urls_keep_the_credentials_vhost_and_query() -> None:
    assert broker_urls("amqp://u:p%40w@h1:5672/vh?heartbeat=5", ["h2:5673", "[::1]:5674"]) == [
        "amqp://u:p%40w@h1:5672/vh?heartbeat=5",
        "amqp://u:p%40w@h2:5673/vh?heartbeat=5",
        "amqp://u:p%40w@[::1]:5674/vh?heartbeat=5",
    ]
    assert broker_urls("amqp://h1/", []) == ["amqp://h1/"]
    assert broker_urls("amqp://h1/v", ["h2:1"]) == ["amqp://h1/v", "amqp://h2:1/v"]


@pytest.mark.parametrize("value", [["h2"], ["u@h2:1"], ["h2:1/vh"], ["h2:x"], "h2:1", [1]])
def test_a_malformed_failover_address_is_refused(value: object) -> None:
    with pytest.raises(InvalidSettings, match="amqp_failover"):
        check_addresses(value)


def test_well_formed_failover_addresses_pass() -> None:
    assert check_addresses(["h2:5673", "[::1]:5674"]) == ("h2:5673", "[::1]:5674")


async def test_the_first_address_that_answers_is_used(amqp_base_url: str) -> None:
    dead = "amqp://guest:guest@127.0.0.1:1/"
    connection = await connect_robust_any([dead, amqp_base_url], reconnect_interval=0.2)
    try:
        assert connection.connected.is_set()
    finally:
        await connection.close()
    with pytest.raises(OSError):
        await connect_robust_any([dead], reconnect_interval=0.2)


@pytest.mark.skipif(not (RABBIT_BIN / "rabbitmq-server").exists(),
                    reason="no RabbitMQ server binaries to start a private node")  # fmt: skip
async def test_a_connection_whose_node_dies_moves_to_the_next_address_and_consumes_again(
    tmp_path: Path, amqp_base_url: str
) -> None:
    tmp_path.chmod(0o755)
    private = RabbitCluster.create(tmp_path / "rabbit", 1)
    await asyncio.to_thread(private.start)
    connection = None
    try:
        connection = await connect_robust_any([private.urls[0], amqp_base_url],
                                              reconnect_interval=0.3)  # fmt: skip
        channel = await connection.channel()
        queue = await channel.declare_queue(f"failover-{uuid.uuid4().hex}", exclusive=True)
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def take(message: AbstractIncomingMessage) -> None:
            got.put_nowait(message.body)

        await queue.consume(take, no_ack=True)
        await asyncio.to_thread(private.nodes[0].kill)
        shared = f":{URL(amqp_base_url).port}/"
        for _ in range(300):  # the node is gone: an attempt goes to the next address
            await asyncio.sleep(0.1)
            if connection.connected.is_set() and str(connection).endswith(shared):
                break
        assert connection.connected.is_set() and str(connection).endswith(shared), str(connection)
        # The channel reopens before its queue and consumer are declared again, and a message
        # published in between has no queue to go to: publish again until one arrives.
        body = None
        for _ in range(60):
            try:
                await channel.default_exchange.publish(aio_pika.Message(b"x"), queue.name)
            except aio_pika.exceptions.ChannelInvalidStateError:
                await asyncio.sleep(0.1)
                continue
            try:
                body = await asyncio.wait_for(got.get(), 0.5)
                break
            except TimeoutError:
                continue
        assert body == b"x"
    finally:
        if connection is not None:  # a robust connection left open retries for ever
            await connection.close()
        private.close()


def test_a_client_profile_names_the_other_nodes_of_the_cluster(tmp_path: Path) -> None:
    values = {"system_id": "000.00.00.G22", "amqp_url": "amqp://h1:5672/axis", "password": "p",
              "key": "k.pem", "cert": "c.pem", "hub_cert": "hub.pem", "ca": "ca.pem"}
    profile = tmp_path / "profile.toml"
    profile.write_text(profile_toml(values) + 'amqp_failover = ["h2:5672", "h3:5672"]\n')
    assert load_profile(profile).failover == ("h2:5672", "h3:5672")
    profile.write_text(profile_toml(values) + 'amqp_failover = ["h2"]\n')
    with pytest.raises(InvalidSettings, match="amqp_failover"):
        load_profile(profile)
