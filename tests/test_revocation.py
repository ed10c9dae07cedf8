"""The pure revocation check: CRLs and OCSP responses made with cryptography, judged at a
given time (good, revoked with reason and date, unknown, stale, invalid material)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from signing.errors import RevocationInvalid, RevocationStale, RevocationUnavailable
from signing.ocsp import check_ocsp, ocsp_request
from signing.pki import issue_agency, new_ca
from signing.revocation import (
    RevocationState,
    RevocationStatus,
    check_crl,
    load_crl,
    refusal,
    unavailable,
)
from tests.revocationkit import make_crl, make_ocsp, ocsp_responder

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
CA = new_ca("Axis Test CA", NOW - 30 * DAY)
OTHER_CA = new_ca("Axis Test CA", NOW - 30 * DAY)  # same name, another key
AGENCY = issue_agency(CA, "000.00.00.G22", "Văn phòng Chính phủ", NOW - DAY, key_type="ec")
CERT = AGENCY.certificate
SERIAL = CERT.serial_number
STRANGER = issue_agency(OTHER_CA, "000.00.00.H41", "Bộ Y tế", NOW - DAY, key_type="ec")
KEY_COMPROMISE = x509.ReasonFlags.key_compromise
_DER = Encoding.DER


def _revoked(when: datetime, reason: x509.ReasonFlags | None = KEY_COMPROMISE) -> list[
        tuple[int, datetime, x509.ReasonFlags | None]]:  # fmt: skip
    return [(SERIAL + 1, NOW - 2 * DAY, None), (SERIAL, when, reason)]


CRL_CASES: dict[str, tuple[Callable[[], bytes], datetime, str]] = {
    "not listed": (lambda: make_crl(CA, NOW - HOUR), NOW, "good"),
    "PEM form": (lambda: _pem_crl(make_crl(CA, NOW - HOUR)), NOW, "good"),
    "listed: revoked": (lambda: make_crl(CA, NOW - HOUR, _revoked(NOW - DAY)), NOW, "revoked"),
    "listed, no reason": (lambda: make_crl(CA, NOW - HOUR, _revoked(NOW - DAY, None)), NOW,
                          "revoked"),
    "revoked only after the time": (
        lambda: make_crl(CA, NOW + DAY, _revoked(NOW + HOUR)), NOW, "good"),
    "past nextUpdate within grace": (
        lambda: make_crl(CA, NOW - 2 * DAY, next_update=NOW - 5 * MINUTE), NOW, "good"),
    "past nextUpdate beyond grace": (
        lambda: make_crl(CA, NOW - 2 * DAY, next_update=NOW - 2 * HOUR), NOW, "stale"),
    "stale and listed: revoked wins": (
        lambda: make_crl(CA, NOW - 2 * DAY, _revoked(NOW - 3 * DAY),
                         next_update=NOW - 2 * HOUR), NOW, "revoked"),
    "signed by another key under the CA's name": (
        lambda: make_crl(CA, NOW - HOUR, signer=OTHER_CA), NOW, "invalid"),
    "another CA's CRL": (lambda: make_crl(new_ca("Other CA", NOW - DAY), NOW - HOUR), NOW,
                         "invalid"),
    "a delta CRL": (lambda: make_crl(CA, NOW - HOUR, number=3, delta=True), NOW, "invalid"),
    "garbage": (lambda: b"\x30\x03\x02\x01\x00", NOW, "invalid"),
    "empty": (lambda: b"", NOW, "invalid"),
}


def _pem_crl(der: bytes) -> bytes:
    return x509.load_der_x509_crl(der).public_bytes(Encoding.PEM)


@pytest.mark.parametrize("case", CRL_CASES, ids=str)
def test_crl(case: str) -> None:
    make, at, expected = CRL_CASES[case]
    status = check_crl(CERT, CA.certificate, make(), at, grace=HOUR, source="http://ca/crl")
    assert status.state == expected, status.detail
    assert status.detail
    if expected in ("good", "revoked", "stale"):
        assert status.evidence is not None and status.evidence.kind == "crl"
        assert status.evidence.issuer == CA.certificate.subject.rfc4514_string()


def test_a_revoked_answer_names_the_reason_the_date_and_the_crl() -> None:
    crl = make_crl(CA, NOW - HOUR, _revoked(NOW - DAY), number=42)
    status = check_crl(CERT, CA.certificate, crl, NOW, source="http://ca/crl")
    assert status.state is RevocationState.REVOKED
    assert status.reason == "keyCompromise" and status.revoked_at == NOW - DAY
    assert "keyCompromise" in status.detail and (NOW - DAY).isoformat() in status.detail
    assert "number 42" in status.detail and "http://ca/crl" in status.detail
    assert status.evidence is not None and status.evidence.crl_number == 42
    assert status.evidence.this_update == NOW - HOUR


def test_a_stale_answer_says_when_the_next_update_was_due() -> None:
    status = check_crl(CERT, CA.certificate, make_crl(CA, NOW - 2 * DAY, next_update=NOW - DAY),
                       NOW, grace=HOUR)  # fmt: skip
    assert status.state is RevocationState.STALE
    assert (NOW - DAY).isoformat() in status.detail and "3600 s" in status.detail


def test_a_certificate_of_another_ca_is_not_judged_by_this_one() -> None:
    status = check_crl(STRANGER.certificate, CA.certificate, make_crl(CA, NOW - HOUR), NOW)
    assert status.state is RevocationState.INVALID and "not issued by" in status.detail


def test_a_loaded_crl_is_indexed_once_and_refuses_bad_material_with_a_code() -> None:
    checked = load_crl(make_crl(CA, NOW - HOUR, _revoked(NOW - DAY)), CA.certificate)
    assert set(checked.revoked) == {SERIAL, SERIAL + 1}
    with pytest.raises(RevocationInvalid):
        load_crl(make_crl(CA, NOW - HOUR, signer=OTHER_CA), CA.certificate)


def _good(**kw: object) -> bytes:
    return make_ocsp(CERT, CA, ocsp.OCSPCertStatus.GOOD, NOW - HOUR, **kw)  # type: ignore[arg-type]


OCSP_CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "good, signed by the CA": (lambda: _good(), "good"),
    "revoked": (lambda: make_ocsp(CERT, CA, ocsp.OCSPCertStatus.REVOKED, NOW - HOUR,
                                  revoked_at=NOW - DAY, reason=KEY_COMPROMISE), "revoked"),
    "unknown": (lambda: make_ocsp(CERT, CA, ocsp.OCSPCertStatus.UNKNOWN, NOW - HOUR), "unknown"),
    "stale": (lambda: make_ocsp(CERT, CA, ocsp.OCSPCertStatus.GOOD, NOW - DAY,
                                next_update=NOW - 2 * HOUR), "stale"),
    "delegated responder for OCSP": (lambda: _good(responder=ocsp_responder(CA, NOW)), "good"),
    "delegated responder not for OCSP": (
        lambda: _good(responder=ocsp_responder(CA, NOW, for_ocsp=False)), "invalid"),
    "responder of another CA": (lambda: _good(responder=ocsp_responder(OTHER_CA, NOW)),
                                "invalid"),
    "bad signature": (lambda: _flip_last_byte(_good()), "invalid"),
    "about another certificate": (
        lambda: make_ocsp(issue_agency(CA, "000.00.00.H41", "Bộ Y tế", NOW - DAY,
                                       key_type="ec").certificate, CA,
                          ocsp.OCSPCertStatus.GOOD, NOW - HOUR), "invalid"),
    "try later": (lambda: ocsp.OCSPResponseBuilder.build_unsuccessful(
        ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(_DER), "unavailable"),
    "garbage": (lambda: b"not an OCSP response", "invalid"),
}


def _flip_last_byte(der: bytes) -> bytes:  # the signature value ends the response
    return der[:-1] + bytes([der[-1] ^ 1])




@pytest.mark.parametrize("case", OCSP_CASES, ids=str)
def test_ocsp(case: str) -> None:
    make, expected = OCSP_CASES[case]
    status = check_ocsp(CERT, CA.certificate, make(), NOW, grace=HOUR, source="http://ocsp/")
    assert status.state == expected, status.detail
    if expected in ("good", "revoked", "stale", "unknown"):
        assert status.evidence is not None and status.evidence.kind == "ocsp"
        assert status.evidence.produced_at is not None


def test_an_ocsp_revocation_names_reason_and_date() -> None:
    der = make_ocsp(CERT, CA, ocsp.OCSPCertStatus.REVOKED, NOW - HOUR, revoked_at=NOW - DAY,
                    reason=x509.ReasonFlags.cessation_of_operation)  # fmt: skip
    status = check_ocsp(CERT, CA.certificate, der, NOW)
    assert (status.state, status.reason, status.revoked_at) == (
        RevocationState.REVOKED, "cessationOfOperation", NOW - DAY)
    assert status.evidence is not None and status.evidence.der == der


def test_the_ocsp_request_names_the_certificate() -> None:
    request = ocsp.load_der_ocsp_request(ocsp_request(CERT, CA.certificate))
    assert request.serial_number == SERIAL


@pytest.mark.parametrize(("state", "error"), [
    (RevocationState.STALE, RevocationStale),
    (RevocationState.UNAVAILABLE, RevocationUnavailable),
    (RevocationState.UNKNOWN, RevocationUnavailable),
    (RevocationState.INVALID, RevocationInvalid),
    (RevocationState.GOOD, None),
    (RevocationState.REVOKED, None),
])  # fmt: skip
def test_refusal_codes(state: RevocationState, error: type[Exception] | None) -> None:
    refused = refusal(RevocationStatus(state, "why", "CN=CA", "http://ca/crl"))
    assert (type(refused) if refused is not None else None) is error
    if refused is not None:
        assert refused.reason == "why" and refused.detail["source"] == "http://ca/crl"


def test_unavailable_is_a_status_not_an_exception() -> None:
    assert unavailable("nothing fetched yet").state is RevocationState.UNAVAILABLE


def test_issued_agency_certificates_name_where_to_ask() -> None:
    cert = issue_agency(CA, "000.00.00.G22", "VPCP", NOW, crl_urls=("http://ca/a.crl",),
                        ocsp_url="http://ocsp/").certificate  # fmt: skip
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in points for n in p.full_name or ()] == ["http://ca/a.crl"]
    access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [a.access_location.value for a in access] == ["http://ocsp/"]
    assert not _has(AGENCY.certificate, x509.CRLDistributionPoints)


def _has(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> bool:
    return any(isinstance(e.value, kind) for e in cert.extensions)
