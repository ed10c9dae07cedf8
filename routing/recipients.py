"""Where one document stands at each of its recipient organs, shaped from its trace (pure).

The hub answers the ``recipients`` query (docs/protocol.md#queries) with one row per
recipient organ: the system serving it, when the hub published the copy to that
system's inbox, when the system confirmed it (its first status 01, which earns the
sender the hub's signed ``delivered`` receipt), and every status the organ sent about
the document, the latest one in its own fields. The receipt ids name the hub's signed
receipts that prove each step: the ``delivered`` receipt, and for each status the
receipt the hub gave the recipient for that status package (its evidence log holds
both).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from routing.contract import status_names, utc_text
from routing.values import DocumentParties, TraceEvent


@dataclass(frozen=True, slots=True)
class StatusStep:
    """One status a recipient organ sent about the document, as the hub accepted it."""

    code: str
    at: datetime
    message_id: str  # the status package's consignment id
    receipt_id: str  # the hub's receipt for that consignment


@dataclass(frozen=True, slots=True)
class RecipientRow:
    """One recipient organ of a document and how far the document got there."""

    organ_id: str
    system_id: str
    published_at: datetime | None = None
    delivered_at: datetime | None = None
    delivered_receipt: str | None = None
    statuses: tuple[StatusStep, ...] = ()

    @property
    def latest(self) -> StatusStep | None:
        """The organ's most recent status, if it sent any."""
        return self.statuses[-1] if self.statuses else None


def recipient_rows(parties: DocumentParties, events: Iterable[TraceEvent]) -> list[RecipientRow]:
    """One row per recipient organ of ``parties``, sorted by organ id, from the document's
    trace ``events`` (in time order).

    A copy is "published" by a ``published`` event without a status code (a status
    routed back to the sender has one); "delivered" by the ``delivered`` event of the
    system serving the organ; a status counts when its ``status`` event comes from a
    system the document was delivered to, for an organ that system received it for.
    """
    serving: dict[str, str] = {}
    for system_id, organs in parties.recipients.items():
        for organ_id in organs:
            serving.setdefault(organ_id, system_id)
    published: dict[str, datetime] = {}
    delivered: dict[str, tuple[datetime | None, str]] = {}
    statuses: dict[str, list[StatusStep]] = {organ_id: [] for organ_id in serving}
    for e in events:
        organs = _organs_of(e, parties)
        if e.event == "published" and not e.status_code:
            for organ_id in organs:
                published.setdefault(organ_id, e.at)
        elif e.event == "delivered":
            for organ_id in organs:
                delivered.setdefault(organ_id, (e.at, e.detail or ""))
        elif e.event == "status" and e.status_code and e.organ_id in organs:
            statuses[e.organ_id].append(StatusStep(e.status_code, e.at, e.message_id,
                                                   e.detail or ""))  # fmt: skip
    rows = []
    for organ_id, system_id in sorted(serving.items()):
        delivered_at, receipt = delivered.get(organ_id, (None, ""))
        rows.append(RecipientRow(organ_id, system_id, published.get(organ_id), delivered_at,
                                 receipt or None, tuple(statuses[organ_id])))  # fmt: skip
    return rows


def _organs_of(event: TraceEvent, parties: DocumentParties) -> tuple[str, ...]:
    """The recipient organs ``event`` is about: those of its system that it names (all
    the system's organs when it names none)."""
    received = parties.recipients.get(event.system_id, ())
    named = [o for o in (event.organ_id or "").split(",") if o]
    return tuple(o for o in named if o in received) if named else received


def recipients_json(parties: DocumentParties, rows: Iterable[RecipientRow]) -> dict[str, Any]:
    """The ``recipients`` answer: the document and one JSON object per row."""
    return {
        "document_id": parties.document_id,
        "sender_organ": parties.sender_organ,
        "sender_system": parties.sender_system,
        "message_id": parties.message_id,
        "recipients": [_row_json(row) for row in rows],
    }


def _row_json(row: RecipientRow) -> dict[str, Any]:
    latest = row.latest
    item: dict[str, Any] = {
        "organ_id": row.organ_id,
        "system_id": row.system_id,
        "published_at": _time(row.published_at),
        "delivered_at": _time(row.delivered_at),
        "delivered_receipt": row.delivered_receipt,
        "status_code": latest.code if latest else None,
        "status_vi": None,
        "status_en": None,
        "status_at": _time(latest.at) if latest else None,
        "status_receipt": latest.receipt_id if latest else None,
        "statuses": [{"status_code": s.code, "at": utc_text(s.at), "message_id": s.message_id,
                      "receipt_id": s.receipt_id} for s in row.statuses],
    }  # fmt: skip
    if latest:
        item.update(status_names(latest.code))
    return item


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else utc_text(moment)
