"""The vendor corpus: every published package parses, except the one with a placeholder."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from envelopes.errors import InvalidAttachment
from envelopes.model import BusinessDocType, DocumentPackage, StatusPackage
from envelopes.parser import package_kind, parse_package
from envelopes.schema import explain, validate_tree
from envelopes.status_codes import StatusCode
from envelopes.xmlsafe import parse_tree

VPCP_DOC = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"

# file, sender, recipients, BussinessDocType
DOCUMENTS = [
    ("edoc_new.edxml", "002.00.20.H13", ("28.22.H17",), BusinessDocType.NEW),
    ("edoc_revocation.edxml", "000.00.00.G22",
     ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17"), BusinessDocType.REVOKE),
    ("edoc_update.edxml", "000.00.00.G22",
     ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17"), BusinessDocType.UPDATE),
    ("edoc_replacement.edxml", "000.00.00.G22",
     ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17"), BusinessDocType.REPLACE),
    ("vnpt-builder-output.edxml", "000.00.00.G22",
     ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17"), BusinessDocType.NEW),
]

# file, sender, status code
STATUSES = [
    ("status.edxml", "000.00.00.H41", StatusCode.ARRIVED),
    ("status_inbox_01.edxml", "000.00.00.H41", StatusCode.ARRIVED),
    ("status_rejection_02.edxml", "000.00.00.H41", StatusCode.REJECTED),
    ("status_acceptance_03.edxml", "000.00.00.H41", StatusCode.ACCEPTED),
    ("status_assignment_04.edxml", "000.00.00.H41", StatusCode.ASSIGNED),
    ("status_processing_05.edxml", "000.00.00.H41", StatusCode.PROCESSING),
    ("status_finish_06.edxml", "000.00.00.H41", StatusCode.COMPLETED),
    ("status_cancellation_13.edxml", "000.00.00.G22", StatusCode.TAKE_BACK_REQUEST),
    ("status_change-acceptance_15.edxml", "000.00.00.H41", StatusCode.CHANGE_ACCEPTED),
    ("status_change-rejection_16.edxml", "000.00.00.H41", StatusCode.CHANGE_REFUSED),
]


def test_the_corpus_is_the_one_described(conformance_dir: Path) -> None:
    names = {p.name for p in conformance_dir.glob("*.edxml")}
    expected = {d[0] for d in DOCUMENTS} | {s[0] for s in STATUSES} | {"edoc.edxml"}
    assert names == expected


@pytest.mark.parametrize(("name", "sender", "recipients", "doc_type"), DOCUMENTS)
def test_vendor_document_parses(conformance_dir: Path, name: str, sender: str,
                                recipients: tuple[str, ...], doc_type: BusinessDocType) -> None:
    package = parse_package((conformance_dir / name).read_bytes())
    assert isinstance(package, DocumentPackage)
    assert package.sender.organ_id == sender
    assert tuple(r.organ_id for r in package.recipients) == recipients
    assert package.document_id == VPCP_DOC
    assert package.business is not None and package.business.doc_type is doc_type
    assert package.priority == 0
    assert package.other_info is not None and package.other_info.direction is False
    assert package.subject == "V/v kết nối, liên thông phần mềm quản lý văn bản"
    assert package.to_places == ("Cac bo va co quan ngang bo", "Uy ban nhan dan cac tinh, TP")
    [attachment] = package.attachments
    assert attachment.content_id == "cid:209"
    assert attachment.attachment_name == "1896_QD-TTg_m_294779.doc"
    assert attachment.content_type == "application/zip"
    assert not attachment.zipped  # a vendor ZIP is kept as it came
    assert attachment.data.startswith(b"PK\x03\x04")
    assert len(attachment.sha256) == 64


def test_vendor_update_and_replacement_details(conformance_dir: Path) -> None:
    update = parse_package((conformance_dir / "edoc_update.edxml").read_bytes())
    assert isinstance(update, DocumentPackage) and update.business is not None
    info = update.business.document_info
    assert info is not None and info.document_info == 1 and info.document_receiver == 1
    assert [(r.organ_id, r.receiver_type) for r in info.receivers] == [
        ("000.00.00.H41", 0), ("000.00.00.H14", 1)]
    replacement = parse_package((conformance_dir / "edoc_replacement.edxml").read_bytes())
    assert isinstance(replacement, DocumentPackage) and replacement.business is not None
    assert len(replacement.business.replacements) == 2
    assert replacement.business.replacements[0].organ_ids == ("000.00.00.H41", "000.00.00.H14")
    revocation = parse_package((conformance_dir / "edoc_revocation.edxml").read_bytes())
    assert isinstance(revocation, DocumentPackage)
    assert revocation.response_for[0].document_id == "000.00.04.G14,2012/08/06,267/VPCP-TTĐT"
    assert revocation.trace_headers[0].timestamp == datetime(2018, 9, 28, 0, 0, 0)
    assert revocation.business is not None and revocation.business.staff_info is not None
    assert revocation.business.staff_info.staff == "Nguyễn Thị Ngọc Trâm"


@pytest.mark.parametrize(("name", "sender", "code"), STATUSES)
def test_vendor_status_parses(conformance_dir: Path, name: str, sender: str,
                              code: StatusCode) -> None:
    package = parse_package((conformance_dir / name).read_bytes())
    assert isinstance(package, StatusPackage)
    assert package.sender.organ_id == sender
    assert package.status_code is code
    assert package.document_id == VPCP_DOC
    assert package.description
    assert package.staff_info is not None and package.staff_info.mobile == "84912000001"


def test_vendor_status_fields(conformance_dir: Path) -> None:
    package = parse_package((conformance_dir / "status.edxml").read_bytes())
    assert isinstance(package, StatusPackage)
    assert package.timestamp == datetime(2018, 9, 28, 17, 25, 11)
    assert package.response_for.promulgation_date == date(2018, 9, 28)
    assert package.response_for.code == "7816/VPCP-TTĐT"
    assert package.sender.organization_in_charge == "UBND Tỉnh Nghệ An"


def test_placeholder_attachment_is_refused_naming_it(conformance_dir: Path) -> None:
    with pytest.raises(InvalidAttachment) as caught:
        parse_package((conformance_dir / "edoc.edxml").read_bytes())
    assert "GUIDE_INSTALL OPENVPN.SIGNED.PDF" in caught.value.reason
    assert "cid:36b8a92e-f054-11e7-842b-005056b672fc" in caught.value.reason
    assert caught.value.code == "envelope.invalid_attachment"


@pytest.mark.parametrize("name", [d[0] for d in DOCUMENTS] + [s[0] for s in STATUSES])
def test_vendor_package_kind_and_schema(conformance_dir: Path, name: str) -> None:
    root = parse_tree((conformance_dir / name).read_bytes())
    assert package_kind(root) == ("status" if name.startswith("status") else "edoc")
    validate_tree(root)


@pytest.mark.parametrize("name", ["status.edxml", "vnpt-builder-output.edxml"])
def test_explain_finds_nothing_in_good_vendor_packages(conformance_dir: Path, name: str) -> None:
    assert explain(parse_tree((conformance_dir / name).read_bytes())) == []
