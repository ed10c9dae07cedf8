"""Retries with backoff, and the dead letter that ends a submission the hub gave up on (pure).

A submission whose handling fails for a passing reason (the database is down, the
broker refused a publish) is not returned to ``axis.submit`` at once, which would burn
its delivery limit in a hot loop: the hub publishes a copy to ``axis.retry`` (a
headers exchange) for the queue of the attempt's delay, ``axis.retry.<level>``, whose
message TTL dead-letters it back to ``axis.submit`` with its routing key. After
``max_attempts`` the hub answers the sender with a signed rejected receipt
(``hub.unavailable``) and puts the submission into ``axis.dead`` with reason headers.

The hub publishes these copies as its own broker user; RabbitMQ checks ``user_id``,
so only on a message whose ``user_id`` is the hub's does it believe the headers that
name the submitting system (``axis-origin-user``) and the attempts so far.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routing.contract import (
    H_ATTEMPT,
    H_DEAD_REASON,
    H_LAST_ERROR,
    H_ORIGIN_USER,
    RETRY_EXCHANGE,
    XML,
    WireMessage,
    header_text,
)

# Seconds each retry level waits; attempt n (1-based) waits at the level min(n, len).
RETRY_DELAYS = (1, 2, 4, 8, 16, 32, 60)
H_RETRY_LEVEL = "axis-retry-level"  # selects the retry queue in the headers exchange
_LAST_ERROR_CHARS = 500


def retry_queue_name(level: int) -> str:
    """``axis.retry.<level>`` (1-based)."""
    return f"{RETRY_EXCHANGE}.{level}"


def retry_level(attempt: int) -> int:
    """The retry level (1-based) for the ``attempt``-th failure."""
    return max(1, min(attempt, len(RETRY_DELAYS)))


@dataclass(frozen=True, slots=True)
class Origin:
    """Who submitted a message, how many attempts the hub has made on it, and whether the
    hub itself put this copy back (a retry or an ``axis dead replay``)."""

    user_id: str | None
    attempt: int = 0
    relayed: bool = False


def origin_of(user_id: str | None, headers: Mapping[str, Any], hub_user: str) -> Origin:
    """The submitting system and attempts of a message consumed from ``axis.submit``.

    A message the hub itself published (a retry or a replay: ``user_id`` is the hub's
    broker user, which RabbitMQ checked) names the original system in
    ``axis-origin-user``; any other message is its ``user_id``'s, at attempt 0, whatever
    its headers claim.
    """
    if not hub_user or user_id != hub_user:
        return Origin(user_id, 0)
    origin = header_text(headers.get(H_ORIGIN_USER))
    try:
        attempt = max(0, int(header_text(headers.get(H_ATTEMPT)) or 0))
    except ValueError:
        attempt = 0
    return Origin(origin or None, attempt, relayed=True)


def retry_message(
    *, body: bytes, message_id: str | None, kind: str, origin_user: str, attempt: int,
    last_error: str, hub_user: str,
) -> WireMessage:  # fmt: skip
    """The copy that waits in ``axis.retry.<level>`` before its ``attempt``-th retry,
    published as the hub's broker user ``hub_user``."""
    return _parked(body, message_id, kind, hub_user, {
        H_RETRY_LEVEL: str(retry_level(attempt)), H_ORIGIN_USER: origin_user,
        H_ATTEMPT: str(attempt), H_LAST_ERROR: last_error[:_LAST_ERROR_CHARS]})  # fmt: skip


def dead_letter(
    *, body: bytes, message_id: str | None, kind: str, origin_user: str, attempt: int,
    reason_code: str, last_error: str, hub_user: str,
) -> WireMessage:  # fmt: skip
    """A submission put into ``axis.dead`` by the hub (as ``hub_user``), saying why."""
    return _parked(body, message_id, kind, hub_user, {
        H_ORIGIN_USER: origin_user, H_ATTEMPT: str(attempt), H_DEAD_REASON: reason_code,
        H_LAST_ERROR: last_error[:_LAST_ERROR_CHARS]})  # fmt: skip


def _parked(
    body: bytes, message_id: str | None, kind: str, hub_user: str, headers: dict[str, str]
) -> WireMessage:
    return WireMessage(body=body, content_type=XML, message_id=message_id, type=kind,
                       user_id=hub_user, headers=headers)  # fmt: skip
