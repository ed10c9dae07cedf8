"""Schema rejections name the element (path) and the reason; tolerated variants pass."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import pytest

from envelopes.builder import build_package, document_from_metadata, status_package
from envelopes.errors import SchemaViolation
from envelopes.model import Organization
from envelopes.parser import package_kind, parse_package
from envelopes.schema import explain, validate_tree
from envelopes.status_codes import StatusCode
from envelopes.xmlsafe import parse_tree

MH = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
DSIG = "http://www.w3.org/2000/09/xmldsig#"

DOCUMENT = build_package(document_from_metadata({
    "from": {"organ_id": "000.00.00.G22", "organ_name": "Văn phòng Chính phủ"},
    "to": [{"organ_id": "000.00.00.H41"}, {"organ_id": "000.00.00.H14"}],
    "code": "7816/VPCP-TTĐT", "promulgation_date": date(2024, 5, 6), "subject": "Kết nối",
    "priority": 2, "due_date": "2024/06/01",
    "trace": [{"organ_id": "000.00.00.G22", "timestamp": "2024/05/06 08:00:00"}],
})).decode()
STATUS = build_package(status_package(
    Organization("000.00.00.H41"), "000.00.00.G22,2024/05/06,7816/VPCP-TTĐT",
    StatusCode.ACCEPTED, "Đã tiếp nhận", datetime(2024, 5, 6, 9, 30, 0))).decode()

Mutation = Callable[[str], str]


def _drop(start: str, end: str) -> Mutation:
    return lambda s: s[:s.index(start)] + s[s.index(end) + len(end):]


def _swap(old: str, new: str) -> Mutation:
    def mutate(s: str) -> str:
        assert old in s, old
        return s.replace(old, new, 1)
    return mutate


REJECTIONS: list[tuple[str, str, Mutation, str, str]] = [
    ("missing From", DOCUMENT, _drop("<From>", "</From>"), MH, "missing required element From"),
    ("missing To", DOCUMENT, lambda s: _drop("<To>", "</To>")(_drop("<To>", "</To>")(s)), MH,
     "missing required element To"),
    ("missing DocumentId", DOCUMENT, _drop("<DocumentId>", "</DocumentId>"), MH,
     "missing required element DocumentId"),
    ("two From", DOCUMENT, _swap("<To>", "<From><OrganId>000.00.00.G22</OrganId></From><To>"),
     MH, "From occurs 2 times"),
    ("bad OrganId", DOCUMENT, _swap("<OrganId>000.00.00.H14", "<OrganId>000.00.00.h14"),
     f"{MH}/To[2]/OrganId", "000.00.00.h14"),
    ("OrganId with a space", DOCUMENT, _swap("<OrganId>000.00.00.H14", "<OrganId>000 00.H14"),
     f"{MH}/To[2]/OrganId", "pattern"),
    ("OrganId too long", DOCUMENT, _swap("<OrganId>000.00.00.H14", "<OrganId>" + "A" * 36),
     f"{MH}/To[2]/OrganId", "length"),
    ("Priority 9", DOCUMENT, _swap("<Priority>2", "<Priority>9"), f"{MH}/OtherInfo/Priority",
     "'9'"),
    ("Priority not a number", DOCUMENT, _swap("<Priority>2", "<Priority>high"),
     f"{MH}/OtherInfo/Priority", "'high'"),
    ("two edXMLHeader", DOCUMENT,
     _swap("</edXMLHeader>", "</edXMLHeader><edXMLHeader><MessageHeader/></edXMLHeader>"),
     "/edXML/edXMLEnvelope/edXMLHeader[2]", "not expected"),
    ("unknown element in MessageHeader", DOCUMENT, _swap("<Subject>", "<Foo/><Subject>"),
     f"{MH}/Foo", "not expected"),
    ("impossible date", DOCUMENT, _swap("2024/06/01", "2024/02/30"), f"{MH}/DueDate",
     "not a real date"),
    ("date in the wrong format", DOCUMENT, _swap("2024/06/01", "01/06/2024"), f"{MH}/DueDate",
     "pattern"),
    ("timestamp without seconds", DOCUMENT, _swap("2024/05/06 08:00:00", "2024/05/06 08:00"),
     "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/TraceHeader/Timestamp", "pattern"),
    ("Signature before TraceHeaderList", DOCUMENT,
     _swap("<TraceHeaderList>", f'<Signature xmlns="{DSIG}"/><TraceHeaderList>'),
     "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList", "not expected"),
    ("two Bussiness blocks", DOCUMENT,
     _swap("</TraceHeaderList>", "<Bussiness><BussinessDocType>0</BussinessDocType></Bussiness>"
           "<Bussiness><BussinessDocType>0</BussinessDocType></Bussiness></TraceHeaderList>"),
     "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness[2]", "not expected"),
    ("BussinessDocType 4", DOCUMENT,
     _swap("</TraceHeaderList>",
           "<Bussiness><BussinessDocType>4</BussinessDocType></Bussiness></TraceHeaderList>"),
     "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocType", "'4'"),
    ("element in a foreign namespace", DOCUMENT,
     _swap("<Subject>", '<Subject xmlns="urn:other">'), f"{MH}/Subject", "not expected"),
    ("unknown StatusCode", STATUS, _swap("<StatusCode>03", "<StatusCode>07"),
     f"{MH}/StatusCode", "'07'"),
    ("status without Timestamp", STATUS, _drop("<Timestamp>", "</Timestamp>"), MH,
     "missing required element Timestamp"),
    ("status without document id", STATUS, _drop("<DocumentId>", "</DocumentId>"),
     f"{MH}/ResponseFor", "ResponseFor/DocumentId"),
    ("status with two ResponseFor", STATUS,
     _swap("<StatusCode>", "<ResponseFor><DocumentId>x</DocumentId></ResponseFor><StatusCode>"),
     MH, "ResponseFor occurs 2 times"),
    ("document element in a status", STATUS, _swap("<StatusCode>", "<Subject>x</Subject>"
                                                   "<StatusCode>"),
     f"{MH}/Subject", "Subject is not allowed in the MessageHeader of a status package"),
    ("status with an attachment", STATUS,
     _swap("</edXMLEnvelope>", "</edXMLEnvelope><AttachmentEncoded><Attachment>"
           "<ContentId>cid:1</ContentId><AttachmentName>a</AttachmentName>"
           "<ContentTransferEncoded>AAAA</ContentTransferEncoded></Attachment>"
           "</AttachmentEncoded>"),
     "/edXML/AttachmentEncoded/Attachment", "no attachments"),
]


@pytest.mark.parametrize(("base", "mutate", "path", "reason"),
                         [pytest.param(b, m, p, r, id=n) for n, b, m, p, r in REJECTIONS])
def test_schema_rejection_reports_path_and_reason(base: str, mutate: Mutation, path: str,
                                                  reason: str) -> None:
    root = parse_tree(mutate(base).encode())
    with pytest.raises(SchemaViolation) as caught:
        validate_tree(root)
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert caught.value.code == "envelope.schema_violation"
    with pytest.raises(SchemaViolation):
        parse_package(mutate(base).encode())


@pytest.mark.parametrize(("base", "mutate"),
                         [pytest.param(b, m, id=n) for n, b, m, _p, _r in REJECTIONS])
def test_explain_lists_the_fault(base: str, mutate: Mutation) -> None:
    lines = explain(parse_tree(mutate(base).encode()))
    assert lines
    assert all(line.startswith("/edXML") for line in lines)


def _prefixed(s: str) -> str:
    # The vendor style: default namespace on the root, "edXML:" prefix below it.
    head, _, rest = s.partition("<edXMLEnvelope>")
    rest = rest.replace("</", "</edXML:").replace("<", "<edXML:").replace("<edXML:/", "</")
    return (head + '<edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
            + rest.replace("</edXML:edXML>", "</edXML>"))


TOLERATED: list[tuple[str, str, Mutation]] = [
    ("as built", DOCUMENT, lambda s: s),
    ("vendor prefix style", DOCUMENT, _prefixed),
    ("XMLDSig Signature last", DOCUMENT,
     _swap("</edXMLHeader>", f'<ds:Signature xmlns:ds="{DSIG}"><ds:SignedInfo/></ds:Signature>'
                             "</edXMLHeader>")),
    ("Signature without its namespace", DOCUMENT,
     _swap("</edXMLHeader>", "<Signature><SignedInfo><Reference URI=''/></SignedInfo>"
                             "</Signature></edXMLHeader>")),
    ("DocumentId first", DOCUMENT, lambda s: _swap("<From>", s[s.index("<DocumentId>"):s.index(
        "</DocumentId>") + 13] + "<From>")(_drop("<DocumentId>", "</DocumentId>")(s))),
    ("comments everywhere", DOCUMENT,
     lambda s: s.replace("<Subject>", "<!-- c --><Subject><!-- inside -->")),
    ("empty ResponseFor", DOCUMENT,
     _swap("<DocumentId>", "<ResponseFor><OrganId></OrganId><Code></Code><PromulgationDate>"
                           "</PromulgationDate><DocumentId></DocumentId></ResponseFor>"
                           "<DocumentId>")),
    ("QĐ 20/2020 organ id", DOCUMENT, _swap("000.00.00.H14", "H14.22.01")),
    ("status as built", STATUS, lambda s: s),
    ("status in vendor order", STATUS,
     lambda s: _swap("<StatusCode>", s[s.index("<Timestamp>"):s.index("</Timestamp>") + 12]
                     + "<StatusCode>")(_drop("<Timestamp>", "</Timestamp>")(s))),
]


@pytest.mark.parametrize(("base", "mutate"),
                         [pytest.param(b, m, id=n) for n, b, m in TOLERATED])
def test_tolerated_variants_are_valid_and_read_the_same(base: str, mutate: Mutation) -> None:
    raw = mutate(base).encode()
    root = parse_tree(raw)
    validate_tree(root)
    assert explain(root) == []
    package = parse_package(raw)
    reference = parse_package(base.encode())
    assert package.sender == reference.sender
    assert package.document_id == reference.document_id


@pytest.mark.parametrize(("raw", "reason"), [
    (b"<edXML/>", "not edXML in namespace"),
    (b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"/>', "no edXMLEnvelope"),
])
def test_package_kind_refuses_what_is_not_a_package(raw: bytes, reason: str) -> None:
    with pytest.raises(SchemaViolation) as caught:
        package_kind(parse_tree(raw))
    assert reason in caught.value.reason
    assert caught.value.path == "/edXML"
