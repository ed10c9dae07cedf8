"""The parser: attachments, tolerated variants and coded refusals, table-driven."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Callable
from datetime import date, datetime

import pytest

from envelopes.attachments import ZIP_MARKER
from envelopes.builder import attachment_from_bytes, build_package, document_from_metadata
from envelopes.errors import AxisError, InvalidAttachment, MalformedXml, SchemaViolation
from envelopes.model import NS, Attachment, DocumentPackage, StatusPackage
from envelopes.parser import package_kind, parse_package, read_package
from envelopes.status_codes import StatusCode
from envelopes.xmlsafe import XmlLimits, parse_tree

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40
REPORT = attachment_from_bytes("Báo cáo quý 2.pdf", PDF, description="Báo cáo")
PLAIN = Attachment("cid:plain-1", "ghi chú.txt", "Xin chào".encode(), content_type="text/plain")
META = {
    "from": {"organ_id": "000.00.00.G22", "organ_name": "Văn phòng Chính phủ"},
    "to": [{"organ_id": "000.00.00.H41", "organ_name": "UBND Tỉnh Nghệ An"}],
    "code": "12/UBND-VP", "promulgation_date": date(2024, 5, 6), "subject": "Về việc kết nối",
}
DOCUMENT = build_package(document_from_metadata(META, [REPORT, PLAIN])).decode()


def _zip(members: dict[str, bytes], comment: bytes = ZIP_MARKER) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.comment = comment
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _payload_of(attachment: Attachment, raw: bytes) -> Callable[[str], str]:
    encoded = base64.b64encode(attachment.payload).decode()
    return lambda s: s.replace(encoded, base64.b64encode(raw).decode())


def test_document_attachments_are_read_back() -> None:
    package = parse_package(DOCUMENT.encode())
    assert isinstance(package, DocumentPackage)
    report, plain = package.attachments
    assert report == REPORT and plain == PLAIN
    assert report.zipped and report.data == PDF and report.content_type == "application/zip"
    assert report.sha256 == hashlib.sha256(PDF).hexdigest()
    assert not plain.zipped and plain.data == "Xin chào".encode()


ATTACHMENT_FAULTS: list[tuple[str, Callable[[str], str], str]] = [
    ("placeholder instead of base64",
     lambda s: s.replace(base64.b64encode(PLAIN.data).decode(), "${__StringFromFile(x)}"),
     "'ghi chú.txt' (cid:plain-1)"),
    ("base64 with a bad padding",
     lambda s: s.replace(base64.b64encode(PLAIN.data).decode(),
                         base64.b64encode(PLAIN.data).decode().rstrip("=") + "="),
     "not valid base64"),
    ("empty payload",
     lambda s: s.replace(base64.b64encode(PLAIN.data).decode(), ""), "cid:plain-1"),
    ("manifest Reference without Attachment",
     lambda s: s[:s.rindex("<Attachment>")] + "</AttachmentEncoded>\n</edXML>\n",
     "manifest Reference 'ghi chú.txt' (cid:plain-1) has no Attachment"),
    ("Attachment not in the manifest",
     lambda s: s[:s.rindex("<Reference>")] + s[s.index("</edXMLManifest>"):],
     "Attachment 'ghi chú.txt' (cid:plain-1) is not listed"),
    ("two Attachments with one ContentId",
     lambda s: s.replace("<ContentId>cid:plain-1", f"<ContentId>{REPORT.content_id}"),
     "share ContentId"),
    ("zip bomb", _payload_of(REPORT, _zip({"a": b"\0" * 3_000_000})), "inflates beyond"),
    ("Axis ZIP with two files", _payload_of(REPORT, _zip({"a": b"1", "b": b"2"})), "not 2"),
    ("broken Axis ZIP", _payload_of(REPORT, b"PK\x03\x04garbage" + ZIP_MARKER),
     "cannot be read"),
]


@pytest.mark.parametrize(("mutate", "reason"),
                         [pytest.param(m, r, id=n) for n, m, r in ATTACHMENT_FAULTS])
def test_attachment_faults_are_refused_naming_the_attachment(
        mutate: Callable[[str], str], reason: str) -> None:
    limits = XmlLimits(max_unzipped_bytes=1_000_000)
    with pytest.raises(InvalidAttachment) as caught:
        parse_package(mutate(DOCUMENT).encode(), limits)
    assert reason in caught.value.reason


def test_vendor_zip_is_not_unzipped() -> None:
    vendor = _zip({"inner.edxml": b"<x/>"}, comment=b"")
    package = parse_package(_payload_of(REPORT, vendor)(DOCUMENT).encode())
    assert isinstance(package, DocumentPackage)
    assert package.attachments[0].data == vendor and not package.attachments[0].zipped


def test_unzip_budget_is_shared_by_all_attachments() -> None:
    big = [attachment_from_bytes(f"{i}.bin", bytes([i]) * 600_000) for i in range(2)]
    raw = build_package(document_from_metadata(META, big))
    assert isinstance(parse_package(raw, XmlLimits(max_unzipped_bytes=1_200_000)),
                      DocumentPackage)
    with pytest.raises(InvalidAttachment, match=r"1\.bin"):
        parse_package(raw, XmlLimits(max_unzipped_bytes=1_000_000))


def test_base64_may_be_wrapped_in_lines() -> None:
    encoded = base64.b64encode(PLAIN.data).decode()
    wrapped = DOCUMENT.replace(encoded, "\n  " + "\n  ".join(encoded[i:i + 4]
                                                              for i in range(0, len(encoded), 4)))
    package = parse_package(wrapped.encode())
    assert isinstance(package, DocumentPackage) and package.attachments[1] == PLAIN


@pytest.mark.parametrize(("raw", "error", "reason"), [
    # only a namespace fault, attachments fine: the namespace fault is what is reported
    (DOCUMENT.replace("<Reference>", '<Reference xlink:href="">', 1), MalformedXml, "xlink"),
    # a namespace fault and a placeholder attachment: the attachment is named
    (DOCUMENT.replace("<Reference>", '<Reference xlink:href="">', 1)
     .replace(base64.b64encode(PLAIN.data).decode(), "${placeholder}"), InvalidAttachment,
     "'ghi chú.txt'"),
    # not a namespace fault: no recovery, plain MalformedXml
    (DOCUMENT.replace("</Subject>", "</Subjet>", 1)
     .replace(base64.b64encode(PLAIN.data).decode(), "${placeholder}"), MalformedXml,
     "mismatch"),
])
def test_namespace_faults_are_diagnosed_for_attachments(
        raw: str, error: type[AxisError], reason: str) -> None:
    with pytest.raises(error) as caught:
        parse_package(raw.encode())
    assert type(caught.value) is error
    assert reason in caught.value.reason


def test_read_package_validates_the_tree() -> None:
    root = parse_tree(DOCUMENT.encode())
    root.find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader/{{{NS}}}MessageHeader/"
              f"{{{NS}}}Subject").tag = f"{{{NS}}}Subjectt"  # type: ignore[union-attr]
    with pytest.raises(SchemaViolation):
        read_package(root)


def test_read_package_ignores_a_signature() -> None:
    raw = DOCUMENT.replace("</edXMLHeader>", '<ds:Signature xmlns:ds="http://www.w3.org/2000/'
                           '09/xmldsig#"><ds:SignedInfo/></ds:Signature></edXMLHeader>')
    assert read_package(parse_tree(raw.encode())) == parse_package(DOCUMENT.encode())


STATUS_VARIANTS: list[tuple[str, bytes, StatusCode, datetime]] = [
    ("prefixed", b"""<?xml version="1.0" encoding="UTF-8"?>
<e:edXML xmlns:e="http://www.mic.gov.vn/TBT/QCVN_102_2016"><e:edXMLEnvelope><e:edXMLHeader>
<e:MessageHeader><e:Timestamp> 2024/01/02 03:04:05 </e:Timestamp><e:StatusCode>05</e:StatusCode>
<e:ResponseFor><e:DocumentId>D1</e:DocumentId></e:ResponseFor>
<e:From><e:OrganId>000.00.00.H41</e:OrganId></e:From></e:MessageHeader>
</e:edXMLHeader></e:edXMLEnvelope></e:edXML>""", StatusCode.PROCESSING,
     datetime(2024, 1, 2, 3, 4, 5)),
    ("default namespace, BOM, trace list", b"""\xef\xbb\xbf<edXML
xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope><edXMLHeader><MessageHeader>
<From><OrganId>H41</OrganId></From><ResponseFor><DocumentId>D1</DocumentId></ResponseFor>
<StatusCode>16</StatusCode><Timestamp>2024/12/31 23:59:59</Timestamp></MessageHeader>
<TraceHeaderList/></edXMLHeader></edXMLEnvelope></edXML>""", StatusCode.CHANGE_REFUSED,
     datetime(2024, 12, 31, 23, 59, 59)),
]


@pytest.mark.parametrize(("raw", "code", "when"),
                         [pytest.param(r, c, w, id=n) for n, r, c, w in STATUS_VARIANTS])
def test_status_variants(raw: bytes, code: StatusCode, when: datetime) -> None:
    package = parse_package(raw)
    assert isinstance(package, StatusPackage)
    assert package.status_code is code and package.timestamp == when
    assert package.document_id == "D1" and package.description == ""
    assert package_kind(parse_tree(raw)) == "status"
