"""The CA's revocation at the hub, end to end on the real broker: a CRL served over HTTP, a
real OCSP responder (``openssl ocsp``), stale material under fail_closed and under warn,
and the revocation evidence in the bundle an auditor verifies offline."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from axis.commands.evidence_cmd import bundle_of
from axis.evidence.audit import verify_bundle
from axis.evidence.bundle import RevocationFile, read_bundle, write_bundle
from axis.revocation import RevocationService, service_for
from axis.store_revocation import revocation_of_consignment
from signing.keys import load_certificate
from signing.pki import Credential
from signing.verify import VerifyPolicy
from tests.clikit import organ
from tests.hubkit import Agency, HubKit, document
from tests.revocationkit import CrlServer, OpensslOcsp, make_crl

pytestmark = pytest.mark.rabbitmq
MINUTE = timedelta(minutes=1)


def _ca(kit: HubKit) -> Credential:
    return Credential(kit.pki.ca_key.read_bytes(), kit.pki.ca_cert.read_bytes())


def _cert(agency: Agency) -> x509.Certificate:
    return load_certificate(agency.paths.cert.read_bytes())


async def _with_revocation(kit: HubKit, **settings: Any) -> RevocationService:
    """Restart the kit's hub with the revocation service its settings (changed) ask for."""
    service = service_for(dataclasses.replace(kit.settings, **settings),
                          on_warning=kit.metrics.revocation_warning,
                          on_fetch_failure=kit.metrics.revocation_fetch_failed)  # fmt: skip
    assert service is not None
    await kit.stop_hub()
    await kit.start_hub(revocation=service)
    return service


async def _send(sender: Agency, to: Agency) -> tuple[str, Any]:
    consignment = await sender.client.send(sender.client.sign(
        document(sender.organ_id, [to.organ_id])))  # fmt: skip
    return consignment, (await sender.client.wait_receipt(consignment, 15)).receipt


async def test_a_signer_the_ca_revoked_in_its_crl_is_refused_with_the_reason(kit: HubKit) -> None:
    with CrlServer() as server:
        url = server.url("/axis-ca.crl")
        revoked = await kit.agency(organ("A"), crl_urls=(url,))
        listed = datetime.now(UTC) - 10 * MINUTE
        server.files["/axis-ca.crl"] = make_crl(
            _ca(kit), datetime.now(UTC) - MINUTE,
            [(_cert(revoked).serial_number, listed, x509.ReasonFlags.key_compromise)])
        good = await kit.agency(organ("B"), crl_urls=(url,))
        plain = await kit.agency(organ("C"))  # names no distribution point: nothing to check
        await _with_revocation(kit)
        _, refused = await _send(revoked, good)
        assert refused.event == "rejected"
        assert refused.error_code == "signature.revoked_certificate"
        assert "keyCompromise" in refused.reason and listed.isoformat()[:19] in refused.reason
        assert url in refused.reason
        for sender in (good, plain):
            assert (await _send(sender, revoked))[1].event == "accepted"
        assert server.requests["/axis-ca.crl"] == 1  # fetched once, kept until nextUpdate


async def test_an_ocsp_responder_decides_and_its_answer_goes_into_the_bundle(
    kit: HubKit, tmp_path: Path
) -> None:
    responder = OpensslOcsp(tmp_path / "ocsp", _ca(kit))
    good = await kit.agency(organ("A"), ocsp_url=responder.url)
    revoked = await kit.agency(organ("B"), ocsp_url=responder.url)
    responder.add(_cert(good))
    responder.add(_cert(revoked), datetime.now(UTC) - 5 * MINUTE, "cessationOfOperation")
    with responder:
        await _with_revocation(kit, revocation_ocsp_cas=("*",))
        consignment, accepted = await _send(good, revoked)
        assert accepted.event == "accepted"
        _, refused = await _send(revoked, good)
    assert refused.error_code == "signature.revoked_certificate"
    assert "cessationOfOperation" in refused.reason and responder.url in refused.reason
    [kept] = revocation_of_consignment(kit.store.engine, good.organ_id, consignment)
    assert kept.kind == "ocsp" and kept.produced_at is not None
    await _audit_the_bundle(kit, good, consignment, kept.der)


async def _audit_the_bundle(kit: HubKit, sender: Agency, consignment: str, der: bytes) -> None:
    bundle = read_bundle(write_bundle(bundle_of(await sender.client.evidence(consignment),
                                                with_package=False)))  # fmt: skip
    assert bundle.revocation == (RevocationFile("ocsp", der),)
    policy = VerifyPolicy(at=datetime.now(UTC), trust_anchors=(_ca(kit).certificate,))
    report = verify_bundle(bundle, policy)
    assert report.ok, report.to_dict()
    assert any("vouches" in fact and consignment in fact for fact in report.facts)
    # The CA's CRL listing the signer before the hub accepted: the audit says so.
    accepted_at = report.receipts[0].receipt.hub_time
    crl = make_crl(_ca(kit), accepted_at, [(_cert(sender).serial_number, accepted_at - MINUTE,
                                            x509.ReasonFlags.key_compromise)])  # fmt: skip
    contradicted = verify_bundle(dataclasses.replace(
        bundle, revocation=(*bundle.revocation, RevocationFile("crl", crl))), policy)
    assert contradicted.error is not None and contradicted.error.code == "audit.signer_revoked"
    foreign = verify_bundle(dataclasses.replace(
        bundle, revocation=(RevocationFile("ocsp", b"garbage"),)), policy)
    assert foreign.error is not None and foreign.error.code == "audit.revocation_invalid"


async def test_a_stale_crl_refuses_under_fail_closed_and_is_counted_under_warn(
    kit: HubKit, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    with CrlServer() as server:
        url = server.url("/stale.crl")
        server.files["/stale.crl"] = make_crl(_ca(kit), now - timedelta(days=2),
                                              next_update=now - timedelta(hours=2))
        await _with_revocation(kit, revocation_grace_seconds=60)
        # Registered after the hub started: its CRL is fetched when it first submits.
        sender = await kit.agency(organ("A"), crl_urls=(url,))
        recipient = await kit.agency(organ("B"))
        _, refused = await _send(sender, recipient)
        assert refused.error_code == "signature.revocation_stale"
        assert url in refused.reason and "stale" in refused.reason
        await _with_revocation(kit, revocation="warn", revocation_grace_seconds=60)
        with caplog.at_level(logging.WARNING, logger="axis.revocation"):
            assert (await _send(sender, recipient))[1].event == "accepted"
    warned = kit.metrics.registry.get_sample_value("axis_revocation_warnings_total",
                                                   {"state": "stale"})  # fmt: skip
    assert warned == 1
    line = next(r.getMessage() for r in caplog.records if "accepted a package" in r.getMessage())
    assert url in line and _ca(kit).certificate.subject.rfc4514_string() in line
