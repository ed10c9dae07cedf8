"""``axis hub setup`` (and the broker half of ``axis init``): the hub's broker, set up
through the RabbitMQ management API, idempotently.

Steps, each reported as ``created`` / ``already there`` (or ``updated``):

1. the virtual host ``amqp_url`` names;
2. full permissions there for the ``management_url`` user (the operator's administrator
   account, which ``axis agency register`` uses);
3. with ``--hub-user NAME``: that broker user (no tags, a generated password that is
   written into ``axis.toml``'s ``amqp_url``; an existing user keeps its password) and
   its least-privilege permissions (:func:`axis.provision.hub_permissions`);
4. the hub's exchanges and queues, so agencies can be registered and submit before a
   hub has run.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import typer

from axis.commands.common import HomeOption, JsonOption, emit, reporting
from axis.commands.hub_status import status
from axis.errors import InvalidSettings
from axis.provision import Management, generate_password, hub_permissions
from axis.settings import DEFAULT_AMQP_URL, Settings, load_settings
from envelopes.errors import AxisError
from routing.contract import EXCHANGE_TYPES
from routing.topology import hub_queues

CREATED = "created"
ALREADY = "already there"
UPDATED = "updated"
FULL = {"configure": ".*", "write": ".*", "read": ".*"}

app = typer.Typer(
    help="The hub's broker (virtual host, accounts, permissions, topology) and its status.",
    no_args_is_help=True,
)

HubUserOption = typer.Option(
    None,
    "--hub-user",
    help="Create this broker user for the hub (least privilege, generated password written "
    "into axis.toml's amqp_url); an existing one keeps its password.",
)


@app.command("setup")
def setup(
    home: Path | None = HomeOption,
    hub_user: str | None = HubUserOption,
    as_json: bool = JsonOption,
) -> None:
    """Set the broker up for a hub home, idempotently, through the management API.

    Creates the virtual host of amqp_url, gives the management_url user full
    permissions there, with --hub-user creates the hub's own least-privilege
    broker user (and points axis.toml's amqp_url and hub_user at it), and
    declares the hub's exchanges and queues. Each step says "created" or
    "already there"; nothing needs rabbitmqctl. Example:
    axis hub setup --home /srv/axis --hub-user axis-hub --json
    """
    with reporting(as_json):
        result = set_up_broker(load_settings(home), hub_user)
        emit(as_json, result, lambda: setup_lines(result))


def set_up_broker(settings: Settings, hub_user: str | None = None) -> dict[str, Any]:
    """Run the steps; returns ``{"vhost", "steps": [{"step", "done", "detail"}], "hub_user",
    "notes"}``. Raises ``transport.*`` errors for a broker that fails or cannot be reached."""
    management = Management(settings.management_url)
    admin = _url_user(settings.management_url)
    if not admin:
        raise InvalidSettings("management_url names no user: the management API needs one")
    if hub_user is not None:
        _check_hub_user(hub_user, admin)
    vhost = settings.vhost
    steps: list[dict[str, str]] = []
    notes: list[str] = []

    def step(name: str, done: str, detail: str) -> None:
        steps.append({"step": name, "done": done, "detail": detail})

    if management.vhost_exists(vhost):
        step("vhost", ALREADY, f"virtual host {vhost}")
    else:
        management.ensure_vhost(vhost)
        step("vhost", CREATED, f"virtual host {vhost}")
    done = _ensure_permissions(management, vhost, admin, FULL)
    step("admin_permissions", done, f"full permissions of {admin} (management_url) on {vhost}")
    if hub_user is not None:
        _set_up_hub_user(management, settings, hub_user, step, notes)
    done = _declare_topology(management, settings)
    step("topology", done, f"hub exchanges and queues in {vhost}")
    return {
        "vhost": vhost,
        "steps": steps,
        "hub_user": hub_user if hub_user is not None else settings.hub_user,
        "config": str(settings.config_path),
        "notes": notes,
    }


def init_broker(home: Path, hub_user: str | None, enabled: bool) -> dict[str, Any]:
    """The broker half of ``axis init``: never fatal. ``{"set_up": True, ...steps}``, or
    ``{"set_up": False, "reason", "error"}`` with what to run later."""
    if not enabled:
        return {"set_up": False, "reason": "--no-broker given", "error": None}
    try:
        return {"set_up": True, **set_up_broker(load_settings(home), hub_user)}
    except AxisError as error:
        reason = f"{error.code}: {error.reason}"
        return {"set_up": False, "reason": reason, "error": error.to_dict()}


def init_broker_lines(result: dict[str, Any]) -> list[str]:
    """What ``axis init`` prints about the broker."""
    if not result["set_up"]:
        return [f"broker not set up: {result['reason']}, run `axis hub setup` later"]
    return setup_lines(result)


def setup_lines(result: dict[str, Any]) -> list[str]:
    """The steps in words, one per line."""
    lines = [f"broker set up for virtual host {result['vhost']}:"]
    lines += [f"  {s['detail']:60} {s['done']}" for s in result["steps"]]
    lines += [f"  note: {note}" for note in result["notes"]]
    return lines


def _set_up_hub_user(
    management: Management, settings: Settings, name: str, step: Any, notes: list[str]
) -> None:
    """The hub's broker user, its permissions and axis.toml's ``amqp_url`` / ``hub_user``."""
    if management.user_exists(name):
        step("hub_user", ALREADY, f"broker user {name} (password kept)")
        if _url_user(_file_amqp_url(settings)) == name:
            done = _rewrite_config(settings.config_path, None, name)
        else:
            done = "left as is"
            notes.append(
                f"the broker user {name} already existed: its password was kept and is not "
                f"known here; put it into amqp_url in {settings.config_path}"
            )
    else:
        # axis.toml first: if creating the user fails, a re-run makes a new password.
        password = generate_password()
        done = _rewrite_config(settings.config_path, _with_user(settings, name, password), name)
        management.create_user(name, password, tags="")
        step("hub_user", CREATED, f"broker user {name} (password written to amqp_url)")
    step("config", done, f"amqp_url and hub_user = {name} in {settings.config_path.name}")
    granted = _ensure_permissions(management, settings.vhost, name, hub_permissions())
    step("hub_permissions", granted, f"least-privilege permissions of {name} on {settings.vhost}")
    if os.environ.get("AXIS_AMQP_URL"):
        notes.append("AXIS_AMQP_URL is set: it overrides amqp_url in axis.toml")


def _ensure_permissions(
    management: Management, vhost: str, user: str, wanted: dict[str, str]
) -> str:
    current = management.permissions(vhost, user)
    if current == wanted:
        return ALREADY
    management.set_permissions(vhost, user, **wanted)
    return CREATED if current is None else UPDATED


def _declare_topology(management: Management, settings: Settings) -> str:
    wanted_exchanges = set(EXCHANGE_TYPES)
    wanted_queues = {spec.name for spec in hub_queues(settings.queue_type)}
    missing = (wanted_exchanges - management.names("exchanges", settings.vhost)) | (
        wanted_queues - management.names("queues", settings.vhost)
    )
    management.declare_topology(settings.vhost, settings.queue_type)
    if not missing:
        return ALREADY
    return CREATED if missing == wanted_exchanges | wanted_queues else UPDATED


def _check_hub_user(name: str, admin: str) -> None:
    if not name or not name.isprintable() or name != name.strip() or len(name) > 255:
        raise InvalidSettings(f"--hub-user {name!r} is not a usable broker user name")
    if name == admin:
        raise InvalidSettings(
            f"--hub-user {name!r} is the management_url user: the hub's own user must be "
            "another account, with least privilege"
        )


def _url_user(url: str) -> str:
    return unquote(urlsplit(url).username or "")


def _with_user(settings: Settings, user: str, password: str) -> str:
    """The effective amqp_url (host, port, vhost kept) with another user and password."""
    parts = urlsplit(settings.amqp_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _file_amqp_url(settings: Settings) -> str:
    """``amqp_url`` as axis.toml says it (no environment override)."""
    with settings.config_path.open("rb") as handle:
        value = tomllib.load(handle).get("amqp_url", DEFAULT_AMQP_URL)
    return str(value)


def _rewrite_config(config: Path, amqp_url: str | None, hub_user: str) -> str:
    """Set ``amqp_url`` (unless None) and ``hub_user`` in axis.toml, in place, mode 0600."""
    text = config.read_text(encoding="utf-8")
    new = text
    if amqp_url is not None:
        new = _set_key(new, "amqp_url", amqp_url)
    new = _set_key(new, "hub_user", hub_user)
    if new == text:
        return ALREADY
    tomllib.loads(new)  # never write a file the hub cannot read
    temporary = config.with_name(config.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(new)
    os.chmod(temporary, 0o600)
    os.replace(temporary, config)
    return UPDATED


def _set_key(text: str, key: str, value: str) -> str:
    """Replace the ``key = …`` line (or the commented-out one), else append one."""
    line = f"{key} = {json.dumps(value)}"
    for pattern in (rf"^{key}\s*=.*$", rf"^#\s*{key}\s*=.*$"):
        if re.search(pattern, text, flags=re.MULTILINE):
            return re.sub(pattern, lambda _: line, text, count=1, flags=re.MULTILINE)
    return text.rstrip("\n") + "\n" + line + "\n"


app.command("status")(status)

__all__ = ["app", "init_broker", "init_broker_lines", "set_up_broker", "setup", "setup_lines"]
