"""Writing canonical edXML: the inverse of :mod:`envelopes.parser`.

Output: UTF-8 with an XML declaration, the edXML namespace as the default
namespace (no prefixes), the standard's element order, no ``Signature`` (the
signing core adds it). Pure: no clock; every timestamp is an argument.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

from lxml import etree

from envelopes.attachments import encode_base64, zip_file
from envelopes.errors import InvalidMetadata, SchemaViolation
from envelopes.ids import date_text as _date_text
from envelopes.ids import new_document_id
from envelopes.metadata import document_from_metadata
from envelopes.model import (
    NS,
    Attachment,
    BusinessInfo,
    DocumentPackage,
    Organization,
    OtherInfo,
    Package,
    ResponseFor,
    StaffInfo,
    StatusPackage,
    TraceHeader,
)
from envelopes.schema import validate_tree
from envelopes.status_codes import StatusCode

__all__ = [
    "attachment_from_bytes",
    "build_package",
    "document_from_metadata",
    "new_document_id",
    "status_package",
]

Element = etree._Element
# The wire carries Vietnam local time without an offset.
VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")
_NSMAP: Any = {None: NS}  # the edXML namespace as the default namespace: no prefixes
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def build_package(package: Package) -> bytes:
    """Canonical edXML bytes for ``package``; :class:`InvalidMetadata` if it cannot be valid."""
    try:
        root = _status(package) if isinstance(package, StatusPackage) else _document(package)
    except ValueError as exc:  # lxml refuses characters XML cannot carry
        raise InvalidMetadata(f"the package cannot be written as XML: {exc}") from None
    try:
        validate_tree(root)
    except SchemaViolation as exc:
        raise InvalidMetadata(f"the package would not be valid edXML: {exc.reason}",
                              path=exc.path) from None
    body = etree.tostring(root, xml_declaration=False, encoding="UTF-8", pretty_print=True)
    return _DECLARATION + body


def attachment_from_bytes(name: str, data: bytes, *, description: str = "",
                          content_type: str | None = None,
                          content_id: str | None = None) -> Attachment:
    """An attachment whose wire payload is a deterministic ZIP of ``data``.

    ``content_type`` is the wire ``ContentType`` (default ``application/zip``, as
    the payload is a ZIP); ``content_id`` defaults to ``cid:`` plus a hash of the
    name and the file's SHA-256, so the same file under the same name gets the
    same id.
    """
    if not name.strip():
        raise InvalidMetadata("an attachment needs a name")
    digest = hashlib.sha256(data).hexdigest()
    if content_id is None:
        content_id = "cid:" + hashlib.sha256(f"{name}\n{digest}".encode()).hexdigest()[:32]
    return Attachment(content_id=content_id, attachment_name=name, data=data,
                      description=description, content_type=content_type or "application/zip",
                      zipped_payload=zip_file(name, data))


def status_package(sender: Organization, response_for: ResponseFor | DocumentPackage | str,
                   code: StatusCode, description: str, timestamp: datetime,
                   staff: StaffInfo | None = None) -> StatusPackage:
    """A status package about a document (given as its id, a ``ResponseFor`` or the package).

    An aware ``timestamp`` is converted to Vietnam time; seconds are the wire's resolution.
    """
    if isinstance(response_for, str):
        response_for = ResponseFor(document_id=response_for)
    elif isinstance(response_for, DocumentPackage):
        response_for = response_for_document(response_for)
    if not response_for.document_id.strip():
        raise InvalidMetadata("a status package must name the document it is about")
    return StatusPackage(sender=sender, response_for=response_for, status_code=StatusCode(code),
                         timestamp=wire_datetime(timestamp), description=description,
                         staff_info=staff)


def response_for_document(document: DocumentPackage) -> ResponseFor:
    """The ``ResponseFor`` that answers ``document``."""
    code = document.code
    return ResponseFor(
        organ_id=document.sender.organ_id,
        code=f"{code.code_number}/{code.code_notation}" if code.code_notation else code.code_number,
        promulgation_date=document.promulgation_info.promulgation_date,
        document_id=document.document_id,
    )


def wire_datetime(value: datetime) -> datetime:
    """``value`` as the wire carries it: naive Vietnam local time, whole seconds."""
    if value.tzinfo is not None:
        value = value.astimezone(VIETNAM_TIME).replace(tzinfo=None)
    return value.replace(microsecond=0)


# -- trees -------------------------------------------------------------------------------


def _document(p: DocumentPackage) -> Element:
    root = etree.Element(_q("edXML"), nsmap=_NSMAP)
    envelope = _sub(root, "edXMLEnvelope")
    header = _sub(envelope, "edXMLHeader")
    mh = _sub(header, "MessageHeader")
    _organization(_sub(mh, "From"), p.sender)
    for recipient in p.recipients:
        _organization(_sub(mh, "To"), recipient)
    code = _sub(mh, "Code")
    _leaf(code, "CodeNumber", p.code.code_number)
    _leaf(code, "CodeNotation", p.code.code_notation)
    info = _sub(mh, "PromulgationInfo")
    _leaf(info, "Place", p.promulgation_info.place)
    _leaf(info, "PromulgationDate", _date_text(p.promulgation_info.promulgation_date))
    kind = _sub(mh, "DocumentType")
    _leaf(kind, "Type", str(p.document_type.type))
    _optional(kind, "TypeDetail", p.document_type.type_detail)
    _leaf(kind, "TypeName", p.document_type.type_name)
    _leaf(mh, "Subject", p.subject)
    _leaf(mh, "Content", p.content)
    if p.signer_info is not None:
        signer = _sub(mh, "SignerInfo")
        _leaf(signer, "Competence", p.signer_info.competence)
        _leaf(signer, "Position", p.signer_info.position)
        _leaf(signer, "FullName", p.signer_info.full_name)
    if p.due_date is not None:
        _leaf(mh, "DueDate", _date_text(p.due_date))
    if p.to_places:
        places = _sub(mh, "ToPlaces")
        for place in p.to_places:
            _leaf(places, "Place", place)
    if p.other_info is not None:
        _other_info(_sub(mh, "OtherInfo"), p.other_info)
    for answered in p.response_for:
        _response_for(_sub(mh, "ResponseFor"), answered)
    _optional(mh, "SteeringType", p.steering_type)
    _leaf(mh, "DocumentId", _tok(p.document_id))
    if p.trace_headers or p.business is not None:
        _trace_list(_sub(header, "TraceHeaderList"), p.trace_headers, p.business)
    _attachments(root, _sub(_sub(envelope, "edXMLBody"), "edXMLManifest", version="1.0"),
                 p.attachments)
    return root


def _status(p: StatusPackage) -> Element:
    root = etree.Element(_q("edXML"), nsmap=_NSMAP)
    mh = _sub(_sub(_sub(root, "edXMLEnvelope"), "edXMLHeader"), "MessageHeader")
    _organization(_sub(mh, "From"), p.sender)
    _response_for(_sub(mh, "ResponseFor"), p.response_for)
    if p.staff_info is not None:
        _staff(_sub(mh, "StaffInfo"), p.staff_info)
    _leaf(mh, "StatusCode", StatusCode(p.status_code).value)
    _leaf(mh, "Description", p.description)
    _leaf(mh, "Timestamp", _timestamp_text(p.timestamp))
    return root


def _organization(el: Element, org: Organization) -> None:
    _leaf(el, "OrganId", _tok(org.organ_id))
    _leaf(el, "OrganizationInCharge", org.organization_in_charge)
    _leaf(el, "OrganName", org.organ_name)
    _leaf(el, "OrganAdd", org.organ_add)
    _leaf(el, "Email", org.email)
    _leaf(el, "Telephone", org.telephone)
    _leaf(el, "Fax", org.fax)
    _leaf(el, "Website", org.website)


def _other_info(el: Element, info: OtherInfo) -> None:
    _leaf(el, "Priority", str(info.priority))
    _leaf(el, "SphereOfPromulgation", info.sphere_of_promulgation)
    _leaf(el, "TyperNotation", info.typer_notation)
    _optional(el, "PromulgationAmount", info.promulgation_amount)
    _optional(el, "PageAmount", info.page_amount)
    if info.direction is not None:
        _leaf(el, "Direction", "true" if info.direction else "false")
    if info.appendixes:
        appendixes = _sub(el, "Appendixes")
        for appendix in info.appendixes:
            _leaf(appendixes, "Appendix", appendix)


def _response_for(el: Element, answered: ResponseFor) -> None:
    _leaf(el, "OrganId", _tok(answered.organ_id))
    _leaf(el, "Code", answered.code)
    when = answered.promulgation_date
    _leaf(el, "PromulgationDate", _date_text(when) if when is not None else "")
    _leaf(el, "DocumentId", _tok(answered.document_id))


def _staff(el: Element, staff: StaffInfo) -> None:
    _leaf(el, "Department", staff.department)
    _leaf(el, "Staff", staff.staff)
    _leaf(el, "Mobile", staff.mobile)
    _leaf(el, "Email", staff.email)


def _trace_list(el: Element, headers: tuple[TraceHeader, ...],
                business: BusinessInfo | None) -> None:
    for hop in headers:
        trace = _sub(el, "TraceHeader")
        _leaf(trace, "OrganId", _tok(hop.organ_id))
        _leaf(trace, "Timestamp", _timestamp_text(hop.timestamp))
    if business is None:
        return
    b = _sub(el, "Bussiness")
    if business.document_id:
        _leaf(b, "DocumentId", _tok(business.document_id))
    _leaf(b, "BussinessDocType", str(int(business.doc_type)))
    _leaf(b, "BussinessDocReason", business.reason)
    _optional(b, "Paper", business.paper)
    if business.staff_info is not None:
        _staff(_sub(b, "StaffInfo"), business.staff_info)
    if business.document_info is not None:
        info = _sub(b, "BussinessDocumentInfo")
        _optional(info, "DocumentInfo", business.document_info.document_info)
        _optional(info, "DocumentReceiver", business.document_info.document_receiver)
        receivers = _sub(info, "ReceiverList")
        for receiver in business.document_info.receivers:
            r = _sub(receivers, "Receiver")
            _leaf(r, "OrganId", _tok(receiver.organ_id))
            _optional(r, "ReceiverType", receiver.receiver_type)
    if business.replacements:
        replacements = _sub(b, "ReplacementInfoList")
        for replaced in business.replacements:
            r = _sub(replacements, "ReplacementInfo")
            _leaf(r, "DocumentId", _tok(replaced.document_id))
            organs = _sub(r, "OrganIdList")
            for organ in replaced.organ_ids:
                _leaf(organs, "OrganId", _tok(organ))


def _attachments(root: Element, manifest: Element, attachments: tuple[Attachment, ...]) -> None:
    seen: set[str] = set()
    for a in attachments:
        if a.content_id in seen:
            raise InvalidMetadata(f"two attachments share ContentId {a.content_id}")
        if not a.payload:
            raise InvalidMetadata(f"attachment {a.attachment_name!r} ({a.content_id}) is empty")
        seen.add(a.content_id)
        ref = _sub(manifest, "Reference")
        _leaf(ref, "ContentId", _tok(a.content_id))
        _leaf(ref, "ContentType", a.content_type)
        _leaf(ref, "Description", a.description)
        _leaf(ref, "AttachmentName", a.attachment_name)
    if not attachments:
        return
    encoded = _sub(root, "AttachmentEncoded")
    for a in attachments:
        att = _sub(encoded, "Attachment")
        _leaf(att, "ContentId", _tok(a.content_id))
        _leaf(att, "AttachmentName", a.attachment_name)
        _leaf(att, "Description", a.description)
        _leaf(att, "ContentType", a.content_type)
        _leaf(att, "ContentTransferEncoded", encode_base64(a.payload))


# -- small helpers -----------------------------------------------------------------------


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _sub(parent: Element, name: str, **attrs: str) -> Element:
    return etree.SubElement(parent, _q(name), attrs)


def _leaf(parent: Element, name: str, text: str) -> None:
    etree.SubElement(parent, _q(name)).text = text


def _optional(parent: Element, name: str, value: int | None) -> None:
    if value is not None:
        _leaf(parent, name, str(int(value)))


def _tok(value: str) -> str:
    return " ".join(value.split())


def _timestamp_text(value: datetime) -> str:
    v = wire_datetime(value)
    return f"{_date_text(v)} {v.hour:02d}:{v.minute:02d}:{v.second:02d}"
