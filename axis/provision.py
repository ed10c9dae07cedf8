"""Provisioning over the RabbitMQ management HTTP API (standard library only).

A system account can publish to ``axis.submit`` and ``axis.query`` (RabbitMQ checks
that ``user_id`` is the account itself), consume its own inbox and use direct
reply-to, and nothing else: it declares, binds and deletes nothing.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from axis.errors import BrokerUnreachable, ManagementApiError
from routing.contract import (
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DELIVER_EXCHANGE,
    EXCHANGE_TYPES,
    QUERY_EXCHANGE,
    QUERY_QUEUE,
    RETRY_EXCHANGE,
    SUBMIT_EXCHANGE,
    SUBMIT_QUEUE,
    inbox_queue_name,
)
from routing.contract_attachments import ATTACHMENT_QUEUE
from routing.topology import hub_queues, inbox_arguments

NOTHING = "^$"
SYSTEM_WRITE = f"^({re.escape(SUBMIT_EXCHANGE)}|{re.escape(QUERY_EXCHANGE)})$"


def system_permissions(system_id: str) -> dict[str, str]:
    """configure / write / read regular expressions of a system account."""
    return {
        "configure": NOTHING,
        "write": SYSTEM_WRITE,
        "read": f"^{re.escape(inbox_queue_name(system_id))}$",
    }


# The name RabbitMQ checks permissions against when a message goes to the default exchange.
DEFAULT_EXCHANGE_RESOURCE = "amq.default"


def hub_permissions() -> dict[str, str]:
    """configure / write / read regular expressions of the hub's own broker user.

    Exactly what ``axis serve`` and ``axis dead`` do, by RabbitMQ's access-control
    table, derived from the topology (:func:`routing.topology.hub_queues`); no
    ``axis.inbox.*`` name matches any of them:

    - configure: declare the hub's exchanges and queues (``queue.declare`` and
      ``exchange.declare`` need configure on the name);
    - write: publish deliveries (``axis.deliver``), retries (``axis.retry``), dead letters
      (``axis.dead``), replays (``axis.submit``) and direct reply-to answers (the default
      exchange, ``amq.default``); bind its queues (``queue.bind`` needs write on the
      queue); name ``axis.dead`` / ``axis.submit`` as a queue's dead-letter exchange;
    - read: consume ``axis.submit``, ``axis.query`` and ``axis.attachment``, take from ``axis.dead``
      (``axis dead``), bind from its exchanges (read on the source exchange) and declare
      a queue with a dead-letter exchange (read on that queue).
    """
    queues = hub_queues("quorum")  # the names do not depend on the queue type
    queue_names = {spec.name for spec in queues}
    dead_letter_targets = {
        str(spec.arguments["x-dead-letter-exchange"])
        for spec in queues if "x-dead-letter-exchange" in spec.arguments
    }  # fmt: skip
    with_dead_letter = {spec.name for spec in queues if "x-dead-letter-exchange" in spec.arguments}
    bound_from = {exchange for spec in queues for exchange, _ in spec.bindings}
    published = {DELIVER_EXCHANGE, RETRY_EXCHANGE, DEAD_EXCHANGE, SUBMIT_EXCHANGE}
    return {
        "configure": _exactly(set(EXCHANGE_TYPES) | queue_names),
        "write": _exactly(
            published | dead_letter_targets | queue_names | {DEFAULT_EXCHANGE_RESOURCE}
        ),
        "read": _exactly({SUBMIT_QUEUE, QUERY_QUEUE, DEAD_QUEUE, ATTACHMENT_QUEUE}
                         | bound_from | with_dead_letter),
    }


def _exactly(names: set[str]) -> str:
    """A regular expression matching exactly ``names``: ``^(a|b|…)$``, sorted, escaped."""
    return "^(" + "|".join(re.escape(name) for name in sorted(names)) + ")$"


def generate_password() -> str:
    """32 URL-safe random characters (192 bits)."""
    return secrets.token_urlsafe(24)


class Management:
    """A client of the management API at ``url`` (``http://user:password@host:15672/``)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ManagementApiError(f"not a management API URL: {parts.scheme}://{parts.hostname}")
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self.base = urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/api/", "", ""))
        credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        self._auth = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
        self.timeout = timeout

    # virtual hosts

    def ensure_vhost(self, vhost: str) -> None:
        """Create the virtual host if missing."""
        self._call("PUT", f"vhosts/{_q(vhost)}", {})

    def vhost_exists(self, vhost: str) -> bool:
        """Whether the broker has the virtual host."""
        return self._get_or_none(f"vhosts/{_q(vhost)}") is not None

    def delete_vhost(self, vhost: str) -> bool:
        """Delete the virtual host and everything in it; False if it did not exist."""
        return self._delete(f"vhosts/{_q(vhost)}")

    # users and permissions

    def create_system_account(self, vhost: str, system_id: str, password: str) -> None:
        """Create (or reset) the system's user, without tags, and its permissions."""
        self._call("PUT", f"users/{_q(system_id)}", {"password": password, "tags": ""})
        self.set_permissions(vhost, system_id, **system_permissions(system_id))

    def set_permissions(
        self, vhost: str, user: str, configure: str, write: str, read: str
    ) -> None:
        """Set a user's configure/write/read regular expressions on a virtual host."""
        body = {"configure": configure, "write": write, "read": read}
        self._call("PUT", f"permissions/{_q(vhost)}/{_q(user)}", body)

    def create_user(self, user: str, password: str, tags: str = "") -> None:
        """Create (or reset!) a broker user; check :meth:`user_exists` first to keep one."""
        self._call("PUT", f"users/{_q(user)}", {"password": password, "tags": tags})

    def permissions(self, vhost: str, user: str) -> dict[str, str] | None:
        """A user's configure/write/read regular expressions on a virtual host, None if none."""
        found = self._get_or_none(f"permissions/{_q(vhost)}/{_q(user)}")
        if not isinstance(found, dict):
            return None
        return {key: str(found.get(key, "")) for key in ("configure", "write", "read")}

    def set_user_password(self, user: str, password: str) -> None:
        """Change a user's password, keeping its tags."""
        current = self._call("GET", f"users/{_q(user)}")
        tags = current.get("tags", "") if isinstance(current, dict) else ""
        if isinstance(tags, list):
            tags = ",".join(tags)
        self._call("PUT", f"users/{_q(user)}", {"password": password, "tags": tags})

    def delete_user(self, user: str) -> bool:
        """Delete a user (its connections are closed); False if it did not exist."""
        return self._delete(f"users/{_q(user)}")

    def user_exists(self, user: str) -> bool:
        """Whether the broker has the user (users span every virtual host)."""
        return self._get_or_none(f"users/{_q(user)}") is not None

    # connections

    def user_connections(self, user: str) -> list[str]:
        """The names of the user's open connections, in every virtual host."""
        listed = self._call("GET", "connections?columns=name,user")
        if not isinstance(listed, list):
            return []
        return [
            str(c["name"]) for c in listed
            if isinstance(c, dict) and c.get("user") == user and "name" in c
        ]  # fmt: skip

    def close_connection(self, name: str, reason: str = "") -> bool:
        """Close one connection, telling the client ``reason``; False if it was already gone."""
        headers = {"X-Reason": reason} if reason else None
        return self._delete(f"connections/{_q(name)}", headers)

    # queues

    def declare_topology(self, vhost: str, queue_type: str = "quorum") -> None:
        """Declare the hub's exchanges and queues, so systems can submit before a hub runs."""
        for exchange, kind in EXCHANGE_TYPES.items():
            body = {"type": kind, "durable": True, "auto_delete": False}
            self._call("PUT", f"exchanges/{_q(vhost)}/{_q(exchange)}", body)
        for spec in hub_queues(queue_type):
            body = {"durable": True, "auto_delete": False, "arguments": spec.arguments}
            self._call("PUT", f"queues/{_q(vhost)}/{_q(spec.name)}", body)
            for exchange, key in spec.bindings:
                path = f"bindings/{_q(vhost)}/e/{_q(exchange)}/q/{_q(spec.name)}"
                self._call("POST", path, {"routing_key": key, "arguments": spec.binding_arguments})

    def declare_inbox(self, vhost: str, system_id: str, queue_type: str = "quorum") -> None:
        """Declare ``axis.inbox.<id>`` and bind it to ``axis.deliver`` with key = system id."""
        for exchange in (DELIVER_EXCHANGE, DEAD_EXCHANGE):
            body = {"type": EXCHANGE_TYPES[exchange], "durable": True, "auto_delete": False}
            self._call("PUT", f"exchanges/{_q(vhost)}/{_q(exchange)}", body)
        queue = inbox_queue_name(system_id)
        body = {"durable": True, "auto_delete": False, "arguments": inbox_arguments(queue_type)}
        self._call("PUT", f"queues/{_q(vhost)}/{_q(queue)}", body)
        binding = f"bindings/{_q(vhost)}/e/{_q(DELIVER_EXCHANGE)}/q/{_q(queue)}"
        self._call("POST", binding, {"routing_key": system_id, "arguments": {}})

    def names(self, kind: str, vhost: str) -> set[str]:
        """The names of the vhost's ``kind`` (``"queues"`` or ``"exchanges"``)."""
        return {str(item["name"]) for item in self.listing(kind, vhost, ("name",))
                if "name" in item}  # fmt: skip

    def listing(self, kind: str, vhost: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
        """Every one of the vhost's ``kind`` (``"queues"``, ``"exchanges"``) with only
        ``columns`` of each, in one request; a vhost that does not exist is a 404
        (``transport.management_api``)."""
        listed = self._call("GET", f"{kind}/{_q(vhost)}?columns={','.join(columns)}")
        if not isinstance(listed, list):
            return []
        return [item for item in listed if isinstance(item, dict)]

    def queue_info(self, vhost: str, name: str) -> dict[str, Any] | None:
        """The API's description of a queue (type, arguments, messages…), None if missing."""
        info = self._get_or_none(f"queues/{_q(vhost)}/{_q(name)}")
        return info if isinstance(info, dict) else None

    # transport

    def _get_or_none(self, path: str) -> Any:
        try:
            return self._call("GET", path)
        except ManagementApiError as error:
            if error.detail.get("status") == 404:
                return None
            raise

    def _delete(self, path: str, headers: dict[str, str] | None = None) -> bool:
        try:
            self._call("DELETE", path, headers=headers)
        except ManagementApiError as error:
            if error.detail.get("status") == 404:
                return False
            raise
        return True

    def _call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", self._auth)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _api_error(method, path, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BrokerUnreachable(f"management API {self.base} unreachable: {reason}") from None
        return json.loads(payload) if payload.strip() else None


def _q(segment: str) -> str:
    """One URL path segment; ``/`` (the default vhost) becomes ``%2F``."""
    return quote(segment, safe="")


def _api_error(method: str, path: str, exc: urllib.error.HTTPError) -> ManagementApiError:
    raw = exc.read()
    try:
        payload = json.loads(raw)
        reason = str(payload.get("reason") or payload.get("error") or raw[:200])
    except (ValueError, AttributeError):
        reason = raw[:200].decode("utf-8", "replace") or str(exc.reason)
    return ManagementApiError(
        f"{method} {unquote(path)} failed with HTTP {exc.code}: {reason}",
        status=exc.code, api_reason=reason,
    )
