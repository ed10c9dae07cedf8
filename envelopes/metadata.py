"""A document package from plain metadata (a dict loaded from TOML or JSON).

The accepted keys are documented in ``docs/edxml.md``. Unknown keys, missing
required keys and values of the wrong type are refused with
:class:`InvalidMetadata` whose ``path`` names the key (``to[2].organ_id``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from envelopes.errors import InvalidMetadata
from envelopes.ids import is_organ_id, new_document_id
from envelopes.model import (
    Attachment,
    BusinessDocType,
    BusinessDocumentInfo,
    BusinessInfo,
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    TraceHeader,
)

_ORG_KEYS = ("organ_id", "organ_name", "organization_in_charge", "organ_add", "email",
             "telephone", "fax", "website")
_DOC_TYPES = {t.name.lower(): t for t in BusinessDocType}


class _Table:
    """Typed reads from one metadata table, remembering which keys were used."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidMetadata(f"{where or 'the metadata'} must be a table", path=where or None)
        self.data, self.where, self.used = data, where, set[str]()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, required: bool = False) -> Any:
        self.used.add(key)
        value = self.data.get(key)
        if value is None and required:
            raise InvalidMetadata(f"missing required key {self.path(key)!r}", path=self.path(key))
        return value

    def text(self, key: str, required: bool = False, numbers: bool = False) -> str:
        value = self.get(key, required)
        if value is None:
            return ""
        if numbers and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self.wrong(key, "a string")
        if required and not value.strip():
            raise InvalidMetadata(f"{self.path(key)!r} must not be empty", path=self.path(key))
        return value

    def integer(self, key: str, low: int = 0, high: int = 2**31 - 1) -> int | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.wrong(key, f"an integer from {low} to {high}")
        return value

    def day(self, key: str, required: bool = False) -> date | None:
        value = self.get(key, required)
        if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
            return value
        if isinstance(value, str):
            for layout in ("%Y/%m/%d", "%Y-%m-%d"):
                try:
                    return datetime.strptime(value.strip(), layout).date()
                except ValueError:
                    continue
        raise self.wrong(key, "a date (yyyy/MM/dd or yyyy-MM-dd)")

    def moment(self, key: str) -> datetime:
        value = self.get(key, required=True)
        if isinstance(value, datetime):
            return value
        if isinstance(value, str):
            for layout in ("%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
                try:
                    return datetime.strptime(value.strip(), layout)
                except ValueError:
                    continue
        raise self.wrong(key, "a timestamp (yyyy/MM/dd HH:mm:ss)")

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.wrong(key, "a list of strings")
        return tuple(value)

    def tables(self, key: str, required: bool = False) -> list[_Table]:
        value = self.get(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.wrong(key, "a list of tables")
        return [_Table(item, f"{self.path(key)}[{i}]") for i, item in enumerate(value, 1)]

    def table(self, key: str) -> _Table | None:
        value = self.get(key)
        return None if value is None else _Table(value, self.path(key))

    def organ_id(self, key: str, required: bool = True) -> str:
        value = " ".join(self.text(key, required).split())
        if (value or required) and not is_organ_id(value):
            raise InvalidMetadata(f"{self.path(key)!r}: {value!r} is not an organ identifier "
                                  "(000.00.00.G22, or A-Z, 0-9 and dots, at most 35)",
                                  path=self.path(key))
        return value

    def done(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.used)
        if unknown:
            raise InvalidMetadata(f"unknown key {self.path(unknown[0])!r}",
                                  path=self.path(unknown[0]))

    def wrong(self, key: str, expected: str) -> InvalidMetadata:
        return InvalidMetadata(f"{self.path(key)!r} must be {expected}, not "
                               f"{self.data.get(key)!r}", path=self.path(key))


def document_from_metadata(meta: Mapping[str, Any],
                           attachments: Sequence[Attachment] = ()) -> DocumentPackage:
    """Build a :class:`DocumentPackage` from plain metadata; :class:`InvalidMetadata` if unfit."""
    m = _Table(meta, "")
    sender = _organization(m, "from")
    recipients = tuple(_organization_table(t) for t in m.tables("to", required=True))
    if not recipients:
        raise InvalidMetadata("'to' must name at least one recipient", path="to")
    ids = [r.organ_id for r in recipients]
    if len(set(ids)) != len(ids):
        raise InvalidMetadata("'to' names the same recipient twice", path="to")
    code = _code(m)
    issued = m.day("promulgation_date", required=True)
    assert issued is not None
    document_id = " ".join(m.text("document_id").split()) or new_document_id(
        sender.organ_id, issued, code.code_number, code.code_notation)
    package = DocumentPackage(
        sender=sender, recipients=recipients, document_id=document_id, code=code,
        promulgation_info=PromulgationInfo(issued, m.text("place")),
        document_type=DocumentType(_or(m.integer("type"), 1), m.text("type_name"),
                                   m.integer("type_detail")),
        subject=m.text("subject", required=True), content=m.text("content"),
        signer_info=_signer(m.table("signer")), due_date=m.day("due_date"),
        to_places=m.texts("to_places"), other_info=_other_info(m),
        response_for=tuple(_response_for(t) for t in m.tables("response_for")),
        steering_type=m.integer("steering_type"),
        trace_headers=tuple(_trace(t) for t in m.tables("trace")),
        business=_business(m.table("business")), attachments=tuple(attachments),
    )
    m.done()
    cids = [a.content_id for a in package.attachments]
    if len(set(cids)) != len(cids):
        raise InvalidMetadata("two attachments share a content id", path="attachments")
    return package


def _organization(m: _Table, key: str) -> Organization:
    value = m.get(key, required=True)
    if isinstance(value, str):
        return Organization(m.organ_id(key))
    return _organization_table(_Table(value, m.path(key)))


def _organization_table(t: _Table) -> Organization:
    organ = Organization(t.organ_id("organ_id"), *(t.text(k) for k in _ORG_KEYS[1:]))
    t.done()
    return organ


def _code(m: _Table) -> Code:
    value = m.get("code", required=True)
    if isinstance(value, str):
        number, _, notation = value.partition("/")
        if not number.strip():
            raise m.wrong("code", "'number/notation' or a table {number, notation}")
        return Code(number.strip(), notation.strip())
    t = _Table(value, "code")
    code = Code(t.text("number", required=True, numbers=True), t.text("notation"))
    t.done()
    return code


def _signer(t: _Table | None) -> SignerInfo | None:
    if t is None:
        return None
    signer = SignerInfo(t.text("competence"), t.text("position"), t.text("full_name"))
    t.done()
    return signer


def _other_info(m: _Table) -> OtherInfo:
    direction = m.get("direction")
    if direction is not None and not isinstance(direction, bool):
        raise m.wrong("direction", "true or false")
    return OtherInfo(
        priority=_or(m.integer("priority", 0, 4), 0),
        sphere_of_promulgation=m.text("sphere_of_promulgation"),
        typer_notation=m.text("typer_notation"),
        promulgation_amount=m.integer("promulgation_amount"),
        page_amount=m.integer("page_amount"),
        direction=direction,
        appendixes=m.texts("appendixes"),
    )


def _response_for(t: _Table) -> ResponseFor:
    answered = ResponseFor(t.organ_id("organ_id", required=False), t.text("code"),
                           t.day("promulgation_date"), " ".join(t.text("document_id").split()))
    t.done()
    return answered


def _trace(t: _Table) -> TraceHeader:
    hop = TraceHeader(t.organ_id("organ_id"), t.moment("timestamp").replace(microsecond=0))
    t.done()
    return hop


def _staff(t: _Table | None) -> StaffInfo | None:
    if t is None:
        return None
    staff = StaffInfo(t.text("department"), t.text("staff"), t.text("mobile"), t.text("email"))
    t.done()
    return staff


def _business(t: _Table | None) -> BusinessInfo | None:
    if t is None:
        return None
    raw_type = t.get("doc_type")
    if raw_type is None:
        doc_type = BusinessDocType.NEW
    elif isinstance(raw_type, str) and raw_type.lower() in _DOC_TYPES:
        doc_type = _DOC_TYPES[raw_type.lower()]
    else:
        doc_type = BusinessDocType(_or(t.integer("doc_type", 0, 3), 0))
    info = BusinessInfo(
        doc_type=doc_type, reason=t.text("reason"), paper=t.integer("paper"),
        document_id=" ".join(t.text("document_id").split()), staff_info=_staff(t.table("staff")),
        document_info=_document_info(t.table("document_info")),
        replacements=tuple(_replacement(r) for r in t.tables("replacements")),
    )
    t.done()
    return info


def _document_info(t: _Table | None) -> BusinessDocumentInfo | None:
    if t is None:
        return None
    receivers = []
    for r in t.tables("receivers"):
        receivers.append(Receiver(r.organ_id("organ_id"), r.integer("receiver_type")))
        r.done()
    info = BusinessDocumentInfo(t.integer("document_info"), t.integer("document_receiver"),
                                tuple(receivers))
    t.done()
    return info


def _replacement(t: _Table) -> ReplacementInfo:
    organs = t.texts("organ_ids")
    for i, organ in enumerate(organs, 1):
        if not is_organ_id(organ):
            raise InvalidMetadata(f"{t.path('organ_ids')}[{i}]: {organ!r} is not an organ "
                                  "identifier", path=f"{t.path('organ_ids')}[{i}]")
    replaced = ReplacementInfo(" ".join(t.text("document_id", required=True).split()), organs)
    t.done()
    return replaced


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
