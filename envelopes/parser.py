"""From bytes (or a verified tree) to a :data:`~envelopes.model.Package`.

``parse_package`` = hardened parse (:mod:`envelopes.xmlsafe`) → schema
(:mod:`envelopes.schema`) → model. Prefixes and element order are free (the
schema decides what is allowed); the model does not depend on them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import TypeVar, cast

from lxml import etree

from envelopes.attachments import (
    attachment_label,
    decode_base64,
    is_builder_zip,
    unzip_builder_payload,
)
from envelopes.dates import parse_date, parse_timestamp
from envelopes.errors import AxisError, InvalidAttachment, MalformedXml, SchemaViolation
from envelopes.model import (
    NS,
    Attachment,
    BusinessDocType,
    BusinessDocumentInfo,
    BusinessInfo,
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    OtherInfo,
    Package,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusPackage,
    TraceHeader,
)
from envelopes.schema import element_path, package_kind, validate_package
from envelopes.status_codes import StatusCode
from envelopes.xmlsafe import DEFAULT_LIMITS, XmlLimits, parse_tree, recover_tree

__all__ = ["DEFAULT_LIMITS", "XmlLimits", "package_kind", "parse_package", "read_package"]

Element = etree._Element
T = TypeVar("T")
_Q = f"{{{NS}}}"
_IN_NS = _Q + "*"
_Q_LEN = len(_Q)


def parse_package(raw: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> Package:
    """Parse untrusted bytes into a package; every refusal is an :class:`AxisError`.

    A package that is malformed only by namespace errors is re-read with a
    recovering parse (still hardened) to find a broken attachment: if one is
    found the refusal is :class:`InvalidAttachment` naming it, else the
    original :class:`MalformedXml`.
    """
    try:
        root = parse_tree(raw, limits)
    except MalformedXml as exc:
        if exc.detail.get("namespace_only"):
            _diagnose_attachments(raw, limits)
        raise
    return read_package(root, limits)


def read_package(root: Element, limits: XmlLimits = DEFAULT_LIMITS) -> Package:
    """The model of an already parsed (and, at the hub, verified) tree; validates it first."""
    kind, header = validate_package(root)
    if kind == "status":
        return _status(header)
    return _document(root, header, limits)


# -- document package --------------------------------------------------------------------


def _document(root: Element, header: Element, limits: XmlLimits) -> DocumentPackage:
    kids = _children(header)
    trace = _one_or_none(root, "edXMLEnvelope/edXMLHeader/TraceHeaderList")
    return DocumentPackage(
        sender=_organization(kids["From"][0]),
        recipients=tuple(_organization(e) for e in kids["To"]),
        document_id=_token(kids["DocumentId"][0]),
        code=_code(kids["Code"][0]),
        promulgation_info=_promulgation_info(kids["PromulgationInfo"][0]),
        document_type=_document_type(kids["DocumentType"][0]),
        subject=_text(kids["Subject"][0]),
        content=_text(_first(kids, "Content")),
        signer_info=_maybe(_signer_info, _first(kids, "SignerInfo")),
        due_date=_maybe(_date, _first(kids, "DueDate")),
        to_places=tuple(_text(e) for e in _all(_first(kids, "ToPlaces"), "Place")),
        other_info=_maybe(_other_info, _first(kids, "OtherInfo")),
        response_for=tuple(_response_for(e) for e in kids.get("ResponseFor", ())),
        steering_type=_maybe(_int, _first(kids, "SteeringType")),
        trace_headers=tuple(_trace_header(e) for e in _all(trace, "TraceHeader")),
        business=_maybe(_business, _one_or_none(trace, "Bussiness")),
        attachments=_attachments(root, limits),
    )


def _organization(el: Element) -> Organization:
    k = _children(el)
    return Organization(
        organ_id=_token(k["OrganId"][0]),
        organ_name=_text(_first(k, "OrganName")),
        organization_in_charge=_text(_first(k, "OrganizationInCharge")),
        organ_add=_text(_first(k, "OrganAdd")),
        email=_text(_first(k, "Email")),
        telephone=_text(_first(k, "Telephone")),
        fax=_text(_first(k, "Fax")),
        website=_text(_first(k, "Website")),
    )


def _code(el: Element) -> Code:
    k = _children(el)
    return Code(_text(k["CodeNumber"][0]), _text(_first(k, "CodeNotation")))


def _promulgation_info(el: Element) -> PromulgationInfo:
    k = _children(el)
    return PromulgationInfo(_date(k["PromulgationDate"][0]), _text(_first(k, "Place")))


def _document_type(el: Element) -> DocumentType:
    k = _children(el)
    return DocumentType(_int(k["Type"][0]), _text(_first(k, "TypeName")),
                        _maybe(_int, _first(k, "TypeDetail")))


def _signer_info(el: Element) -> SignerInfo:
    k = _children(el)
    return SignerInfo(_text(_first(k, "Competence")), _text(_first(k, "Position")),
                      _text(_first(k, "FullName")))


def _other_info(el: Element) -> OtherInfo:
    k = _children(el)
    return OtherInfo(
        priority=_int(k["Priority"][0]),
        sphere_of_promulgation=_text(_first(k, "SphereOfPromulgation")),
        typer_notation=_text(_first(k, "TyperNotation")),
        promulgation_amount=_maybe(_int, _first(k, "PromulgationAmount")),
        page_amount=_maybe(_int, _first(k, "PageAmount")),
        direction=_maybe(_bool, _first(k, "Direction")),
        appendixes=tuple(_text(e) for e in _all(_first(k, "Appendixes"), "Appendix")),
    )


def _response_for(el: Element) -> ResponseFor:
    k = _children(el)
    when = _first(k, "PromulgationDate")
    return ResponseFor(
        organ_id=_token(_first(k, "OrganId")),
        code=_text(_first(k, "Code")),
        promulgation_date=_date(when) if when is not None and _token(when) else None,
        document_id=_token(_first(k, "DocumentId")),
    )


def _staff_info(el: Element) -> StaffInfo:
    k = _children(el)
    return StaffInfo(_text(_first(k, "Department")), _text(_first(k, "Staff")),
                     _text(_first(k, "Mobile")), _text(_first(k, "Email")))


def _trace_header(el: Element) -> TraceHeader:
    k = _children(el)
    return TraceHeader(_token(k["OrganId"][0]), _timestamp(k["Timestamp"][0]))


def _business(el: Element) -> BusinessInfo:
    k = _children(el)
    return BusinessInfo(
        doc_type=BusinessDocType(_int(k["BussinessDocType"][0])),
        reason=_text(_first(k, "BussinessDocReason")),
        paper=_maybe(_int, _first(k, "Paper")),
        document_id=_token(_first(k, "DocumentId")),
        staff_info=_maybe(_staff_info, _first(k, "StaffInfo")),
        document_info=_maybe(_business_document_info, _first(k, "BussinessDocumentInfo")),
        replacements=tuple(_replacement(e) for e in
                           _all(_first(k, "ReplacementInfoList"), "ReplacementInfo")),
    )


def _business_document_info(el: Element) -> BusinessDocumentInfo:
    k = _children(el)
    receivers = tuple(
        Receiver(_token(_children(r)["OrganId"][0]),
                 _maybe(_int, _first(_children(r), "ReceiverType")))
        for r in _all(_first(k, "ReceiverList"), "Receiver")
    )
    return BusinessDocumentInfo(_maybe(_int, _first(k, "DocumentInfo")),
                                _maybe(_int, _first(k, "DocumentReceiver")), receivers)


def _replacement(el: Element) -> ReplacementInfo:
    k = _children(el)
    organs = tuple(_token(e) for e in _all(_first(k, "OrganIdList"), "OrganId"))
    return ReplacementInfo(_token(k["DocumentId"][0]), organs)


# -- status package ----------------------------------------------------------------------


def _status(header: Element) -> StatusPackage:
    kids = _children(header)
    return StatusPackage(
        sender=_organization(kids["From"][0]),
        response_for=_response_for(kids["ResponseFor"][0]),
        status_code=StatusCode(_token(kids["StatusCode"][0])),
        timestamp=_timestamp(kids["Timestamp"][0]),
        description=_text(_first(kids, "Description")),
        staff_info=_maybe(_staff_info, _first(kids, "StaffInfo")),
    )


# -- attachments -------------------------------------------------------------------------


def _attachments(root: Element, limits: XmlLimits) -> tuple[Attachment, ...]:
    references = _by_content_id(
        _all(_one_or_none(root, "edXMLEnvelope/edXMLBody/edXMLManifest"), "Reference"),
        "manifest Reference")
    encoded = _by_content_id(_all(_one_or_none(root, "AttachmentEncoded"), "Attachment"),
                             "Attachment")
    for cid, ref in references.items():
        if cid not in encoded:
            name = _text(_first(_children(ref), "AttachmentName"))
            raise InvalidAttachment(f"manifest Reference {attachment_label(name, cid)} has no "
                                    "Attachment in AttachmentEncoded", path=element_path(ref))
    budget = limits.max_unzipped_bytes
    result: list[Attachment] = []
    for cid, el in encoded.items():
        if cid not in references:
            raise InvalidAttachment(
                f"Attachment {attachment_label(_attachment_name(el), cid)} is not listed in "
                "the edXMLManifest", path=element_path(el))
        attachment = _attachment(el, references[cid], budget)
        budget -= attachment.size if attachment.zipped else 0
        result.append(attachment)
    return tuple(result)


def _attachment(el: Element, ref: Element, budget: int) -> Attachment:
    k, r = _children(el), _children(ref)
    cid, name = _token(k["ContentId"][0]), _text(k["AttachmentName"][0])
    label = attachment_label(name, cid)
    payload = decode_base64(_text(k["ContentTransferEncoded"][0]), label)
    description = _first(k, "Description")
    content_type = _first(k, "ContentType")
    if description is None:
        description = _first(r, "Description")
    if content_type is None:
        content_type = _first(r, "ContentType")
    media_type = (_token(content_type) if content_type is not None else "")
    data, zipped = payload, None
    if is_builder_zip(payload):
        data, zipped = unzip_builder_payload(payload, label, budget), payload
    return Attachment(content_id=cid, attachment_name=name, data=data,
                      description=_text(description),
                      content_type=media_type or "application/octet-stream",
                      zipped_payload=zipped)


def _by_content_id(elements: Iterable[Element], what: str) -> dict[str, Element]:
    found: dict[str, Element] = {}
    for el in elements:
        cid = _token(_children(el)["ContentId"][0])
        if cid in found:
            raise InvalidAttachment(f"two {what} elements share ContentId {cid}",
                                    path=element_path(el))
        found[cid] = el
    return found


def _attachment_name(el: Element) -> str:
    return _text(_first(_children(el), "AttachmentName"))


def _diagnose_attachments(raw: bytes, limits: XmlLimits) -> None:
    """Raise :class:`InvalidAttachment` if a recovered tree shows a broken attachment."""
    try:
        recovered = recover_tree(raw, limits)
    except AxisError:
        return
    for el in recovered.iter():
        if not isinstance(el.tag, str) or _loose_name(el) != "Attachment":
            continue
        parts = {_loose_name(c): c for c in el if isinstance(c.tag, str)}
        cid = _token(parts.get("ContentId"))
        name = _text(parts.get("AttachmentName"))
        decode_base64(_text(parts.get("ContentTransferEncoded")), attachment_label(name, cid))


def _loose_name(el: Element) -> str:
    # In a recovered tree an undeclared prefix stays in the name: "edXML:Attachment".
    return str(el.tag).rsplit("}", 1)[-1].rsplit(":", 1)[-1]


# -- tree and value helpers --------------------------------------------------------------


def _children(el: Element) -> dict[str, list[Element]]:
    kids: dict[str, list[Element]] = {}
    for child in el.iterchildren(_IN_NS):  # edXML elements only: no comments, PIs, others
        kids.setdefault(child.tag[_Q_LEN:], []).append(child)
    return kids


def _first(kids: dict[str, list[Element]], name: str) -> Element | None:
    found = kids.get(name)
    return found[0] if found else None


def _all(parent: Element | None, name: str) -> list[Element]:
    return [] if parent is None else parent.findall(_Q + name)


def _one_or_none(parent: Element | None, path: str) -> Element | None:
    if parent is None:
        return None
    return parent.find(_clark(path))


@functools.lru_cache(maxsize=32)
def _clark(path: str) -> str:
    """An edXML path ``A/B`` in Clark notation: ``{ns}A/{ns}B``."""
    return "/".join(_Q + step for step in path.split("/"))


def _text(el: Element | None) -> str:
    if el is None:
        return ""
    if len(el) == 0:  # the usual leaf: no comment or PI splitting its text
        return el.text or ""
    return "".join(cast(Iterator[str], el.itertext()))


def _token(el: Element | None) -> str:
    return " ".join(_text(el).split())


def _int(el: Element) -> int:
    return int(_token(el))


def _bool(el: Element) -> bool:
    return _token(el) in ("true", "1")


def _date(el: Element) -> date:
    value = _token(el)
    try:
        return parse_date(value)
    except ValueError:
        raise SchemaViolation(f"{value!r} is not a calendar date (yyyy/MM/dd)",
                              path=element_path(el)) from None


def _timestamp(el: Element) -> datetime:
    value = _token(el)
    try:
        return parse_timestamp(value)
    except ValueError:
        raise SchemaViolation(f"{value!r} is not a timestamp (yyyy/MM/dd HH:mm:ss)",
                              path=element_path(el)) from None


def _maybe(read: Callable[[Element], T], el: Element | None) -> T | None:
    return None if el is None else read(el)
