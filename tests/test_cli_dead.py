"""``axis dead list`` and ``axis dead replay`` on the real broker, in a private vhost.

``axis.dead`` is seeded with the three sorts of letter an operator meets, without a hub:

- (a) dead-lettered by the broker: a system publishes a submission as itself, it is
  taken from ``axis.submit`` and rejected without requeue, so RabbitMQ adds ``x-death``;
- (b) published by the hub after it gave up: ``user_id`` = the hub's user and the
  ``axis-dead-reason`` headers, with a body of a few MB;
- (c) a delivery rejected from an inbox: routing key = a system id, never replayable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import pytest
from typer.testing import CliRunner, Result

from axis.dead_letters import read_dead_letter, replay_message
from axis.provision import generate_password
from axis.settings import load_settings, write_default_config
from cli import app
from routing.contract import (
    DEAD_QUEUE,
    DELIVER_EXCHANGE,
    H_ATTEMPT,
    H_DEAD_REASON,
    H_LAST_ERROR,
    H_ORIGIN_USER,
    SUBMIT_EXCHANGE,
    SUBMIT_QUEUE,
    XML,
)
from routing.retry import origin_of
from routing.topology import declare_inbox, declare_topology
from tests.clikit import CliWorld, assert_error, cli_world, organ

BIG = os.urandom(3 * 1024 * 1024 + 7)  # a hub-dead-lettered body of a few MB


@dataclass(frozen=True)
class Seeded:
    """The letters put into ``axis.dead``, in their order there."""

    system: str
    hub_user: str
    a_id: str
    a_body: bytes
    b_id: str
    c_id: str


@pytest.fixture
def world(
    tmp_path: Path, amqp_base_url: str, management_base_url: str, unique_name: str
) -> Iterator[CliWorld]:
    with cli_world(tmp_path, amqp_base_url, management_base_url, unique_name) as w:
        write_default_config(w.home)  # the dead commands need only axis.toml
        yield w


@pytest.fixture
def seeded(world: CliWorld) -> Iterator[Seeded]:
    system = organ("SYS")
    password = generate_password()
    world.management.create_system_account(world.vhost, system, password)
    try:
        hub_user = load_settings(world.home, world.env).hub_user
        yield asyncio.run(_seed(world, system, password, hub_user))
    finally:
        with contextlib.suppress(Exception):
            world.management.delete_user(system)


def _as_user(world: CliWorld, user: str, password: str) -> str:
    parts = urlsplit(world.amqp_url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc.rsplit('@')[-1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def _seed(world: CliWorld, system: str, password: str, hub_user: str) -> Seeded:
    tag = uuid.uuid4().hex[:8]
    seeded = Seeded(system, hub_user, f"cons-a-{tag}", b"<edXML>a</edXML>" * 100,
                    f"cons-b-{tag}", f"cons-c-{tag}")  # fmt: skip
    connection = await aio_pika.connect(world.amqp_url)
    try:
        channel = await connection.channel()
        topology = await declare_topology(channel)
        await _broker_dead_letter(world, channel, system, password, seeded)
        await topology.dead_exchange.publish(
            aio_pika.Message(
                BIG, content_type=XML, type="edoc", message_id=seeded.b_id, user_id=hub_user,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={H_ORIGIN_USER: system, H_ATTEMPT: "7", H_DEAD_REASON: "hub.unavailable",
                         H_LAST_ERROR: "the database is down: connection refused"},
            ),
            "edoc",
        )  # fmt: skip
        await _wait_dead(channel, 2)
        inbox = await declare_inbox(channel, system)
        deliver = await channel.get_exchange(DELIVER_EXCHANGE)
        await deliver.publish(aio_pika.Message(b"<copy/>", message_id=seeded.c_id), system)
        await _reject_one(inbox)
        await _wait_dead(channel, 3)
    finally:
        await connection.close()
    return seeded


async def _broker_dead_letter(
    world: CliWorld, channel: Any, system: str, password: str, seeded: Seeded
) -> None:
    """(a): the system submits as itself; the submission is rejected without requeue."""
    as_system = await aio_pika.connect(_as_user(world, system, password))
    try:
        own = await as_system.channel()
        submit = await own.get_exchange(SUBMIT_EXCHANGE, ensure=False)
        await submit.publish(
            aio_pika.Message(seeded.a_body, content_type=XML, type="edoc",
                             message_id=seeded.a_id, user_id=system,
                             headers={H_ORIGIN_USER: "forged.OTHER"}),
            "edoc",
        )  # fmt: skip
    finally:
        await as_system.close()
    await _reject_one(await channel.declare_queue(SUBMIT_QUEUE, passive=True))
    await _wait_dead(channel, 1)


async def _reject_one(queue: Any) -> None:
    for _ in range(100):
        message = await queue.get(no_ack=False, fail=False)
        if message is not None:
            await message.reject(requeue=False)
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue.name}")


async def _wait_dead(channel: Any, count: int) -> None:
    for _ in range(100):
        if await _count(channel, DEAD_QUEUE) == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{DEAD_QUEUE} never held {count} letters")


async def _count(channel: Any, name: str) -> int:
    queue = await channel.declare_queue(name, passive=True)
    return int(queue.declaration_result.message_count or 0)


def _queued(world: CliWorld, name: str) -> int:
    async def count() -> int:
        connection = await aio_pika.connect(world.amqp_url)
        try:
            return await _count(await connection.channel(), name)
        finally:
            await connection.close()

    return asyncio.run(count())


def _take_all(world: CliWorld, name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    async def take() -> list[aio_pika.abc.AbstractIncomingMessage]:
        connection = await aio_pika.connect(world.amqp_url)
        try:
            queue = await (await connection.channel()).declare_queue(name, passive=True)
            taken = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                taken.append(message)
            return taken
        finally:
            await connection.close()

    return asyncio.run(take())


def _axis(world: CliWorld, *args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=world.env, catch_exceptions=False)


def _listed(world: CliWorld) -> list[dict[str, Any]]:
    result = _axis(world, "dead", "list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["count"] == len(data["letters"])
    return list(data["letters"])


# -- list ----------------------------------------------------------------------------------


@pytest.mark.rabbitmq
def test_list_shows_both_kinds_and_removes_nothing(world: CliWorld, seeded: Seeded) -> None:
    letters = _listed(world)
    assert [x["message_id"] for x in letters] == [seeded.a_id, seeded.b_id, seeded.c_id]
    a, b, c = letters
    assert a["source"] == "broker" and a["reason"] == "rejected" and a["queue"] == SUBMIT_QUEUE
    # user_id is the system's own: its forged axis-origin-user header counts for nothing
    assert a["origin"] == a["user_id"] == seeded.system
    assert a["routing_key"] == "edoc" and a["attempts"] == 1 and a["first_death"]
    assert a["size"] == len(seeded.a_body)
    assert a["sha256"] == hashlib.sha256(seeded.a_body).hexdigest()
    assert a["replayable"] is True and a["refusal"] is None
    assert b["source"] == "hub" and b["reason"] == "hub.unavailable" and b["queue"] is None
    assert b["origin"] == seeded.system and b["user_id"] == seeded.hub_user
    assert b["attempts"] == 7 and b["last_error"].startswith("the database is down")
    assert b["size"] == len(BIG) and b["sha256"] == hashlib.sha256(BIG).hexdigest()
    assert b["first_death"] is None and b["replayable"] is True
    assert c["routing_key"] == seeded.system and c["reason"] == "rejected"
    assert c["queue"] == f"axis.inbox.{seeded.system}"
    assert c["replayable"] is False and "not a submission" in c["refusal"]
    # nothing was removed, and the order is the same the second time
    assert _queued(world, DEAD_QUEUE) == 3
    assert [x["message_id"] for x in _listed(world)] == [seeded.a_id, seeded.b_id, seeded.c_id]


@pytest.mark.rabbitmq
def test_list_text_and_limit(world: CliWorld, seeded: Seeded) -> None:
    result = _axis(world, "dead", "list", "--limit", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    assert lines[0].startswith(f"{seeded.a_id}  from {seeded.system}  edoc  rejected in")
    assert "hub.unavailable (hub)  attempts 7" in lines[1]
    assert "last error: the database is down" in lines[1]
    assert lines[2] == f"2 of 3 dead letter(s) in {DEAD_QUEUE} (listed, not removed)"
    assert _queued(world, DEAD_QUEUE) == 3


# -- replay --------------------------------------------------------------------------------


@pytest.mark.rabbitmq
def test_replay_of_one_id_moves_exactly_that_one(world: CliWorld, seeded: Seeded) -> None:
    result = _axis(world, "dead", "replay", seeded.b_id, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["not_found"] == [] and data["skipped"] == []
    assert [x["message_id"] for x in data["replayed"]] == [seeded.b_id]
    assert data["kept"] == 2
    [copy] = _take_all(world, SUBMIT_QUEUE)
    assert copy.routing_key == "edoc" and copy.message_id == seeded.b_id
    assert copy.user_id == seeded.hub_user
    headers = copy.headers or {}
    assert headers[H_ORIGIN_USER] == seeded.system and int(str(headers[H_ATTEMPT])) == 0
    assert H_DEAD_REASON not in headers and H_LAST_ERROR not in headers
    assert copy.body == BIG and copy.type == "edoc" and copy.content_type == XML
    assert copy.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert [x["message_id"] for x in _listed(world)] == [seeded.a_id, seeded.c_id]


@pytest.mark.rabbitmq
def test_replay_of_a_broker_letter_names_its_user_id(world: CliWorld, seeded: Seeded) -> None:
    result = _axis(world, "dead", "replay", seeded.a_id)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"replayed {seeded.a_id} from {seeded.system} (edoc, {len(seeded.a_body)} B) "
        f"to {SUBMIT_EXCHANGE}",
        f"1 replayed to {SUBMIT_EXCHANGE}, 0 skipped, 0 not found; 2 left in {DEAD_QUEUE}",
    ]
    [copy] = _take_all(world, SUBMIT_QUEUE)
    headers = copy.headers or {}
    assert copy.user_id == seeded.hub_user and headers[H_ORIGIN_USER] == seeded.system
    assert "x-death" not in headers and copy.body == seeded.a_body
    assert [x["message_id"] for x in _listed(world)] == [seeded.b_id, seeded.c_id]


@pytest.mark.rabbitmq
def test_replay_all_skips_what_is_not_a_submission(world: CliWorld, seeded: Seeded) -> None:
    result = _axis(world, "dead", "replay", "--all", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [x["message_id"] for x in data["replayed"]] == [seeded.a_id, seeded.b_id]
    assert [x["message_id"] for x in data["skipped"]] == [seeded.c_id]
    assert data["kept"] == 1
    assert [m.message_id for m in _take_all(world, SUBMIT_QUEUE)] == [seeded.a_id, seeded.b_id]
    assert [x["message_id"] for x in _listed(world)] == [seeded.c_id]


@pytest.mark.rabbitmq
def test_replay_of_an_unknown_id_is_a_coded_error(world: CliWorld, seeded: Seeded) -> None:
    run = world.axis("dead", "replay", "no-such-consignment", seeded.a_id, "--json")
    assert run.returncode == 1, run
    error = assert_error(run, "submission.dead_letter_not_found", as_json=True)
    assert error["not_found"] == "no-such-consignment" and error["replayed"] == seeded.a_id
    assert [m.message_id for m in _take_all(world, SUBMIT_QUEUE)] == [seeded.a_id]
    text = world.axis("dead", "replay", "still-missing")
    assert text.returncode == 1, text
    assert_error(text, "submission.dead_letter_not_found", as_json=False)
    assert "not found in axis.dead: still-missing" in text.stdout
    assert _queued(world, DEAD_QUEUE) == 2


@pytest.mark.rabbitmq
def test_replay_of_a_letter_that_is_no_submission_is_refused(
    world: CliWorld, seeded: Seeded
) -> None:
    result = _axis(world, "dead", "replay", seeded.c_id, "--json")
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "submission.dead_letter_not_replayable"
    assert error["not_replayable"] == seeded.c_id and "not a submission" in error["reason"]
    assert _queued(world, SUBMIT_QUEUE) == 0 and _queued(world, DEAD_QUEUE) == 3


@pytest.mark.rabbitmq
@pytest.mark.parametrize("args", [(), ("some-id", "--all")], ids=["neither", "both"])
def test_replay_needs_ids_or_all(world: CliWorld, args: tuple[str, ...]) -> None:
    result = _axis(world, "dead", "replay", *args)
    assert result.exit_code == 2, result.output
    assert "exactly one" in result.output


@pytest.mark.rabbitmq
def test_without_the_topology_the_hub_is_not_ready(world: CliWorld) -> None:
    run = world.axis("dead", "list", "--json")
    assert run.returncode == 4, run
    error = assert_error(run, "transport.hub_not_ready", as_json=True)
    assert f"queue {DEAD_QUEUE}" in error["reason"]


# -- the pure part -------------------------------------------------------------------------


def _letter(**given: Any) -> Any:
    fields: dict[str, Any] = {
        "routing_key": "edoc", "message_id": "m", "user_id": "SYS", "type": None,
        "content_type": None, "headers": None, "hub_user": "axis-hub", **given,
    }  # fmt: skip
    return read_dead_letter(b"x", **fields)


def test_hub_headers_count_only_on_the_hubs_own_messages() -> None:
    headers = {H_ORIGIN_USER: "000.00.00.H41", H_ATTEMPT: "3", H_DEAD_REASON: "hub.unavailable"}
    assert _letter(headers=headers).origin == "SYS"
    own = _letter(headers=headers, user_id="axis-hub", type="edoc")
    assert own.origin == "000.00.00.H41" and own.attempts == 3 and own.source == "hub"
    wire = replay_message(b"x", own, "axis-hub")
    assert wire.user_id == "axis-hub" and wire.content_type == XML and wire.persistent
    assert wire.type == "edoc" and wire.message_id == "m"
    assert dict(wire.headers) == {H_ORIGIN_USER: "000.00.00.H41", H_ATTEMPT: "0"}
    # The hub takes the replayed copy as its own (it may follow a stored submission, and
    # the system's rate does not apply to it); the same headers from a system do nothing.
    replayed = origin_of(wire.user_id, wire.headers, "axis-hub")
    assert (replayed.user_id, replayed.attempt, replayed.relayed) == ("000.00.00.H41", 0, True)
    forged = origin_of("000.00.00.G22", wire.headers, "axis-hub")
    assert (forged.user_id, forged.relayed) == ("000.00.00.G22", False)


def test_a_hub_copy_without_origin_is_not_replayable() -> None:
    letter = _letter(routing_key="status", user_id="axis-hub", headers={})
    assert letter.origin is None and letter.source == "unknown"
    assert letter.refusal is not None and "no submitting system" in letter.refusal
    with pytest.raises(ValueError):
        replay_message(b"x", letter, "axis-hub")
    assert _letter(message_id=None).refusal == "it has no message_id (consignment id)"
    assert _letter(routing_key="query").refusal is not None
