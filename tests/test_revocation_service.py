"""The hub's revocation service without the broker: where material comes from (CRL files,
distribution points over HTTP), what it does when a fetch fails, its settings; the
evidence kept in the store (SQLite and PostgreSQL) and in bundles."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from axis.errors import InvalidSettings
from axis.evidence.bundle import Bundle, BundleEntry, RevocationFile, read_bundle, write_bundle
from axis.evidence.errors import BundleMalformed
from axis.registry import CertInfo, RegistrySnapshot, SystemInfo
from axis.revocation import RevocationConfig, RevocationService, service_for
from axis.settings import Settings, load_settings, write_default_config
from axis.store import Store
from axis.store_revocation import revocation_of_consignment, revocation_of_document
from routing.values import SubmissionRecord
from signing.keys import fingerprint
from signing.pki import Credential, issue_agency, new_ca
from signing.revocation import RevocationEvidence, RevocationState
from tests.revocationkit import CrlServer, make_crl

NOW = datetime.now(UTC).replace(microsecond=0)
SECOND, MINUTE, HOUR, DAY = (timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1),
                             timedelta(days=1))  # fmt: skip
CA = new_ca("Axis Test CA", NOW - 30 * DAY)
STRANGER_CA = new_ca("Stranger CA", NOW - 30 * DAY)


def _agency(ca: Credential = CA, **pointers: object) -> x509.Certificate:
    return issue_agency(ca, "000.00.00.G22", "VPCP", NOW - DAY, key_type="ec",
                        **pointers).certificate  # type: ignore[arg-type]  # fmt: skip


def _registry(*certs: x509.Certificate) -> RegistrySnapshot:
    pem = [c.public_bytes(Encoding.PEM) for c in certs]
    infos = {fingerprint(c): CertInfo(fingerprint(c), p, c.not_valid_before_utc,
                                      c.not_valid_after_utc, False)
             for c, p in zip(certs, pem, strict=True)}  # fmt: skip
    return RegistrySnapshot({"S": SystemInfo("S", "S", True, infos)}, {}, {})


def _service(**config: object) -> tuple[RevocationService, list[str]]:
    failures: list[str] = []
    settings = {"cas": (CA.certificate,), **config}
    service = RevocationService(RevocationConfig(**settings),  # type: ignore[arg-type]
                                on_fetch_failure=failures.append)  # fmt: skip
    return service, failures


def test_nothing_to_check_is_none_and_an_unknown_issuer_naming_a_source_is_unavailable() -> None:
    service, _ = _service()
    assert service.status(_agency(), NOW) is None
    assert service.status(_agency(STRANGER_CA), NOW) is None
    named = service.status(_agency(STRANGER_CA, crl_urls=("http://ca.invalid/x.crl",)), NOW)
    assert named is not None and named.state is RevocationState.UNAVAILABLE
    assert "not among the hub's CAs" in named.detail


def test_crl_files_answer_for_their_ca_and_a_broken_one_fails_closed(tmp_path: Path) -> None:
    cert = _agency()
    listed, broken = tmp_path / "ca.crl", tmp_path / "broken.crl"
    listed.write_bytes(make_crl(CA, NOW - HOUR, [(cert.serial_number, NOW - DAY, None)]))
    service, _ = _service(crl_files=(listed,))
    assert service.refresh(_registry(), NOW)
    revoked = service.status(cert, NOW)
    assert revoked is not None and revoked.state is RevocationState.REVOKED
    assert str(listed) in revoked.detail and service.status(_agency(), NOW) is not None
    assert service.status(_agency(STRANGER_CA), NOW) is None  # the file is CA's only
    broken.write_bytes(b"not a CRL")
    service, failures = _service(crl_files=(broken,))
    service.refresh(_registry(), NOW)
    status = service.status(_agency(), NOW)  # names nothing, yet a configured CRL is broken
    assert status is not None and status.state is RevocationState.INVALID
    assert failures == ["crl"]


def test_a_distribution_point_is_fetched_once_until_due_and_kept_when_it_fails() -> None:
    with CrlServer() as server:
        url = server.url("/ca.crl")
        cert = _agency(crl_urls=(url,))
        server.files["/ca.crl"] = make_crl(CA, NOW - MINUTE, next_update=NOW + HOUR)
        service, failures = _service(refresh_seconds=60.0)
        first = service.status(cert, NOW)
        assert first is not None and first.state is RevocationState.UNAVAILABLE
        assert service.refresh(_registry(cert), NOW)
        assert not service.refresh(_registry(cert), NOW + 2 * MINUTE)  # not due before nextUpdate
        del server.files["/ca.crl"]  # the server loses it: 404 from now on
        assert service.refresh(_registry(cert), NOW + HOUR)
        kept = service.status(cert, NOW + HOUR)
        assert kept is not None and kept.state is RevocationState.GOOD  # within the grace
        assert server.requests["/ca.crl"] == 2 and failures == ["crl"]
        # A failed source waits its interval before it is tried again.
        assert not service.refresh(_registry(cert), NOW + HOUR + 30 * SECOND)
        stale = service.status(cert, NOW + 3 * HOUR)
        assert stale is not None and stale.state is RevocationState.STALE


def test_an_oversized_crl_is_not_taken() -> None:
    with CrlServer() as server:
        url = server.url("/big.crl")
        cert = _agency(crl_urls=(url,))
        server.files["/big.crl"] = make_crl(CA, NOW - MINUTE, [(n, NOW - DAY, None)
                                                               for n in range(1, 200)])
        service, _ = _service(max_bytes=1024)
        service.refresh(_registry(cert), NOW)
        status = service.status(cert, NOW)
    assert status is not None and status.state is RevocationState.UNAVAILABLE
    assert "more than 1024 bytes" in status.detail and url in status.detail


def _settings(tmp_path: Path, **changes: object) -> Settings:
    write_default_config(tmp_path)
    return dataclasses.replace(load_settings(tmp_path, {}), **changes)  # type: ignore[arg-type]


def test_settings(tmp_path: Path) -> None:
    assert service_for(_settings(tmp_path, revocation="off")) is None
    default = service_for(_settings(tmp_path))  # no pki/ca.pem here: no CA, nothing checked
    assert default is not None and default.fail_closed and default.config.cas == ()
    (tmp_path / "ca.pem").write_bytes(CA.cert_pem)
    service = service_for(_settings(tmp_path, revocation="warn", revocation_ca_files=["ca.pem"],
                                    revocation_ocsp_cas=[fingerprint(CA.certificate).upper()]))
    assert service is not None and not service.fail_closed
    assert service.config.ocsp_cas == {fingerprint(CA.certificate)}
    for wrong in ({"revocation": "maybe"}, {"revocation_ocsp_cas": ["abc"]},
                  {"revocation_crl_files": "one.crl"}, {"revocation_grace_seconds": -1}):
        with pytest.raises(InvalidSettings):
            _settings(tmp_path, **wrong)
    with pytest.raises(InvalidSettings, match="not the fingerprint"):
        service_for(_settings(tmp_path, revocation_ocsp_cas=["ab" * 32]))
    with pytest.raises(InvalidSettings, match="cannot be read"):
        service_for(_settings(tmp_path, revocation_ca_files=["missing.pem"]))


def _evidence(number: int) -> RevocationEvidence:
    return RevocationEvidence("crl", make_crl(CA, NOW - HOUR, number=number),
                              CA.certificate.subject.rfc4514_string(), NOW - HOUR, NOW + DAY,
                              crl_number=2**100 + number, source="http://ca/x.crl")  # fmt: skip


def _record(message_id: str, evidence: RevocationEvidence | None) -> SubmissionRecord:
    return SubmissionRecord(
        user_id="000.00.00.G22", message_id=message_id, kind="edoc", sha256=message_id * 4,
        outcome="accepted", raw=b"<edXML/>", receipt=b"<receipt/>", received_at=NOW,
        document_id=f"doc-{message_id}", sender_organ="000.00.00.G22",
        document_organ="000.00.00.G22", revocation=evidence)  # fmt: skip


@pytest.mark.usefixtures("store")
def test_the_store_keeps_each_material_once_and_links_every_submission(store: Store) -> None:
    store.add_system("000.00.00.G22", "VPCP")
    shared = _evidence(7)
    stored = store.record_submissions([(_record("m1", shared), [], []),
                                       (_record("m2", shared), [], []),
                                       (_record("m3", None), [], [])])  # fmt: skip
    assert all(isinstance(r, SubmissionRecord) for r in stored)
    store.record_submission(_record("m4", _evidence(8)), [], [])
    assert revocation_of_consignment(store.engine, "000.00.00.G22", "m1") == [shared]
    assert revocation_of_consignment(store.engine, "000.00.00.G22", "m2") == [shared]
    assert revocation_of_consignment(store.engine, "000.00.00.G22", "m3") == []
    assert revocation_of_document(store.engine, "000.00.00.G22", "doc-m2",
                                  ["000.00.00.G22"]) == [shared]  # fmt: skip
    assert revocation_of_document(store.engine, "000.00.00.G22", "doc-m2", ["other"]) == []
    with store.engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM revocation_material").scalar()
    assert count == 2


def _bundle(revocation: tuple[RevocationFile, ...] = ()) -> Bundle:
    return Bundle(subject={"document_organ": None, "document_id": None, "consignment": "m1"},
                  head=b"<head/>", timestamp=None, hub_certificate=b"pem",
                  entries=(BundleEntry("receipt", 0, b"<receipt/>", ()),), package=None,
                  exported_at=NOW, revocation=revocation)  # fmt: skip


def test_bundles_without_revocation_keep_their_manifest_and_with_it_round_trip() -> None:
    plain = write_bundle(_bundle())
    assert b"revocation" not in plain and read_bundle(plain) == _bundle()
    material = (RevocationFile("crl", make_crl(CA, NOW)),)
    data = write_bundle(_bundle(material))
    assert read_bundle(data) == _bundle(material) and write_bundle(read_bundle(data)) == data
    renamed = data.replace(material[0].file.encode(), b"revocation/" + b"0" * 64 + b".crl")
    with pytest.raises(BundleMalformed):
        read_bundle(renamed)
