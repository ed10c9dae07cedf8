"""The outcome of an offline audit: each :class:`Check` and the :class:`AuditReport`,
with its JSON form (pure; docs/evidence.md). :mod:`axis.evidence.audit` runs the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from axis.evidence.consistency import head_data
from axis.evidence.heads import VerifiedHead
from axis.evidence.timestamps import VerifiedTimestamp
from axis.receipts import VerifiedReceipt, describe
from routing.contract import utc_text


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome: ``code`` is the error code of its first failure (None when it
    passed, or was not checked because a check it relies on failed)."""

    check: str
    ok: bool
    code: str | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """``{"check", "ok", "code"?, "detail"}``."""
        code = {} if self.code is None else {"code": self.code}
        return {"check": self.check, "ok": self.ok, **code, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What an audit found: the checks in order, the verified head, time-stamp and
    receipts (``receipt_indexes[i]`` is the log index of ``receipts[i]``), and ``facts``,
    plain sentences of what was proven."""

    checks: tuple[Check, ...]
    subject: dict[str, str | None] = field(default_factory=dict)
    head: VerifiedHead | None = None
    timestamp: VerifiedTimestamp | None = None
    receipts: tuple[VerifiedReceipt, ...] = ()
    receipt_indexes: tuple[int, ...] = ()
    facts: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(check.ok for check in self.checks)

    @property
    def error(self) -> Check | None:
        """The first failed check that has a code."""
        return next((c for c in self.checks if not c.ok and c.code is not None), None)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (docs/evidence.md), with ``error`` when not ok."""
        data: dict[str, Any] = {
            "ok": self.ok,
            "subject": dict(self.subject),
            "checks": [check.to_dict() for check in self.checks],
            "head": None if self.head is None else head_data(self.head),
            "timestamp": None if self.timestamp is None else {
                "gen_time": utc_text(self.timestamp.gen_time),
                "tsa": self.timestamp.tsa_subject,
                "anchored": self.timestamp.anchored,
            },
            "receipts": [{"index": i, **_receipt_data(v)}
                         for i, v in zip(self.receipt_indexes, self.receipts, strict=True)],
            "facts": list(self.facts),
        }  # fmt: skip
        if (error := self.error) is not None:
            data["error"] = {"code": error.code, "reason": error.detail, "check": error.check}
        return data


def _receipt_data(verified: VerifiedReceipt) -> dict[str, Any]:
    r = verified.receipt
    return {**{f.name: getattr(r, f.name) for f in fields(r)}, "recipients": list(r.recipients),
            "hub_time": utc_text(r.hub_time), "statement": describe(r)}
