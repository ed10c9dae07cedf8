"""A document's timeline in words (pure).

The hub answers trace queries with :func:`routing.contract.timeline_json`; the CLI
renders the same JSON with :func:`render_timeline`, whether it came over AMQP or,
for an operator, straight from the store.
"""

from __future__ import annotations

from typing import Any

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
