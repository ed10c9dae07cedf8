"""Builder, metadata, identifiers and status codes."""

from __future__ import annotations

import hashlib
import io
import tomllib
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from envelopes.attachments import ZIP_MARKER
from envelopes.builder import (
    attachment_from_bytes,
    build_package,
    document_from_metadata,
    new_document_id,
    status_package,
)
from envelopes.errors import InvalidMetadata, InvalidOrganId
from envelopes.ids import is_organ_id, validate_organ_id
from envelopes.model import (
    BusinessDocType,
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    OtherInfo,
    PromulgationInfo,
    ResponseFor,
    StaffInfo,
    StatusPackage,
)
from envelopes.parser import parse_package
from envelopes.status_codes import StatusCode

BASE: dict[str, Any] = {
    "from": {"organ_id": "000.00.00.G22", "organ_name": "Văn phòng Chính phủ"},
    "to": [{"organ_id": "000.00.00.H41"}],
    "code": "7816/VPCP-TTĐT",
    "promulgation_date": "2024/05/06",
    "subject": "V/v kết nối, liên thông",
}


@pytest.mark.parametrize(("value", "ok"), [
    ("000.00.00.G22", True), ("002.00.20.H13", True), ("000.00.15.H51", True),
    ("28.22.H17", True), ("H41", True), ("G22.01.02.03", True), ("A" * 35, True),
    ("A" * 36, False), ("", False), ("000.00.00.g22", False), ("000..00.G22", False),
    (".G22", False), ("G22.", False), ("000.00.00.G22 ", False), ("000 00.00.G22", False),
    ("000-00-00-G22", False), ("Đ22", False), ("000.00.00.G22\n", False),
])
def test_organ_ids(value: str, ok: bool) -> None:
    assert is_organ_id(value) is ok
    if ok:
        assert validate_organ_id(value) == value
    else:
        with pytest.raises(InvalidOrganId) as caught:
            validate_organ_id(value)
        assert caught.value.code == "registry.invalid_organ_id"


@pytest.mark.parametrize(("code", "wire", "vi", "en"), [
    (StatusCode.ARRIVED, "01", "Đã đến", "arrived"),
    (StatusCode.REJECTED, "02", "Từ chối tiếp nhận", "rejected"),
    (StatusCode.ACCEPTED, "03", "Đã tiếp nhận", "accepted and registered"),
    (StatusCode.ASSIGNED, "04", "Phân công", "assigned"),
    (StatusCode.PROCESSING, "05", "Đang xử lý", "processing"),
    (StatusCode.COMPLETED, "06", "Hoàn thành", "completed"),
    (StatusCode.TAKE_BACK_REQUEST, "13", "Yêu cầu lấy lại",
     "take-back request from the original sender"),
    (StatusCode.CHANGE_ACCEPTED, "15", "Đồng ý", "change/take-back accepted"),
    (StatusCode.CHANGE_REFUSED, "16", "Từ chối", "change/take-back refused"),
])
def test_status_codes(code: StatusCode, wire: str, vi: str, en: str) -> None:
    assert code.value == wire and StatusCode(wire) is code and code == wire
    assert isinstance(code, str)
    assert (code.vi, code.en) == (vi, en)


def test_status_code_set_is_closed() -> None:
    assert len(StatusCode) == 9
    with pytest.raises(ValueError):
        StatusCode("07")


def test_new_document_id() -> None:
    assert (new_document_id("000.00.00.G22", date(2015, 9, 30), 7816, "VPCP-TTĐT")
            == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT")
    assert new_document_id("H41", date(2024, 1, 2), "5", "") == "H41,2024/01/02,5"
    with pytest.raises(InvalidOrganId):
        new_document_id("bad id", date(2024, 1, 2), 1, "X")


def test_document_from_minimal_metadata() -> None:
    package = document_from_metadata(BASE)
    assert package.document_id == "000.00.00.G22,2024/05/06,7816/VPCP-TTĐT"
    assert package.sender == Organization("000.00.00.G22", organ_name="Văn phòng Chính phủ")
    assert package.recipients == (Organization("000.00.00.H41"),)
    assert package.code == Code("7816", "VPCP-TTĐT")
    assert package.promulgation_info == PromulgationInfo(date(2024, 5, 6))
    assert package.document_type == DocumentType(1)
    assert package.other_info == OtherInfo(priority=0)
    assert package.business is None and package.attachments == ()


def test_document_from_full_metadata() -> None:
    meta = {**BASE,
            "from": "000.00.00.G22", "to": [{"organ_id": "000.00.00.H41"}, {"organ_id": "H14"}],
            "document_id": "  custom-id ", "code": {"number": 12, "notation": "QĐ-UBND"},
            "promulgation_date": date(2024, 5, 6), "place": "Hà Nội", "type": 2,
            "type_detail": 3, "type_name": "Quyết định", "content": "Nội dung",
            "signer": {"competence": "KT. CHỦ TỊCH", "position": "Phó Chủ tịch",
                       "full_name": "Nguyễn Văn A"},
            "due_date": "2024-06-01", "to_places": ["Các sở"], "priority": 4,
            "sphere_of_promulgation": "Nội bộ", "typer_notation": "TVC",
            "promulgation_amount": 10, "page_amount": 2, "direction": True,
            "appendixes": ["Phụ lục I"], "steering_type": 1,
            "response_for": [{"organ_id": "000.00.00.H41", "document_id": "X,1",
                              "promulgation_date": "2024/01/01", "code": "1/X"}],
            "trace": [{"organ_id": "000.00.00.G22", "timestamp": "2024/05/06 10:11:12"}],
            "business": {"doc_type": "update", "reason": "Cập nhật", "paper": 0,
                         "document_id": "old", "staff": {"staff": "Trâm"},
                         "document_info": {"document_info": 1, "document_receiver": 1,
                                           "receivers": [{"organ_id": "H14",
                                                          "receiver_type": 1}]},
                         "replacements": [{"document_id": "older", "organ_ids": ["H14"]}]}}
    package = document_from_metadata(meta)
    assert package.document_id == "custom-id"
    assert package.code == Code("12", "QĐ-UBND")
    assert package.due_date == date(2024, 6, 1) and package.priority == 4
    assert package.business is not None
    assert package.business.doc_type is BusinessDocType.UPDATE
    assert package.business.staff_info == StaffInfo(staff="Trâm")
    assert package.trace_headers[0].timestamp == datetime(2024, 5, 6, 10, 11, 12)
    assert parse_package(build_package(package)) == package


INVALID_METADATA: list[tuple[str, dict[str, Any], str]] = [
    ("missing from", {k: v for k, v in BASE.items() if k != "from"}, "from"),
    ("missing to", {k: v for k, v in BASE.items() if k != "to"}, "to"),
    ("empty to", {**BASE, "to": []}, "to"),
    ("missing subject", {k: v for k, v in BASE.items() if k != "subject"}, "subject"),
    ("blank subject", {**BASE, "subject": "  "}, "subject"),
    ("missing code", {k: v for k, v in BASE.items() if k != "code"}, "code"),
    ("missing date", {k: v for k, v in BASE.items() if k != "promulgation_date"},
     "promulgation_date"),
    ("bad date", {**BASE, "promulgation_date": "06/05/2024"}, "promulgation_date"),
    ("bad sender id", {**BASE, "from": {"organ_id": "vpcp"}}, "from.organ_id"),
    ("bad recipient id", {**BASE, "to": [{"organ_id": "H41"}, {"organ_id": "x y"}]},
     "to[2].organ_id"),
    ("duplicate recipient", {**BASE, "to": [{"organ_id": "H41"}, {"organ_id": "H41"}]}, "to"),
    ("priority 9", {**BASE, "priority": 9}, "priority"),
    ("priority as text", {**BASE, "priority": "2"}, "priority"),
    ("priority as bool", {**BASE, "priority": True}, "priority"),
    ("unknown key", {**BASE, "subjcet": "typo"}, "subjcet"),
    ("unknown nested key", {**BASE, "to": [{"organ_id": "H41", "name": "x"}]}, "to[1].name"),
    ("to not a list", {**BASE, "to": {"organ_id": "H41"}}, "to"),
    ("subject not text", {**BASE, "subject": 5}, "subject"),
    ("direction not bool", {**BASE, "direction": "yes"}, "direction"),
    ("unknown business type", {**BASE, "business": {"doc_type": "delete"}}, "business.doc_type"),
    ("bad trace timestamp", {**BASE, "trace": [{"organ_id": "H41", "timestamp": "today"}]},
     "trace[1].timestamp"),
    ("bad replacement organ",
     {**BASE, "business": {"replacements": [{"document_id": "x", "organ_ids": ["bad"]}]}},
     "business.replacements[1].organ_ids[1]"),
    ("not a table", ["from"], ""),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("meta", "path"),
                         [pytest.param(m, p, id=n) for n, m, p in INVALID_METADATA])
def test_invalid_metadata_is_refused_with_its_key(meta: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidMetadata) as caught:
        document_from_metadata(meta)
    assert (caught.value.path or "") == path
    assert caught.value.code == "envelope.invalid_metadata"


def test_duplicate_attachment_ids_are_refused() -> None:
    same = attachment_from_bytes("a.pdf", b"1")
    with pytest.raises(InvalidMetadata, match="content id"):
        document_from_metadata(BASE, [same, same])
    with pytest.raises(InvalidMetadata, match="ContentId"):
        build_package(replace(document_from_metadata(BASE), attachments=(same, same)))


def test_attachment_from_bytes_is_deterministic_and_zipped() -> None:
    data = "Nội dung văn bản".encode() * 100
    first = attachment_from_bytes("văn bản.docx", data, description="VB")
    second = attachment_from_bytes("văn bản.docx", data, description="VB")
    assert first == second and first.zipped_payload == second.zipped_payload
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert first.content_id.startswith("cid:") and first.content_type == "application/zip"
    assert attachment_from_bytes("other.docx", data).content_id != first.content_id
    assert first.zipped_payload is not None
    with zipfile.ZipFile(io.BytesIO(first.zipped_payload)) as archive:
        [member] = archive.infolist()
        assert member.filename == "văn bản.docx" and member.date_time == (1980, 1, 1, 0, 0, 0)
        assert archive.read(member) == data and archive.comment == ZIP_MARKER
    custom = attachment_from_bytes("../x/y.pdf", b"1", content_type="application/pdf",
                                   content_id="cid:1")
    assert (custom.content_id, custom.content_type) == ("cid:1", "application/pdf")
    assert custom.zipped_payload is not None
    with zipfile.ZipFile(io.BytesIO(custom.zipped_payload)) as archive:
        assert archive.namelist() == [".._x_y.pdf"]  # no directories inside the archive


def test_build_is_deterministic_and_canonical() -> None:
    package = document_from_metadata(BASE, [attachment_from_bytes("a.pdf", b"%PDF")])
    raw = build_package(package)
    assert raw == build_package(package)
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<edXML xmlns="')
    assert b"Signature" not in raw and b"edXML:" not in raw
    assert "V/v kết nối".encode() in raw


@pytest.mark.parametrize(("package", "path"), [
    (replace(document_from_metadata(BASE), other_info=OtherInfo(priority=9)),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/OtherInfo/Priority"),
    (replace(document_from_metadata(BASE), sender=Organization("bad id")),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From/OrganId"),
    (replace(document_from_metadata(BASE), recipients=()),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"),
    (replace(document_from_metadata(BASE), subject="bell \x07"), None),
])
def test_build_refuses_an_invalid_model(package: DocumentPackage, path: str | None) -> None:
    with pytest.raises(InvalidMetadata) as caught:
        build_package(package)
    assert caught.value.path == path


def test_status_package_normalises_time_and_response_for() -> None:
    document = document_from_metadata(BASE)
    aware = datetime(2024, 5, 6, 3, 0, 0, 123456, tzinfo=UTC)
    status = status_package(Organization("000.00.00.H41"), document, StatusCode.ACCEPTED,
                            "Đã tiếp nhận", aware, StaffInfo(staff="Trâm"))
    assert status.timestamp == datetime(2024, 5, 6, 10, 0, 0)
    assert status.response_for == ResponseFor("000.00.00.G22", "7816/VPCP-TTĐT",
                                              date(2024, 5, 6), document.document_id)
    assert status.document_id == document.document_id
    plus_seven = timezone(timedelta(hours=7))
    by_id = status_package(Organization("H41"), "D-1", StatusCode.COMPLETED, "",
                           datetime(2024, 5, 6, 10, 0, tzinfo=plus_seven))
    assert by_id.response_for == ResponseFor(document_id="D-1")
    assert by_id.timestamp == datetime(2024, 5, 6, 10, 0)
    assert isinstance(parse_package(build_package(status)), StatusPackage)
    with pytest.raises(InvalidMetadata):
        status_package(Organization("H41"), " ", StatusCode.ARRIVED, "", datetime(2024, 1, 1))


def test_the_documented_metadata_example_builds() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "edxml.md").read_text("utf-8")
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    package = document_from_metadata(tomllib.loads(example))
    assert package.business is not None
    assert package.business.doc_type is BusinessDocType.NEW
    assert package.recipients[0].organ_name == "UBND Tỉnh Nghệ An"
    assert parse_package(build_package(package)) == package
