"""Rows and values: how the store writes its values to its tables and reads them back.

Times are stored in UTC; SQLite keeps no time zone, so a naive time read back is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Row

from axis.registry import CertInfo
from axis.store_values import CertificateRecord
from routing.values import DeliveryRecord, SubmissionRecord, TraceEvent


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive time (as SQLite returns it) is taken to be UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def certificate_record(row: Row[Any]) -> CertificateRecord:
    return CertificateRecord(
        row.fingerprint, row.system_id, row.pem.encode("ascii"), row.subject,
        utc(row.not_before), utc(row.not_after), utc_or_none(row.revoked_at),
    )  # fmt: skip


def certificate_info(row: Row[Any]) -> CertInfo:
    return CertInfo(row.fingerprint, row.pem.encode("ascii"), utc(row.not_before),
                    utc(row.not_after), row.revoked_at is not None)  # fmt: skip


_SUBMISSION_FIELDS = ("user_id", "message_id", "kind", "sha256", "outcome", "document_id",
                      "sender_organ", "document_organ", "error_code", "reason",
                      "size", "log_index")  # fmt: skip


def submission_values(record: SubmissionRecord) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(record, name) for name in _SUBMISSION_FIELDS}
    values.update(raw=record.raw, receipt=record.receipt, received_at=utc(record.received_at))
    return values


def submission_record(row: Row[Any]) -> SubmissionRecord:
    values = {name: getattr(row, name) for name in _SUBMISSION_FIELDS}
    return SubmissionRecord(id=row.id, raw=bytes(row.raw), receipt=bytes(row.receipt),
                            received_at=utc(row.received_at), **values)  # fmt: skip


def delivery_values(delivery: DeliveryRecord, submission_id: int) -> dict[str, Any]:
    return {"submission_id": submission_id, "system_id": delivery.system_id,
            "organs": ",".join(delivery.organs), "published_at": utc(delivery.published_at),
            "delivered_at": utc_or_none(delivery.delivered_at)}  # fmt: skip


def delivery_record(row: Row[Any]) -> DeliveryRecord:
    return DeliveryRecord(
        submission_id=row.submission_id, system_id=row.system_id,
        organs=tuple(o for o in row.organs.split(",") if o),
        published_at=utc(row.published_at), delivered_at=utc_or_none(row.delivered_at),
    )  # fmt: skip


_EVENT_FIELDS = ("event", "document_organ", "document_id", "message_id", "submitter",
                 "system_id", "organ_id", "status_code", "error_code", "detail")  # fmt: skip


def event_values(event: TraceEvent) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(event, name) for name in _EVENT_FIELDS}
    values["at"] = utc(event.at)
    return values


def event_record(row: Row[Any]) -> TraceEvent:
    values = {name: getattr(row, name) for name in _EVENT_FIELDS}
    return TraceEvent(id=row.id, at=utc(row.at), **values)
