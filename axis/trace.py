"""A document's timeline, from the hub's trace events (pure).

The hub answers trace queries with :func:`timeline_json`; the CLI renders the
same JSON with :func:`render_timeline`, whether it came over AMQP or, for an
operator, straight from the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from envelopes.status_codes import StatusCode


class EventLike(Protocol):
    """What a timeline reads of a trace event (``axis.store.TraceEvent`` has it)."""

    @property
    def event(self) -> str: ...
    @property
    def document_id(self) -> str | None: ...
    @property
    def message_id(self) -> str: ...
    @property
    def system_id(self) -> str: ...
    @property
    def organ_id(self) -> str | None: ...
    @property
    def status_code(self) -> str | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def detail(self) -> str | None: ...
    @property
    def at(self) -> datetime: ...


def timeline_json(events: Sequence[EventLike]) -> dict[str, Any]:
    """``{"document_id", "message_ids", "events": [...]}`` in time order."""
    ordered = list(events)
    return {
        "document_id": next((e.document_id for e in ordered if e.document_id), None),
        "message_ids": sorted({e.message_id for e in ordered if e.message_id}),
        "events": [_event_json(e) for e in ordered],
    }


def _event_json(e: EventLike) -> dict[str, Any]:
    item: dict[str, Any] = {
        "at": e.at.isoformat(),
        "event": e.event,
        "system": e.system_id,
        "organ": e.organ_id,
        "message_id": e.message_id,
    }
    if e.status_code:
        item["status_code"] = e.status_code
        try:
            code = StatusCode(e.status_code)
            item["status_vi"], item["status_en"] = code.vi, code.en
        except ValueError:
            pass
    if e.error_code:
        item["error_code"] = e.error_code
        item["reason"] = e.detail
    return item


_VERBS = {
    "submitted": "submitted by",
    "accepted": "accepted by the hub from",
    "rejected": "REJECTED by the hub, from",
    "published": "routed to",
    "delivered": "delivered (status 01) at",
    "status": "status from",
}


def render_timeline(timeline: dict[str, Any]) -> list[str]:
    """Human lines, one per event."""
    lines = [
        f"Document {timeline.get('document_id') or '(no document id)'}"
        f"  consignment(s): {', '.join(timeline.get('message_ids', [])) or '-'}"
    ]
    for item in timeline.get("events", []):
        who = item.get("organ") or ""
        system = item.get("system") or ""
        party = f"{who} [{system}]" if who and system and who != system else (who or system)
        line = f"  {item['at']}  {_VERBS.get(item['event'], item['event'])} {party}".rstrip()
        if "status_code" in item and item["event"] in ("status", "delivered", "published"):
            line += (
                f"  — {item['status_code']} {item.get('status_vi', '')}"
                f" ({item.get('status_en', '')})"
            )
        if "error_code" in item:
            line += f"  — {item['error_code']}: {item.get('reason') or ''}"
        lines.append(line)
    return lines
