"""The evidence log in the store, on SQLite and PostgreSQL: what is appended, one sequence
across processes, proofs against signed heads, RFC 3161 stamps, tamper detection."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from axis.evidence import merkle
from axis.evidence.bundle import entry_bytes
from axis.evidence.errors import LogTampered
from axis.evidence.heads import verify_head
from axis.evidence.log import REGISTRY
from axis.evidence.service import EvidenceService
from axis.evidence.timestamps import verify_timestamp
from axis.store import Store
from axis.store_model import HEADS, LOG
from signing.keys import SigningKey
from signing.verify import VerifyPolicy
from tests.test_signing_helpers import SigningPki
from tests.tsa import LocalTsa

G22, H41 = "000.00.00.G22", "000.00.00.H41"


def _pem(pki: SigningPki) -> bytes:
    return pki.agency_rsa.certificate.public_bytes(serialization.Encoding.PEM)


def _hub_key(pki: SigningPki) -> SigningKey:
    return pki.hub.signing_key()


def _policy(pki: SigningPki) -> VerifyPolicy:
    return VerifyPolicy(at=datetime.now(UTC), trust_anchors=pki.anchors)


def _registry(store: Store) -> list[dict[str, object]]:
    return [json.loads(e.payload) for e in store.log_entries_about(registry_of=G22)]


def test_every_registry_change_is_logged_in_order(store: Store, pki: SigningPki) -> None:
    store.add_system(G22, "Văn phòng Chính phủ", serves=[H41])
    cert = store.add_certificate(G22, _pem(pki))
    store.set_system_active(G22, False)
    store.set_system_active(G22, True)
    store.revoke_certificate(G22, cert.fingerprint)
    changes = _registry(store)
    assert [c["change"] for c in changes] == [
        "system_registered", "organ_served", "certificate_added", "system_suspended",
        "system_resumed", "certificate_revoked"]  # fmt: skip
    assert changes[0]["name"] == "Văn phòng Chính phủ"
    assert changes[1]["organs"] == sorted([G22, H41])
    assert changes[2]["fingerprint"] == cert.fingerprint == changes[5]["fingerprint"]
    assert str(changes[2]["certificate"]).startswith("-----BEGIN CERTIFICATE-----")
    raw = store.log_entries_about(registry_of=G22)[0].payload
    assert "Văn".encode() in raw and b" " not in raw.replace("Văn phòng Chính phủ".encode(), b"")
    assert store.log_size() == 6


def _append_registrations(url: str, prefix: str, count: int) -> None:
    store = Store(url)
    for n in range(count):
        store.add_system(f"{prefix}.{n:02d}", f"system {n}")
    store.dispose()


def test_several_processes_append_one_sequence(store: Store, db_url: str) -> None:
    """Hub workers and operator commands append concurrently: no gap, no fork."""
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_append_registrations, args=(db_url, f"000.00.0{i}.A", 15))
             for i in range(3)]  # fmt: skip
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    size = store.log_size()
    assert size == 3 * 15 * 2  # system_registered + organ_served each
    with store.engine.connect() as conn:
        indexes = [int(i) for i in conn.execute(sa.select(LOG.c.idx).order_by(LOG.c.idx))
                   .scalars()]  # fmt: skip
    assert indexes == list(range(size))
    assert store.recompute_root(size) == store.root_at(size)


def test_proofs_lead_to_a_signed_head(store: Store, pki: SigningPki) -> None:
    for n in range(40):
        store.add_system(f"000.00.00.B{n:02d}", f"system {n}")
    service = EvidenceService(store, _hub_key(pki))
    made = service.make_head()
    assert made is not None and made.tree_size == 80
    assert service.make_head() is None  # the log did not grow: no new head
    head = verify_head(made.signed, _policy(pki)).head
    for index in (0, 1, 41, 79):
        entry = store.log_entry(index)
        proof = store.inclusion_proof(index, head.tree_size)
        assert merkle.verify_inclusion(index, head.tree_size, entry.leaf_hash, proof,
                                       head.root_hash)  # fmt: skip
        assert entry.leaf_hash == merkle.leaf_hash(entry_bytes(entry.type, entry.payload))
    store.add_system("000.00.00.C01", "one more")
    later = service.make_head()
    assert later is not None
    proof = store.consistency_proof(made.tree_size, later.tree_size)
    assert merkle.verify_consistency(made.tree_size, later.tree_size, made.root_hash,
                                     later.root_hash, proof)  # fmt: skip
    assert [h.tree_size for h in store.list_heads()] == [82, 80]


def test_the_check_finds_an_edited_deleted_or_rehashed_entry(store: Store, pki: SigningPki) -> None:
    for n in range(5):
        store.add_system(f"000.00.00.D{n:02d}", f"system {n}")
    service = EvidenceService(store, _hub_key(pki))
    service.make_head()
    service.check()  # untouched
    alterations = [
        sa.update(LOG).where(LOG.c.idx == 3).values(payload=b"{}"),
        sa.update(LOG).where(LOG.c.idx == 3).values(
            payload=b"{}", leaf_hash=merkle.leaf_hash(entry_bytes(REGISTRY, b"{}"))),
        sa.delete(LOG).where(LOG.c.idx == 3),
    ]  # fmt: skip
    for alteration in alterations:
        with store.engine.begin() as conn:
            original = conn.execute(sa.select(LOG).where(LOG.c.idx == 3)).first()
            conn.execute(alteration)
        with pytest.raises(LogTampered):
            service.check()
        with store.engine.begin() as conn:  # put it back for the next alteration
            conn.execute(sa.delete(LOG).where(LOG.c.idx == 3))
            assert original is not None
            conn.execute(sa.insert(LOG).values(**original._mapping))
        service.check()


def test_a_forged_head_is_refused_by_the_check(store: Store, pki: SigningPki) -> None:
    store.add_system("000.00.00.E01", "system")
    service = EvidenceService(store, _hub_key(pki))
    head = service.make_head()
    assert head is not None
    forged = head.signed.replace(head.root_hash.hex().encode(), b"0" * 64)
    with store.engine.begin() as conn:
        conn.execute(sa.update(HEADS).values(signed=forged, root_hash=b"\0" * 32))
    with pytest.raises(LogTampered):
        service.check()


def test_heads_are_time_stamped_and_a_missed_stamp_is_an_alarm_then_made_up(
    store: Store, pki: SigningPki, tsa: LocalTsa, tmp_path: Path
) -> None:
    alarms: list[int] = []
    service = EvidenceService(store, _hub_key(pki), tsa_url=tsa.url,
                              on_unstamped=lambda: alarms.append(1))  # fmt: skip
    store.add_system("000.00.00.F01", "system")
    head = service.make_head()
    assert head is not None and head.timestamp is not None
    stamped = verify_timestamp(head.timestamp, head.signed, [tsa.ca_certificate])
    assert stamped.anchored and abs((stamped.gen_time - head.at).total_seconds()) < 60
    (tmp_path / "head.xml").write_bytes(head.signed)
    (tmp_path / "head.tsr").write_bytes(head.timestamp)
    openssl = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(tmp_path / "head.xml"), "-in",
         str(tmp_path / "head.tsr"), "-CAfile", str(tsa.ca_pem_path)],
        capture_output=True, text=True, check=False)  # fmt: skip
    assert openssl.returncode == 0 and "Verification: OK" in openssl.stdout, openssl.stderr
    store.add_system("000.00.00.F02", "system")
    with tsa.answering("http500"):
        unstamped = service.make_head()
    assert unstamped is not None and unstamped.timestamp is None and alarms == [1]
    assert service.make_head() is None  # the log did not grow, but the head gets its stamp
    latest = store.latest_head()
    assert latest is not None and latest.timestamp is not None
    verify_timestamp(latest.timestamp, latest.signed, [tsa.ca_certificate])
