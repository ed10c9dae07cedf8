"""Dead letters in ``axis.dead``: what each one says, and its replay into the hub (pure).

Two kinds land in ``axis.dead`` (docs/protocol.md, retries and dead letters):

- dead-lettered by the broker (a reject without requeue, a queue's delivery limit, an
  expiry): RabbitMQ adds ``x-death`` and keeps the original properties, so ``user_id``
  is the submitting system;
- published by the hub after it gave up, as its own broker user, with the headers
  ``axis-origin-user``, ``axis-attempt``, ``axis-dead-reason`` and ``axis-last-error``.

A replay re-injects a letter into ``axis.submit`` as the hub's broker user, naming the
submitting system in ``axis-origin-user`` at attempt 0. Who submitted a letter follows
the hub's own rule (:func:`routing.retry.origin_of`): ``axis-origin-user`` counts only
on a message whose ``user_id`` is the hub's (RabbitMQ checked it), so a system cannot
get a submission replayed in another system's name by forging that header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from routing.contract import (
    H_ATTEMPT,
    H_DEAD_REASON,
    H_LAST_ERROR,
    H_ORIGIN_USER,
    SUBMISSION_KEYS,
    XML,
    WireMessage,
    header_text,
)
from routing.retry import origin_of

X_DEATH = "x-death"
SOURCE_HUB = "hub"  # published by the hub with axis-dead-reason
SOURCE_BROKER = "broker"  # dead-lettered by RabbitMQ, with x-death
SOURCE_UNKNOWN = "unknown"
_LINE_ERROR_CHARS = 80


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What one dead letter says of itself; ``refusal`` is why it cannot be replayed."""

    message_id: str | None
    origin: str | None
    user_id: str | None
    routing_key: str
    type: str | None
    content_type: str | None
    source: str
    reason: str | None
    queue: str | None
    attempts: int | None
    last_error: str | None
    size: int
    sha256: str
    first_death: datetime | None
    refusal: str | None

    def to_json(self) -> dict[str, Any]:
        """The letter as JSON-ready data (``first_death`` in ISO 8601, or null)."""
        return {
            "message_id": self.message_id,
            "origin": self.origin,
            "user_id": self.user_id,
            "routing_key": self.routing_key,
            "type": self.type,
            "source": self.source,
            "reason": self.reason,
            "queue": self.queue,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "size": self.size,
            "sha256": self.sha256,
            "first_death": self.first_death.isoformat() if self.first_death else None,
            "replayable": self.refusal is None,
            "refusal": self.refusal,
        }

    def line(self) -> str:
        """One readable line: id, origin, key, reason, attempts, size, hash, time, error."""
        where = f" in {self.queue}" if self.queue else ""
        attempts = "?" if self.attempts is None else str(self.attempts)
        when = self.first_death.isoformat(timespec="seconds") if self.first_death else "-"
        text = (
            f"{self.message_id or '-'}  from {self.origin or '?'}  {self.routing_key or '-'}  "
            f"{self.reason or '?'}{where} ({self.source})  attempts {attempts}  "
            f"{self.size} B sha256 {self.sha256[:16]}  {when}"
        )
        if self.last_error:
            text += f"  last error: {_shorten(self.last_error, _LINE_ERROR_CHARS)}"
        if self.refusal:
            text += "  [not replayable]"
        return text


def read_dead_letter(
    body: bytes,
    *,
    routing_key: str | None,
    message_id: str | None,
    user_id: str | None,
    type: str | None,
    content_type: str | None,
    headers: Mapping[str, Any] | None,
    hub_user: str,
) -> DeadLetter:
    """The :class:`DeadLetter` of one message taken from ``axis.dead``."""
    headers = headers or {}
    origin = origin_of(user_id, headers, hub_user).user_id
    death = _latest_death(headers)
    hub_reason = header_text(headers.get(H_DEAD_REASON)) or None
    reason, queue = _reason(hub_reason, death)
    key = routing_key or ""
    return DeadLetter(
        message_id=message_id or None,
        origin=origin,
        user_id=user_id or None,
        routing_key=key,
        type=type or None,
        content_type=content_type or None,
        source=_source(hub_reason, death),
        reason=reason,
        queue=queue,
        attempts=_attempts(headers, death),
        last_error=header_text(headers.get(H_LAST_ERROR)) or None,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        first_death=_first_death_time(headers),
        refusal=replay_refusal(key, message_id, origin),
    )


def replay_refusal(routing_key: str, message_id: str | None, origin: str | None) -> str | None:
    """Why a letter cannot go back to the hub, or None when it can."""
    if routing_key not in SUBMISSION_KEYS:
        return (
            f"routing key {routing_key!r} is not a submission's "
            f"({' or '.join(SUBMISSION_KEYS)}): it did not come from axis.submit"
        )
    if not message_id:
        return "it has no message_id (consignment id)"
    if not origin:
        return "it names no submitting system (no user_id, or a hub copy without axis-origin-user)"
    return None


def replay_message(body: bytes, letter: DeadLetter, hub_user: str) -> WireMessage:
    """The copy of a replayable ``letter`` for ``axis.submit``, published as ``hub_user``.

    Routing key (not part of the message): the letter's own, ``letter.routing_key``.
    """
    if letter.refusal is not None or letter.origin is None:
        raise ValueError(f"dead letter {letter.message_id!r} is not replayable: {letter.refusal}")
    return WireMessage(
        body=body,
        content_type=letter.content_type or XML,
        message_id=letter.message_id,
        type=letter.type,
        user_id=hub_user,
        persistent=True,
        headers={H_ORIGIN_USER: letter.origin, H_ATTEMPT: "0"},
    )


def _source(hub_reason: str | None, death: Mapping[str, Any] | None) -> str:
    if hub_reason:
        return SOURCE_HUB
    return SOURCE_BROKER if death else SOURCE_UNKNOWN


def _reason(
    hub_reason: str | None, death: Mapping[str, Any] | None
) -> tuple[str | None, str | None]:
    """The reason and the queue it died in: the hub's code, else ``x-death``'s reason."""
    if hub_reason or not death:
        return hub_reason, None
    return header_text(death.get("reason")) or None, header_text(death.get("queue")) or None


def _deaths(headers: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``x-death`` tables, most recent first (as RabbitMQ orders them)."""
    value = headers.get(X_DEATH)
    if not isinstance(value, list | tuple):
        return []
    return [entry for entry in value if isinstance(entry, Mapping)]


def _latest_death(headers: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``x-death`` entry that brought the message here (the most recent one)."""
    deaths = _deaths(headers)
    return deaths[0] if deaths else None


def _attempts(headers: Mapping[str, Any], death: Mapping[str, Any] | None) -> int | None:
    """``axis-attempt`` when the hub set it, else the ``x-death`` count."""
    for value in (headers.get(H_ATTEMPT), death.get("count") if death else None):
        try:
            return max(0, int(header_text(value)))
        except ValueError:
            continue
    return None


def _first_death_time(headers: Mapping[str, Any]) -> datetime | None:
    times = [e["time"] for e in _deaths(headers) if isinstance(e.get("time"), datetime)]
    return min(times) if times else None


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
