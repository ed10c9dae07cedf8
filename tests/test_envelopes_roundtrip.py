"""Property: parsing what the builder wrote gives back the same model."""

from __future__ import annotations

from datetime import date, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envelopes.builder import attachment_from_bytes, build_package
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
    StatusPackage,
    TraceHeader,
)
from envelopes.parser import parse_package
from envelopes.status_codes import StatusCode

VIETNAMESE = "aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợ" \
             "ùủũúụừửữứựỳỷỹýỵĐĂÂÊÔƠƯ ,.-/()0123456789"
# Any character XML 1.0 can carry, with Vietnamese letters made likely.
XML_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
text = st.text(st.one_of(st.sampled_from(VIETNAMESE), XML_CHARS, st.sampled_from("\t\n\r&<>\"'")),
               max_size=40)
word = st.text(st.sampled_from(VIETNAMESE.replace(" ", "") + "ABCXYZ_:"), min_size=1, max_size=12)
token = st.lists(word, min_size=1, max_size=3).map(" ".join)  # canonical xs:token
organ_id = st.one_of(
    st.from_regex(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}", fullmatch=True),
    st.from_regex(r"[A-Z0-9]{1,6}(\.[A-Z0-9]{1,6}){0,4}", fullmatch=True),
)
days = st.dates(date(1990, 1, 1), date(2100, 12, 31))
moments = st.datetimes(datetime(1990, 1, 1), datetime(2100, 12, 31)).map(
    lambda d: d.replace(microsecond=0))
small = st.integers(0, 100_000)

organizations = st.builds(Organization, organ_id, text, text, text, text, text, text, text)
staff = st.builds(StaffInfo, text, text, text, text)
response_for = st.builds(ResponseFor, st.one_of(st.just(""), organ_id), text,
                         st.none() | days, st.one_of(st.just(""), token))
business = st.builds(
    BusinessInfo,
    doc_type=st.sampled_from(BusinessDocType), reason=text, paper=st.none() | small,
    document_id=st.one_of(st.just(""), token), staff_info=st.none() | staff,
    document_info=st.none() | st.builds(
        BusinessDocumentInfo, st.none() | small, st.none() | small,
        st.lists(st.builds(Receiver, organ_id, st.none() | small), max_size=3).map(tuple)),
    replacements=st.lists(st.builds(ReplacementInfo, token,
                                    st.lists(organ_id, max_size=3).map(tuple)),
                          max_size=2).map(tuple),
)
zipped_attachments = st.builds(
    attachment_from_bytes, text.filter(str.strip), st.binary(max_size=3000),
    description=text, content_type=st.none() | st.sampled_from(["application/zip"]),
    content_id=st.none() | word.map(lambda w: f"cid:{w}"))
plain_attachments = st.builds(
    Attachment, word.map(lambda w: f"cid:plain-{w}"), text, st.binary(min_size=1, max_size=3000),
    description=text,
    content_type=st.sampled_from(["application/pdf", "text/plain; charset=utf-8",
                                  "application/vnd.ms-word"]))
attachments = st.lists(zipped_attachments | plain_attachments, max_size=2,
                       unique_by=lambda a: a.content_id).map(tuple)

documents = st.builds(
    DocumentPackage,
    sender=organizations,
    recipients=st.lists(organizations, min_size=1, max_size=3).map(tuple),
    document_id=token,
    code=st.builds(Code, text, text),
    promulgation_info=st.builds(PromulgationInfo, days, text),
    document_type=st.builds(DocumentType, st.integers(0, 9), text, st.none() | small),
    subject=text,
    content=text,
    signer_info=st.none() | st.builds(SignerInfo, text, text, text),
    due_date=st.none() | days,
    to_places=st.lists(text, max_size=3).map(tuple),
    other_info=st.none() | st.builds(
        OtherInfo, st.integers(0, 4), text, text, st.none() | small, st.none() | small,
        st.none() | st.booleans(), st.lists(text, max_size=2).map(tuple)),
    response_for=st.lists(response_for, max_size=2).map(tuple),
    steering_type=st.none() | small,
    trace_headers=st.lists(st.builds(TraceHeader, organ_id, moments), max_size=3).map(tuple),
    business=st.none() | business,
    attachments=attachments,
)
statuses = st.builds(
    StatusPackage,
    sender=organizations,
    response_for=st.builds(ResponseFor, st.one_of(st.just(""), organ_id), text,
                           st.none() | days, token),
    status_code=st.sampled_from(StatusCode),
    timestamp=moments,
    description=text,
    staff_info=st.none() | staff,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_document_round_trip(package: DocumentPackage) -> None:
    raw = build_package(package)
    assert parse_package(raw) == package
    assert build_package(parse_package(raw)) == raw


@settings(max_examples=150, deadline=None)
@given(statuses)
def test_status_round_trip(package: StatusPackage) -> None:
    raw = build_package(package)
    assert parse_package(raw) == package
    assert build_package(parse_package(raw)) == raw
