"""Typed, immutable models of edXML (QCVN 102:2016) packages.

A :class:`DocumentPackage` carries a document (``edoc``); a :class:`StatusPackage`
reports what happened to one (``status``). Free text is ``str`` kept verbatim
("" when absent); dates and timestamps with a fixed wire format are ``date`` and
naive ``datetime`` (the wire carries Vietnam local time, no offset). Field names
follow the wire element names in snake_case; :class:`BusinessInfo` is the wire's
``Bussiness`` (spelled so in the standard).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum
from typing import ClassVar, Literal

from envelopes.status_codes import StatusCode

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


@dataclass(frozen=True, slots=True)
class Organization:
    """An agency as named in ``From`` or ``To``."""

    organ_id: str
    organ_name: str = ""
    organization_in_charge: str = ""
    organ_add: str = ""
    email: str = ""
    telephone: str = ""
    fax: str = ""
    website: str = ""


@dataclass(frozen=True, slots=True)
class Code:
    """The document's number and notation (``7816`` / ``VPCP-TTĐT``)."""

    code_number: str
    code_notation: str = ""


@dataclass(frozen=True, slots=True)
class PromulgationInfo:
    """Where and when the document was issued."""

    promulgation_date: date
    place: str = ""


@dataclass(frozen=True, slots=True)
class DocumentType:
    """``Type`` (1 legal, 2 administrative), ``TypeDetail`` and the human ``TypeName``."""

    type: int
    type_name: str = ""
    type_detail: int | None = None


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """Who signed the paper original."""

    competence: str = ""
    position: str = ""
    full_name: str = ""


@dataclass(frozen=True, slots=True)
class OtherInfo:
    """``OtherInfo``: priority (0 normal … 4 most urgent) and bookkeeping counts."""

    priority: int = 0
    sphere_of_promulgation: str = ""
    typer_notation: str = ""
    promulgation_amount: int | None = None
    page_amount: int | None = None
    direction: bool | None = None
    appendixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResponseFor:
    """The document a package answers; vendor packages may leave every field empty."""

    organ_id: str = ""
    code: str = ""
    promulgation_date: date | None = None
    document_id: str = ""


@dataclass(frozen=True, slots=True)
class StaffInfo:
    """The clerk who handled the package."""

    department: str = ""
    staff: str = ""
    mobile: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """One hop: which organ handled the package, and when."""

    organ_id: str
    timestamp: datetime


class BusinessDocType(IntEnum):
    """``BussinessDocType``: what the package does to the document."""

    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3


@dataclass(frozen=True, slots=True)
class Receiver:
    """A recipient named in an update (``ReceiverType`` as on the wire)."""

    organ_id: str
    receiver_type: int | None = None


@dataclass(frozen=True, slots=True)
class BusinessDocumentInfo:
    """``BussinessDocumentInfo`` of an update: what changed and for whom."""

    document_info: int | None = None
    document_receiver: int | None = None
    receivers: tuple[Receiver, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplacementInfo:
    """One replaced document and the organs that received it."""

    document_id: str
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BusinessInfo:
    """The ``Bussiness`` block of ``TraceHeaderList``."""

    doc_type: BusinessDocType = BusinessDocType.NEW
    reason: str = ""
    paper: int | None = None
    document_id: str = ""
    staff_info: StaffInfo | None = None
    document_info: BusinessDocumentInfo | None = None
    replacements: tuple[ReplacementInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attached file.

    ``data`` is the original file. ``zipped_payload`` holds the exact ZIP bytes
    sent on the wire when the Axis builder zipped the file (``None`` when the
    wire carries ``data`` itself), so a package can be written back byte for byte.
    ``sha256`` is the hex SHA-256 of ``data``.
    """

    content_id: str
    attachment_name: str
    data: bytes = field(repr=False)
    description: str = ""
    content_type: str = "application/octet-stream"
    zipped_payload: bytes | None = field(default=None, repr=False)
    sha256: str = field(init=False, compare=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def zipped(self) -> bool:
        """Whether the wire payload is the Axis builder's ZIP of ``data``."""
        return self.zipped_payload is not None

    @property
    def payload(self) -> bytes:
        """The bytes that are base64-encoded into ``ContentTransferEncoded``."""
        return self.zipped_payload if self.zipped_payload is not None else self.data

    @property
    def size(self) -> int:
        """Size of the original file in bytes."""
        return len(self.data)


@dataclass(frozen=True, slots=True)
class DocumentPackage:
    """A document package (routing key ``edoc``)."""

    sender: Organization
    recipients: tuple[Organization, ...]
    document_id: str
    code: Code
    promulgation_info: PromulgationInfo
    document_type: DocumentType
    subject: str
    content: str = ""
    signer_info: SignerInfo | None = None
    due_date: date | None = None
    to_places: tuple[str, ...] = ()
    other_info: OtherInfo | None = None
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: int | None = None
    trace_headers: tuple[TraceHeader, ...] = ()
    business: BusinessInfo | None = None
    attachments: tuple[Attachment, ...] = ()

    kind: ClassVar[Literal["edoc"]] = "edoc"

    @property
    def priority(self) -> int:
        """``OtherInfo/Priority`` (0 when the package has no ``OtherInfo``)."""
        return self.other_info.priority if self.other_info is not None else 0


@dataclass(frozen=True, slots=True)
class StatusPackage:
    """A status package (routing key ``status``) about the document ``document_id``."""

    sender: Organization
    response_for: ResponseFor
    status_code: StatusCode
    timestamp: datetime
    description: str = ""
    staff_info: StaffInfo | None = None

    kind: ClassVar[Literal["status"]] = "status"

    @property
    def document_id(self) -> str:
        """``ResponseFor/DocumentId``: the document this status is about."""
        return self.response_for.document_id


Package = DocumentPackage | StatusPackage
