"""`axis agency rotate-password`: a new broker password, against the real RabbitMQ.

Each test has a vhost of its own (``cli_world``) and unique organ ids; the broker
users are deleted afterwards. The old password must be refused and the new one
accepted, by the broker itself and through a clerk's profile.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import pytest
from typer.testing import CliRunner

from axis.errors import InvalidSettings
from axis.registration import check_password
from cli import app
from tests.clikit import AgencyFiles, CliWorld, Run, assert_error, organ

REGISTER_FIELDS = {"system_id", "name", "amqp_user", "amqp_password", "inbox", "vhost"}
ROTATE_FIELDS = {"ok", *REGISTER_FIELDS, "connections_closed", "connections_kept",
                 "connections_error"}  # fmt: skip


def _url(world: CliWorld, user: str, password: str) -> str:
    """The world's vhost on the broker, as ``user`` with ``password``."""
    parts = urlsplit(world.amqp_base)
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"amqp://{credentials}@{parts.hostname}:{parts.port or 5672}/{world.vhost}"


async def _refused(url: str) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=10)
    except aio_pika.exceptions.ProbableAuthenticationError:
        return True
    await connection.close()
    return False


async def _listed(world: CliWorld, user: str, count: int) -> None:
    """Wait until the management API lists ``count`` connections of ``user``."""
    for _ in range(100):
        if len(await asyncio.to_thread(world.management.user_connections, user)) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the management API never listed {count} connection(s) of {user}")


async def _closed_by_the_broker(
    world: CliWorld, user: str, connection: aio_pika.abc.AbstractConnection
) -> bool:
    """The broker lists no connection of ``user`` and ``connection`` can open no channel."""
    for _ in range(100):
        if not await asyncio.to_thread(world.management.user_connections, user):
            break
        await asyncio.sleep(0.1)
    else:
        return False
    try:
        await asyncio.wait_for(connection.channel(), 10)
    except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
        return True
    return False


async def _rotate_with_an_open_connection(
    world: CliWorld, a: AgencyFiles, *args: object
) -> tuple[Run, aio_pika.abc.AbstractConnection]:
    """Connect with the old password, then run ``agency rotate-password`` as a process."""
    connection = await aio_pika.connect(_url(world, a.organ_id, a.registration["amqp_password"]))
    await _listed(world, a.organ_id, 1)
    run = await asyncio.to_thread(world.axis, "agency", "rotate-password", a.organ_id, *args)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run
    return run, connection


def test_rotation_refuses_the_old_password_and_hands_over_the_new_one(world: CliWorld) -> None:
    a = world.agency(organ("A"), "Cơ quan A")
    old = a.registration["amqp_password"]

    async def scenario() -> dict[str, Any]:
        run, connection = await _rotate_with_an_open_connection(world, a, "--json")
        rotated = run.json()
        assert await _closed_by_the_broker(world, a.organ_id, connection)
        assert await _refused(_url(world, a.organ_id, old))
        assert not await _refused(_url(world, a.organ_id, rotated["amqp_password"]))
        return rotated

    rotated = asyncio.run(scenario())
    assert set(rotated) == ROTATE_FIELDS and set(a.registration) >= REGISTER_FIELDS
    assert {k: rotated[k] for k in REGISTER_FIELDS - {"amqp_password"}} == {
        k: a.registration[k] for k in REGISTER_FIELDS - {"amqp_password"}
    }
    assert rotated["ok"] is True and rotated["vhost"] == world.vhost
    assert rotated["amqp_password"] != old and len(rotated["amqp_password"]) >= 32
    assert (rotated["connections_closed"], rotated["connections_kept"]) == (1, 0)
    assert rotated["connections_error"] is None

    # The clerk's old profile is refused; one made from the --json output works.
    stale = world.axis("inbox", "fetch", "--to", world.root / "in", "--profile", a.profile)
    assert_error(stale, "transport.authentication_failed", as_json=False)
    registration = world.root / "rotated.reg.json"
    registration.write_text(json.dumps(rotated), encoding="utf-8")
    fresh = world.root / "fresh.toml"
    world.ok(
        "profile", "create", registration, "--key", a.key, "--cert", a.cert,
        "--hub-cert", world.pki / "hub.pem", "--ca", world.pki / "ca.pem", "-o", fresh,
    )  # fmt: skip
    fetched = world.ok("inbox", "fetch", "--to", world.root / "in", "--profile", fresh, "--json")
    assert fetched.json()["fetched"] == []


def test_password_file_and_kept_connections(world: CliWorld) -> None:
    a = world.agency(organ("A"), "Cơ quan A")
    old = a.registration["amqp_password"]
    chosen = "Mật-khẩu mới 0123456789"
    password_file = world.root / "password.txt"
    password_file.write_text(chosen + "\r\n", encoding="utf-8")

    async def scenario() -> str:
        run, connection = await _rotate_with_an_open_connection(
            world, a, "--password-file", password_file, "--keep-connections"
        )
        channel = await connection.channel()  # the old connection keeps working…
        await channel.declare_queue(f"axis.inbox.{a.organ_id}", passive=True)
        await connection.close()
        assert await _refused(_url(world, a.organ_id, old))  # …but cannot reconnect
        assert not await _refused(_url(world, a.organ_id, chosen))
        return run.stdout

    text = asyncio.run(scenario())
    assert f"rotated the broker password of system {a.organ_id} (Cơ quan A)" in text
    assert f"amqp password {chosen}   (shown once" in text
    assert "kept 1 open connection(s) (--keep-connections)" in text
    assert "axis profile create" in text


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_refusals_are_coded(world: CliWorld, as_json: bool) -> None:
    json_flag = ["--json"] if as_json else []
    unknown = world.axis("agency", "rotate-password", "NOBODY.X1", *json_flag)
    error = assert_error(unknown, "registry.unknown_agency", as_json=as_json)
    if as_json:
        assert "NOBODY.X1" in error["reason"]

    a = world.agency(organ("A"), "Cơ quan A")
    short = world.root / "short.txt"
    short.write_text("tooshort\n", encoding="utf-8")
    run = world.axis("agency", "rotate-password", a.organ_id, "--password-file", short, *json_flag)
    assert_error(run, "config.invalid", as_json=as_json)
    missing = world.root / "missing.txt"
    run = world.axis("agency", "rotate-password", a.organ_id, "--password-file", missing)
    assert_error(run, "envelope.invalid_metadata", as_json=False)
    # Nothing was changed by the refusals: the registered password still connects.
    assert not asyncio.run(_refused(_url(world, a.organ_id, a.registration["amqp_password"])))

    world.management.delete_user(a.organ_id)  # registered in the store, gone from the broker
    gone = world.axis("agency", "rotate-password", a.organ_id, *json_flag)
    error = assert_error(gone, "registry.unknown_agency", as_json=as_json)
    if as_json:
        assert "the broker has no user" in error["reason"]
    assert not world.management.user_exists(a.organ_id)  # and it was not re-created


def test_rotate_password_without_a_hub_home_is_coded(world: CliWorld) -> None:
    run = world.axis("agency", "rotate-password", "X.Y1", "--home", world.root / "nowhere")
    assert_error(run, "config.home_missing", as_json=False)


# -- typer's runner, in process ------------------------------------------------------------


def test_help_names_every_option() -> None:
    command = ["agency", "rotate-password", "--help"]
    result = CliRunner().invoke(app, command, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--password-file", "--keep-connections", "--home", "--json"):
        assert option in result.output
    assert "axis profile create" in result.output


def test_runner_unknown_system_is_refused_before_the_broker(tmp_path: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "hub"
    assert runner.invoke(app, ["init", str(home), "--no-broker", "--json"]).exit_code == 0
    # A management API nobody listens on: the store refuses first, so it is never asked.
    env = {"AXIS_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:1/"}
    result = runner.invoke(
        app, ["agency", "rotate-password", "NOBODY.X1", "--home", str(home), "--json"], env=env
    )
    assert result.exit_code == 1, result.output
    assert json.loads(result.output)["error"]["code"] == "registry.unknown_agency"


@pytest.mark.parametrize(
    "password",
    ["x" * 15, "x" * 1025, " leading-space-0123456", "two\nlines-0123456789", "tab\t0123456789ab"],
)
def test_a_chosen_password_must_be_one_strong_line(password: str) -> None:
    with pytest.raises(InvalidSettings):
        check_password(password)


def test_a_chosen_password_is_kept_as_given() -> None:
    assert check_password("Mật-khẩu mới 0123456789") == "Mật-khẩu mới 0123456789"
