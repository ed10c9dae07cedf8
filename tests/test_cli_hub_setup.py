"""``axis init`` / ``axis hub setup`` against the real broker: a fresh virtual host, the
hub's least-privilege broker user, and a hub that runs as that user."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest

from axis.provision import Management, hub_permissions, system_permissions
from tests.clikit import CliWorld, cli_world, fetch_until, organ, wait_for

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def fresh(
    tmp_path: Path, amqp_base_url: str, management_base_url: str, unique_name: str
) -> Iterator[CliWorld]:
    """A CLI world whose virtual host does NOT exist yet (``axis init`` must create it)."""
    assert not Management(management_base_url).vhost_exists(unique_name)
    with cli_world(tmp_path, amqp_base_url, management_base_url, unique_name,
                   create_vhost=False) as world:  # fmt: skip
        yield world


def _hub_user(world: CliWorld) -> str:
    name = f"axis-hub-{uuid.uuid4().hex[:10]}"
    world.other_users.append(name)
    return name


def _steps(data: dict[str, Any]) -> dict[str, str]:
    return {s["step"]: s["done"] for s in data["steps"]}


def _config(world: CliWorld) -> dict[str, Any]:
    with (world.home / "axis.toml").open("rb") as handle:
        return tomllib.load(handle)


def _init_offline(world: CliWorld) -> None:
    data = world.ok("init", world.home, "--no-broker", "--json").json()
    assert data["broker"]["set_up"] is False
    config = world.home / "axis.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("metrics_port = 9464", "metrics_port = 0"),
        encoding="utf-8",
    )


def _can_log_in(amqp_url: str) -> bool:
    async def connect() -> bool:
        connection = await aio_pika.connect(amqp_url)
        await connection.close()
        return True

    return asyncio.run(connect())


def test_init_creates_the_vhost_and_registration_just_works(fresh: CliWorld) -> None:
    data = fresh.init()
    broker = data["broker"]
    assert broker["set_up"] is True and broker["vhost"] == fresh.vhost
    steps = _steps(broker)
    assert steps["vhost"] == "created" and steps["topology"] == "created"
    assert steps["admin_permissions"] in {"created", "already there"}
    assert fresh.management.vhost_exists(fresh.vhost)

    a = fresh.agency(organ("A"), "Cơ quan A")  # no rabbitmqctl, nothing else
    assert a.registration["vhost"] == fresh.vhost
    queues = fresh.management.names("queues", fresh.vhost)
    assert {"axis.submit", "axis.query", "axis.dead", f"axis.inbox.{a.organ_id}"} <= queues

    again = fresh.ok("hub", "setup", "--json").json()
    assert set(_steps(again).values()) == {"already there"}
    text = fresh.ok("hub", "setup").stdout
    assert f"virtual host {fresh.vhost}" in text and "already there" in text


def test_hub_setup_is_idempotent_and_keeps_the_password(fresh: CliWorld) -> None:
    _init_offline(fresh)
    assert not fresh.management.vhost_exists(fresh.vhost)
    user = _hub_user(fresh)
    first = fresh.ok("hub", "setup", "--hub-user", user, "--json").json()
    assert first["hub_user"] == user and first["vhost"] == fresh.vhost
    assert _steps(first) == {
        "vhost": "created",
        "admin_permissions": _steps(first)["admin_permissions"],
        "hub_user": "created",
        "config": "updated",
        "hub_permissions": "created",
        "topology": "created",
    }
    config_path = fresh.home / "axis.toml"
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    written = _config(fresh)
    assert written["hub_user"] == user
    url = written["amqp_url"]
    assert url.startswith(f"amqp://{user}:") and url.endswith(f"/{fresh.vhost}")
    assert fresh.management.permissions(fresh.vhost, user) == hub_permissions()

    second = fresh.ok("hub", "setup", "--hub-user", user, "--json").json()
    assert set(_steps(second).values()) == {"already there"}, second
    assert _config(fresh)["amqp_url"] == url  # the password was not reset
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert _can_log_in(url)  # the first password still works
    assert "already there" in fresh.ok("hub", "setup", "--hub-user", user).stdout

    # The management_url user cannot be the hub's least-privilege user.
    refused = fresh.axis("hub", "setup", "--hub-user", "guest", "--json")
    assert refused.returncode == 3 and refused.json()["error"]["code"] == "config.invalid"


def test_a_hub_runs_as_the_least_privilege_user(fresh: CliWorld) -> None:
    _init_offline(fresh)
    user = _hub_user(fresh)
    fresh.ok("hub", "setup", "--hub-user", user)
    hub_url = _config(fresh)["amqp_url"]
    a, b = fresh.agency(organ("A"), "Cơ quan A"), fresh.agency(organ("B"), "Cơ quan B")

    # The hub and `axis dead` read the hub home's axis.toml, not the test's override.
    clerk_env = dict(fresh.env)
    del fresh.env["AXIS_AMQP_URL"]
    try:
        fresh.start_hub()
        # The hub's connection is the least-privilege user's (management stats lag a little).
        wait_for(
            lambda: _hub_connections(fresh.management, user) >= 1,
            timeout=20,
            what=f"a connection of {user}",
        )
        letters = fresh.ok("dead", "list", "--home", fresh.home, "--json").json()
    finally:
        fresh.env.clear()
        fresh.env.update(clerk_env)
    assert letters["ok"] is True

    sent = fresh.ok(
        "send", "--to", b.organ_id, "--subject", "V/v thử", "--code", "1/T",
        "--out-dir", fresh.root / "sent", "--profile", a.profile, "--json",
    ).json()  # fmt: skip
    assert sent["event"] == "accepted" and sent["recipients"] == [b.organ_id]
    got = fetch_until(
        fresh,
        b.profile,
        fresh.root / "inbox-b",
        lambda items: any(i["kind"] == "edoc" for i in items),
    )
    [doc] = [i for i in got if i["kind"] == "edoc"]
    assert doc["verified"] is True and doc["document_id"] == sent["document_id"]
    # A query: the hub answers on direct reply-to (the default exchange).
    trace = fresh.ok("trace", sent["message_id"], "--profile", a.profile, "--json").json()
    assert trace["document_id"] == sent["document_id"]

    refusals = asyncio.run(_what_the_hub_user_may_not_do(hub_url, b.organ_id))
    assert refusals == {
        "publish to axis.retry and axis.dead": "allowed",
        "get from another inbox": "ACCESS_REFUSED",
        "delete an inbox": "ACCESS_REFUSED",
        "declare another queue": "ACCESS_REFUSED",
        "declare another exchange": "ACCESS_REFUSED",
    }, refusals
    assert system_permissions(b.organ_id)["read"] != hub_permissions()["read"]
    assert "ACCESS_REFUSED" not in fresh.hub_log()


def _hub_connections(management: Management, user: str) -> int:
    return len(management.user_connections(user))


async def _what_the_hub_user_may_not_do(url: str, inbox_owner: str) -> dict[str, str]:
    """Each attempt on its own channel; what the broker answered (a reply-text prefix)."""
    inbox = f"axis.inbox.{inbox_owner}"
    outcomes: dict[str, str] = {}
    connection = await aio_pika.connect(url)
    try:

        async def attempt(what: str, action: Any) -> None:
            channel = await connection.channel(publisher_confirms=True)
            try:
                await action(channel)
                outcomes[what] = "allowed"
            except aiormq.exceptions.ChannelAccessRefused as refused:
                text = str(refused)
                outcomes[what] = "ACCESS_REFUSED" if "ACCESS_REFUSED" in text else text
            finally:
                with contextlib.suppress(Exception):
                    await channel.close()

        async def get_inbox(channel: Any) -> None:
            queue = await channel.declare_queue(inbox, passive=True)  # no permission needed
            await queue.get(fail=False)

        async def delete_inbox(channel: Any) -> None:
            await channel.queue_delete(inbox)

        async def declare_queue(channel: Any) -> None:
            await channel.declare_queue("axis.spy", durable=False, auto_delete=True)

        async def declare_exchange(channel: Any) -> None:
            await channel.declare_exchange("axis.spy", durable=False, auto_delete=True)

        async def publish_retry_and_dead(channel: Any) -> None:
            for name in ("axis.retry", "axis.dead"):  # what a failing submission needs
                exchange = await channel.get_exchange(name, ensure=True)
                await exchange.publish(aio_pika.Message(b"x"), "edoc")

        await attempt("publish to axis.retry and axis.dead", publish_retry_and_dead)
        await attempt("get from another inbox", get_inbox)
        await attempt("delete an inbox", delete_inbox)
        await attempt("declare another queue", declare_queue)
        await attempt("declare another exchange", declare_exchange)
    finally:
        await connection.close()
    return outcomes


def test_init_without_the_broker_is_reported_not_fatal(tmp_path: Path, fresh: CliWorld) -> None:
    offline = fresh.ok("init", fresh.home, "--no-broker", "--json").json()
    assert offline["broker"] == {"set_up": False, "reason": "--no-broker given", "error": None}
    assert (fresh.home / "axis.toml").is_file()
    assert not fresh.management.vhost_exists(fresh.vhost)

    dead_port = "http://guest:guest@127.0.0.1:1/"
    home = tmp_path / "unreachable"
    env = {"AXIS_MANAGEMENT_URL": dead_port}
    data = fresh.ok("init", home, "--json", env=env).json()
    assert data["broker"]["set_up"] is False
    assert data["broker"]["error"]["code"] == "transport.unreachable"
    text = fresh.ok("init", tmp_path / "unreachable-text", env=env).stdout
    assert "broker not set up: transport.unreachable: " in text
    assert "run `axis hub setup` later" in text
    assert "broker not set up: --no-broker given, run `axis hub setup` later" in (
        fresh.ok("init", tmp_path / "offline-text", "--no-broker").stdout
    )
    # `axis hub setup` itself fails with the coded error.
    failed = fresh.axis("hub", "setup", "--home", home, "--json", env=env)
    assert failed.returncode == 4 and failed.json()["error"]["code"] == "transport.unreachable"
    assert not fresh.management.vhost_exists(fresh.vhost)
