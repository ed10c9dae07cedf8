"""The hub store on SQLite and PostgreSQL: same tests, same code."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError

from axis.errors import AgencyExists, CertificateInUse, OrganAlreadyServed, UnknownAgency
from axis.registry import OrganRow
from axis.store import Store
from envelopes.errors import InvalidOrganId
from routing.values import (
    DeliveryRecord,
    DocumentIdTaken,
    DuplicateSubmission,
    NewSubmission,
    SubmissionRecord,
    TraceEvent,
)
from signing.errors import InvalidKeyMaterial

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
G22, H29, H41 = "000.00.00.G22", "000.00.00.H29", "000.00.00.H41"


def make_pem(common_name: str, days: int = 365) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(T0).not_valid_after(T0 + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def submission(
    user: str = G22, message_id: str = "m1", *, document_id: str | None = "doc-1",
    outcome: str = "accepted", kind: str = "edoc", at: datetime = T0,
) -> SubmissionRecord:
    raw = f"<edXML>{user}/{message_id}</edXML>".encode()
    return SubmissionRecord(
        user_id=user, message_id=message_id, kind=kind,
        sha256=hashlib.sha256(raw).hexdigest(), outcome=outcome,  # type: ignore[arg-type]
        raw=raw, receipt=b"<Receipt>" + message_id.encode() + b"</Receipt>", received_at=at,
        document_id=document_id, sender_organ=user, document_organ=user if document_id else None,
        size=len(raw), error_code=None if outcome == "accepted" else "signature.invalid",
        reason=None if outcome == "accepted" else "digest mismatch",
    )  # fmt: skip


def event(kind: str, at: datetime, *, message_id: str = "m1", document_id: str | None = "doc-1",
          system_id: str = G22, detail: str | None = None) -> TraceEvent:
    return TraceEvent(event=kind, at=at, message_id=message_id,  # type: ignore[arg-type]
                      document_id=document_id, system_id=system_id, detail=detail,
                      submitter=G22, document_organ=G22 if document_id else None)


def delivery(system_id: str, *organs: str) -> DeliveryRecord:
    return DeliveryRecord(system_id=system_id, organs=organs or (system_id,), published_at=T0)


# -- systems and organs ----------------------------------------------------------------


def test_add_get_list_systems(store: Store) -> None:
    store.add_system(H29, "Hòa Bình province", serves=["000.00.01.H29", "000.00.02.H29"])
    store.add_system(G22, "Government office")
    record = store.get_system(H29)
    assert record is not None
    assert (record.system_id, record.name, record.active) == (H29, "Hòa Bình province", True)
    assert record.organs == (H29, "000.00.01.H29", "000.00.02.H29")
    assert record.created_at.tzinfo is not None
    assert [s.system_id for s in store.list_systems()] == [G22, H29]
    assert store.get_system(H41) is None


@pytest.mark.parametrize(
    ("system_id", "serves", "error"),
    [
        (G22, (), AgencyExists),
        ("bad id", (), InvalidOrganId),
        (H41, ("lower.case",), InvalidOrganId),
        (H41, (G22,), OrganAlreadyServed),
    ],
)
def test_add_system_refusals_leave_nothing_behind(
    store: Store, system_id: str, serves: tuple[str, ...], error: type[Exception]
) -> None:
    store.add_system(G22, "Government office")
    with pytest.raises(error):
        store.add_system(system_id, "second", serves)
    assert [s.system_id for s in store.list_systems()] == [G22]
    assert store.load_snapshot().serving_system(G22) == G22


def test_suspend_and_resume(store: Store) -> None:
    store.add_system(G22, "Government office")
    store.set_system_active(G22, False)
    info = store.load_snapshot().system(G22)
    assert info is not None and not info.active
    store.set_system_active(G22, True)
    info = store.load_snapshot().system(G22)
    assert info is not None and info.active
    with pytest.raises(UnknownAgency):
        store.set_system_active(H41, False)


def test_import_organs_upserts_and_keeps_assignments(store: Store) -> None:
    store.add_system(H29, "Hòa Bình system")
    rows = [OrganRow(H29, "UBND tỉnh Hòa Bình"), OrganRow("000.00.01.H29", "Sở Nội vụ", H29),
            OrganRow("000.00.02.H29", "Sở Tài chính", H29),
            OrganRow("000.00.02.H29", "Sở Tài chính (renamed)", H29)]  # fmt: skip
    assert store.import_organs(rows, batch_size=2) == 4
    snapshot = store.load_snapshot()
    assert snapshot.organ_names[H29] == "UBND tỉnh Hòa Bình"
    assert snapshot.organ_names["000.00.02.H29"] == "Sở Tài chính (renamed)"
    assert snapshot.serving_system("000.00.02.H29") == H29
    store.import_organs([OrganRow(H29, "UBND tỉnh Hòa Bình (2025)")])
    again = store.load_snapshot()
    assert again.serving_system(H29) == H29  # the explicit assignment survived the upsert
    assert again.organ_names[H29] == "UBND tỉnh Hòa Bình (2025)"


def test_import_organs_is_all_or_nothing(store: Store) -> None:
    rows = [OrganRow(f"000.00.{i:02d}.H41", f"organ {i}") for i in range(10)]
    with pytest.raises(InvalidOrganId):
        store.import_organs([*rows, OrganRow("not valid!", "bad")], batch_size=3)
    assert not store.load_snapshot().organ_known("000.00.00.H41")


def test_snapshot_resolves_nearest_system(store: Store) -> None:
    province, dept, office, unit = H29, "000.01.00.H29", "000.01.01.H29", "000.01.02.H29"
    own, own_child, district = "000.02.00.H29", "000.02.01.H29", "000.03.00.H29"
    store.import_organs([
        OrganRow(province, "province"), OrganRow(dept, "department", province),
        OrganRow(office, "office", dept), OrganRow(unit, "unit", office),
        OrganRow(own, "own-system unit", unit), OrganRow(own_child, "its child", own),
        OrganRow(district, "unserved root"),
    ])  # fmt: skip
    store.add_system(province, "province system")
    store.add_system(own, "unit system")
    snapshot = store.load_snapshot()
    assert snapshot.serving_system(unit) == province  # 3 levels below the province
    assert snapshot.serving_system(own) == own
    assert snapshot.serving_system(own_child) == own
    assert snapshot.serving_system(district) is None
    assert snapshot.organ_known(district) and not snapshot.organ_known("999.99.99.Z99")
    assert snapshot.serves(province, office) and not snapshot.serves(own, office)


# -- certificates ----------------------------------------------------------------------


def test_certificate_lifecycle(store: Store) -> None:
    store.add_system(G22, "Government office")
    store.add_system(H41, "Nghệ An")
    pem = make_pem("g22")
    record = store.add_certificate(G22, pem)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert record.fingerprint == hashlib.sha256(der).hexdigest()
    assert record.not_before == T0 and record.not_after == T0 + timedelta(days=365)
    assert record.subject == "CN=g22" and not record.revoked
    assert store.add_certificate(G22, pem) == record  # idempotent
    with pytest.raises(CertificateInUse):
        store.add_certificate(H41, pem)
    assert store.load_snapshot().certificate(G22, record.fingerprint.upper()) is not None
    assert store.load_snapshot().certificate(H41, record.fingerprint) is None
    with pytest.raises(UnknownAgency):
        store.revoke_certificate(H41, record.fingerprint)
    colon_form = ":".join(record.fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()
    revoked = store.revoke_certificate(G22, colon_form, at=T0 + timedelta(days=3))
    assert revoked.revoked_at == T0 + timedelta(days=3)
    assert store.revoke_certificate(G22, record.fingerprint).revoked_at == revoked.revoked_at
    info = store.load_snapshot().certificate(G22, record.fingerprint)
    assert info is not None and info.revoked and info.pem == record.pem
    assert [c.fingerprint for c in store.list_certificates(G22)] == [record.fingerprint]


@pytest.mark.parametrize(
    ("system_id", "pem", "error"),
    [
        (G22, b"not a certificate", InvalidKeyMaterial),
        (G22, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
         InvalidKeyMaterial),
        (H41, None, UnknownAgency),
    ],
)
def test_certificate_refusals(
    store: Store, system_id: str, pem: bytes | None, error: type[Exception]
) -> None:
    store.add_system(G22, "Government office")
    with pytest.raises(error):
        store.add_certificate(system_id, pem if pem is not None else make_pem("x"))
    assert store.list_certificates(system_id) == []


# -- submissions -----------------------------------------------------------------------


def test_record_and_find_submission(store: Store) -> None:
    original = submission()
    events = [event("submitted", T0), event("accepted", T0)]
    stored = store.record_submission(original, [delivery(H41)], events)
    assert stored.id is not None and replace(stored, id=None, log_index=None) == original
    assert stored.log_index is not None
    assert store.log_entry(stored.log_index).payload == original.receipt
    found = store.find_submission(G22, "m1")
    assert found == stored
    assert store.get_receipt(G22, "m1") == original.receipt
    assert store.get_receipt(G22, "other") is None
    assert store.find_submission(H41, "m1") is None


def test_rejected_submission_keeps_raw_bytes(store: Store) -> None:
    rejected = submission(message_id="bad", outcome="rejected", document_id=None)
    store.record_submission(rejected, [], [event("rejected", T0, message_id="bad")])
    found = store.find_submission(G22, "bad")
    assert found is not None
    assert (found.raw, found.outcome, found.error_code) == (rejected.raw, "rejected",
                                                            "signature.invalid")  # fmt: skip
    assert found.reason == "digest mismatch"


def test_duplicate_across_two_store_instances(db_url: str, store: Store) -> None:
    other = Store(db_url)  # a second hub process
    try:
        first = store.record_submission(submission(), [delivery(H41)], [event("accepted", T0)])
        retry = replace(submission(), receipt=b"<Receipt>second</Receipt>")
        with pytest.raises(DuplicateSubmission) as caught:
            other.record_submission(retry, [delivery(H41)], [event("accepted", T0)])
        assert caught.value.existing == first
        assert caught.value.existing.receipt == first.receipt
        assert len(store.trace("doc-1")) == 1  # the loser's events were rolled back
        # The same message id from another system is a different consignment.
        other.record_submission(submission(user=H41), [], [])
    finally:
        other.dispose()


def test_concurrent_duplicates_have_exactly_one_winner(db_url: str, store: Store) -> None:
    stores = [store, Store(db_url)]
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(n: int) -> None:
        record = replace(submission(message_id="race"), receipt=f"r{n}".encode())
        barrier.wait()
        try:
            stores[n % 2].record_submission(record, [delivery(H41)], [])
            outcomes.append("won")
        except DuplicateSubmission:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stores[1].dispose()
    assert sorted(outcomes) == ["duplicate"] * 7 + ["won"]


def test_registry_version_moves_with_every_registry_change_only(store: Store) -> None:
    seen = [store.registry_version()]

    def moved() -> bool:
        seen.append(store.registry_version())
        return seen[-1] != seen[-2]

    store.add_system(G22, "VPCP")
    assert moved()
    store.import_organs([OrganRow(H29, "Sở", G22)])
    assert moved()
    pem = make_pem("G22")
    fingerprint = store.add_certificate(G22, pem).fingerprint
    assert moved()
    store.add_certificate(G22, pem)  # already registered: no change
    assert not moved()
    store.revoke_certificate(G22, fingerprint)
    assert moved()
    store.set_system_active(G22, False)
    assert moved()
    store.record_submission(submission(), [delivery(H41)], [event("accepted", T0)])
    assert not moved()
    with pytest.raises(AgencyExists):
        store.add_system(G22, "again")
    assert not moved()


def test_record_submissions_batch_reports_each_outcome(store: Store) -> None:
    earlier = store.record_submission(submission(message_id="old", document_id="doc-0"), [], [])
    batch: list[NewSubmission] = [
        (submission(message_id="a"), [delivery(H41)], [event("accepted", T0, message_id="a")]),
        (replace(submission(message_id="old", document_id="doc-0"),
                 receipt=b"<Receipt>again</Receipt>"), [], []),
        (submission(message_id="b", document_id="doc-2"), [delivery(H29)], []),
        (replace(submission(message_id="a"), receipt=b"<Receipt>twice</Receipt>"), [], []),
    ]
    outcomes = store.record_submissions(batch)
    assert [type(o).__name__ for o in outcomes] == [
        "SubmissionRecord", "DuplicateSubmission", "SubmissionRecord", "DuplicateSubmission"]
    assert isinstance(outcomes[1], DuplicateSubmission) and outcomes[1].existing == earlier
    assert isinstance(outcomes[3], DuplicateSubmission)
    assert outcomes[3].existing.receipt == b"<Receipt>a</Receipt>"  # the first one stays
    assert store.count_submissions() == 3
    assert [d.system_id for d in store.deliveries(G22, "doc-1")] == [H41]
    assert [d.system_id for d in store.deliveries(G22, "doc-2")] == [H29]


def test_record_submissions_one_commit_for_a_clean_batch(store: Store) -> None:
    commits: list[object] = []
    sa_event.listen(store.engine, "commit", commits.append)
    batch: list[NewSubmission] = [
        (submission(message_id=f"m{n}", document_id=f"doc-{n}"), [delivery(H41)], [])
        for n in range(20)
    ]
    outcomes = store.record_submissions(batch)
    assert all(isinstance(o, SubmissionRecord) and o.id is not None for o in outcomes)
    assert len(commits) == 1
    assert store.count_submissions() == 20


def test_record_submission_is_one_transaction(store: Store) -> None:
    twice = [delivery(H41), delivery(H41)]  # violates the deliveries primary key
    with pytest.raises(IntegrityError):
        store.record_submission(submission(), twice, [event("accepted", T0)])
    assert store.find_submission(G22, "m1") is None
    assert store.trace("doc-1") == []


def test_trace_is_time_ordered_by_document_or_message(store: Store) -> None:
    store.record_submission(submission(), [delivery(H41)], [
        event("published", T0 + timedelta(seconds=2), detail="b"),
        event("submitted", T0, detail="first"),
        event("accepted", T0 + timedelta(seconds=1)),
    ])  # fmt: skip
    store.add_events([
        event("published", T0 + timedelta(seconds=2), detail="c"),  # same time: insertion order
        event("status", T0 + timedelta(seconds=5), message_id="m2", system_id=H41),
        event("submitted", T0, message_id="unrelated", document_id="doc-9"),
    ])  # fmt: skip
    by_document = store.trace("doc-1")
    assert [(e.event, e.detail) for e in by_document] == [
        ("submitted", "first"), ("accepted", None), ("published", "b"), ("published", "c"),
        ("status", None)]  # fmt: skip
    assert all(e.id is not None and e.at.tzinfo is not None for e in by_document)
    assert [e.event for e in store.trace("m2")] == ["status"]
    assert store.trace("nothing") == []


def test_parties_and_document_lookups(store: Store) -> None:
    store.record_submission(
        submission(), [delivery(H41, H41, "000.00.01.H41"), delivery(H29)], [])
    store.record_submission(submission(user=H29, message_id="x", outcome="rejected"),
                            [], [])  # a rejected claim to the same document
    store.record_submission(replace(submission(user=H41, message_id="s1", kind="status"),
                                    document_organ=G22), [delivery(G22)], [])  # fmt: skip
    assert store.parties(G22, "doc-1") == {G22, H41, H29}
    assert store.parties(G22, "doc-2") == set()
    assert store.parties(H29, "doc-1") == set()  # another organ's DocumentId is another document
    document = store.find_document(G22, "doc-1")
    assert document is not None and (document.user_id, document.message_id) == (G22, "m1")
    assert store.find_document(G22, "doc-2") is None
    assert [(d.system_id, d.organs) for d in store.deliveries(G22, "doc-1")] == [
        (H29, (H29,)), (H41, (H41, "000.00.01.H41"))]


def test_mark_delivered_once(store: Store) -> None:
    store.record_submission(submission(), [delivery(H41), delivery(H29)], [])
    when = T0 + timedelta(minutes=5)
    assert store.mark_delivered(G22, "doc-1", H41, when, b"<Delivered/>") == 1
    assert store.mark_delivered(G22, "doc-1", H41, when + timedelta(minutes=1), b"<Again/>") == 0
    assert store.mark_delivered(G22, "doc-1", G22, when) == 0  # not a recipient
    assert store.mark_delivered(G22, "doc-2", H41, when) == 0
    assert store.mark_delivered(H29, "doc-1", H41, when) == 0  # another organ's document
    states = {d.system_id: d.delivered_at for d in store.deliveries(G22, "doc-1")}
    assert states == {H41: when, H29: None}
    assert store.delivered_receipts(G22, "doc-1") == [b"<Delivered/>"]


def test_document_parties(store: Store) -> None:
    assert store.document_parties(G22, "doc-1") is None
    store.record_submission(submission(), [delivery(H41, H41, "000.00.01.H41")], [])
    parties = store.document_parties(G22, "doc-1")
    assert parties is not None
    assert (parties.sender_system, parties.sender_organ) == (G22, G22)
    assert dict(parties.recipients) == {H41: (H41, "000.00.01.H41")}


def test_document_identity_is_organ_and_document_id(store: Store) -> None:
    store.record_submission(submission(), [delivery(H41)], [])
    # Another organ may use the same DocumentId: its own document, its own parties.
    store.record_submission(submission(user=H29, message_id="m1"), [delivery(G22)], [])
    assert [p.sender_organ for p in store.documents_named("doc-1")] == [G22, H29]
    assert [p.sender_system for p in store.documents_named("doc-1", H29)] == [H29]
    assert dict(store.documents_named("doc-1", G22)[0].recipients) == {H41: (H41,)}


def test_a_new_package_reusing_its_organs_document_id_is_refused(store: Store) -> None:
    first = store.record_submission(submission(), [delivery(H41)], [])
    other = submission(message_id="m2")  # other bytes, same (organ, DocumentId)
    outcomes = store.record_submissions([(other, [delivery(H41)], []),
                                         (submission(message_id="m3", document_id="d3"), [], [])])
    assert isinstance(outcomes[0], DocumentIdTaken) and outcomes[0].record is other
    assert isinstance(outcomes[1], SubmissionRecord) and outcomes[1].id is not None
    assert store.find_submission(G22, "m2") is None
    # The same bytes again, or an update of the document, may use the id.
    same = replace(submission(message_id="m4"), sha256=first.sha256)
    update = replace(submission(message_id="m5"), amends=True)
    assert all(isinstance(o, SubmissionRecord)
               for o in store.record_submissions([(same, [], []), (update, [], [])]))


def test_refusals_without_a_consignment_are_counted_not_stored(store: Store) -> None:
    body = b"<x/>" * 10_000
    refused = replace(submission(message_id="", outcome="rejected"), user_id="",
                      raw=body[:4096], size=len(body), sha256=hashlib.sha256(body).hexdigest())
    for _ in range(3):
        store.record_submissions([(refused, [], [])])
    assert store.count_submissions() == 0
    (row,) = store.refusal_counts()
    assert (row["times"], row["size"], row["excerpt_bytes"]) == (3, len(body), 4096)


def test_create_all_is_idempotent(db_url: str, store: Store) -> None:
    store.record_submission(submission(), [], [])
    again = Store(db_url)
    again.create_all()
    assert again.find_submission(G22, "m1") is not None
    again.dispose()


def test_sqlite_uses_wal(tmp_path: object) -> None:
    s = Store(f"sqlite:///{tmp_path}/wal.db")
    s.create_all()
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    s.dispose()
