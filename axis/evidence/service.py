"""The hub's keeper of the evidence log: signs tree heads (time-stamped when a TSA is
configured), checks on start that the stored log is the one it signed, and gathers the
material of evidence bundles (a :class:`routing.ports.EvidenceKeeper`).

Its methods do database and network I/O: the hub calls them in a worker thread.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization

from axis.evidence.errors import LogEntryNotFound, LogTampered, TimestampUnavailable
from axis.evidence.heads import TreeHead, sign_head, verify_head
from axis.evidence.log import LogEntry, StoredHead
from axis.evidence.tsa_client import request_timestamp
from axis.store import Store
from axis.store_revocation import revocation_of_consignment, revocation_of_document
from envelopes.errors import AxisError
from routing.values import DocumentParties
from signing.keys import SigningKey
from signing.revocation import RevocationEvidence
from signing.verify import VerifyPolicy

log = logging.getLogger("axis.evidence")


class EvidenceService:
    """Tree heads, the start-up check and bundle material over one store and hub key."""

    def __init__(
        self,
        store: Store,
        key: SigningKey,
        *,
        tsa_url: str = "",
        clock: Callable[[], datetime] | None = None,
        on_unstamped: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.tsa_url = tsa_url
        self._clock = clock or (lambda: datetime.now(UTC))
        self._on_unstamped = on_unstamped or (lambda: None)

    # -- heads ------------------------------------------------------------------------

    def make_head(self) -> StoredHead | None:
        """Sign a head over the whole log if it grew since the newest head (a head of the
        same size would add nothing); stamp it when a TSA is set. An unstamped newest head
        is stamped now. Returns the new head, if one was made."""
        size = self.store.log_size()
        latest = self.store.latest_head()
        if latest is not None and latest.tree_size >= size:
            if self.tsa_url and latest.timestamp is None:
                self._stamp_later(latest)
            return None
        now = self._clock()
        root = self.store.root_at(size)
        signed = sign_head(TreeHead(size, root, now), self.key)
        head = StoredHead(size, root, signed, self._stamp(signed), now)
        return head if self.store.add_head(head) else None

    def covering_head(self, size: int) -> StoredHead:
        """The newest head, made now if the newest does not cover ``size`` entries (an
        empty log gets its head of size 0)."""
        latest = self.store.latest_head()
        if latest is None or latest.tree_size < size:
            # Another worker may sign the same size first: then its head is the newest.
            latest = self.make_head() or self.store.latest_head()
        if latest is None or latest.tree_size < size:
            raise LogEntryNotFound("the log has no signed head covering those entries yet")
        return latest

    def _stamp(self, signed: bytes) -> bytes | None:
        if not self.tsa_url:
            return None
        try:
            return request_timestamp(self.tsa_url, signed)
        except TimestampUnavailable as error:
            # An alarm, not a stop: the head is kept, and stamped when the TSA is back.
            log.error("tree head not time-stamped: %s", error)
            self._on_unstamped()
            return None

    def _stamp_later(self, head: StoredHead) -> None:
        token = self._stamp(head.signed)
        if token is not None:
            self.store.set_head_timestamp(head.tree_size, token)

    # -- the start-up check -----------------------------------------------------------

    def check(self) -> None:
        """Raise ``log.tampered`` unless the stored log reproduces the root of the newest
        signed head, and that head's signature is the hub's."""
        latest = self.store.latest_head()
        if latest is None:
            return
        try:
            stated = verify_head(latest.signed, VerifyPolicy(
                at=latest.at, pinned=(self.key.certificate,))).head  # fmt: skip
        except AxisError as error:
            raise LogTampered(f"the newest tree head (size {latest.tree_size}) does not verify "
                              f"with the hub certificate: {error.reason}") from error
        root = self.store.recompute_root(stated.tree_size)
        if root != stated.root_hash or root != latest.root_hash:
            raise LogTampered(
                f"the stored log's first {stated.tree_size} entries do not hash to the root "
                "the hub signed: the store was altered outside the hub",
                tree_size=stated.tree_size)  # fmt: skip

    # -- what the query API and the CLI read -------------------------------------------

    def head_data(self, head: StoredHead | None = None, *, checked: bool = False) -> dict[str, Any]:
        """The newest head (or ``head``) as JSON: signed XML, token, size, root. With
        ``checked`` (an operator reading the store directly), :meth:`check` the whole
        stored log against it first."""
        if checked:
            self.check()
        head = head or self.covering_head(0)
        return {
            "tree_size": head.tree_size,
            "root_hash": head.root_hash.hex(),
            "head": head.signed.decode("utf-8"),
            "timestamp": _b64(head.timestamp),
        }

    def consistency(self, old_size: int, new_size: int, *, checked: bool = False) -> dict[str, Any]:
        """A consistency proof between two sizes, as JSON (``checked``: as
        :meth:`head_data`)."""
        if checked:
            self.check()
        path = self.store.consistency_proof(old_size, new_size)
        return {"old_size": old_size, "new_size": new_size, "path": [h.hex() for h in path]}

    def document_evidence(
        self, parties: DocumentParties, consignment: str | None = None
    ) -> dict[str, Any]:
        """Bundle material for a document: the receipts of its parties' consignments about
        it, the sender system's registry entries, each with its inclusion proof to one
        head, and the package. A third system's refused attempts about the document are
        its own business (as in the trace) and stay out."""
        organ, document_id = parties.sender_organ, parties.document_id
        members = {parties.sender_system, *parties.recipients}
        entries = [e for e in self.store.log_entries_about(document=(organ, document_id))
                   if e.submitter is None or e.submitter in members]  # fmt: skip
        entries += self.store.log_entries_about(registry_of=parties.sender_system)
        original = self.store.find_document(organ, document_id)
        subject = {"document_organ": organ, "document_id": document_id,
                   "consignment": consignment}  # fmt: skip
        revocation = revocation_of_document(self.store.engine, organ, document_id, members)
        return self._material(entries, subject, original.raw if original else None, revocation)

    def consignment_evidence(self, submitter: str, message_id: str) -> dict[str, Any]:
        """Bundle material for one consignment that names no document it is a party to."""
        entries = self.store.log_entries_about(consignment=(submitter, message_id))
        subject = {"document_organ": None, "document_id": None, "consignment": message_id}
        revocation = revocation_of_consignment(self.store.engine, submitter, message_id)
        return self._material(entries, subject, None, revocation)

    def _material(
        self, entries: Sequence[LogEntry], subject: dict[str, str | None], package: bytes | None,
        revocation: Sequence[RevocationEvidence] = (),
    ) -> dict[str, Any]:  # fmt: skip
        if not entries:
            raise LogEntryNotFound("the log holds nothing about that document or consignment")
        unique = sorted({e.index: e for e in entries}.values(), key=lambda e: e.index)
        head = self.covering_head(unique[-1].index + 1)
        return {
            "subject": subject,
            **self.head_data(head),
            "hub_certificate": b"".join(  # the hub's first, then its intermediates
                cert.public_bytes(serialization.Encoding.PEM)
                for cert in (self.key.certificate, *self.key.chain)).decode("ascii"),
            "entries": [{"type": e.type, "index": e.index, "payload": _b64(e.payload),
                         "path": [h.hex() for h in path]}
                        for e, path in zip(unique, self.store.inclusion_proofs(
                            [e.index for e in unique], head.tree_size), strict=True)],
            "package": _b64(package),
            # The CAs' CRLs and OCSP responses the hub checked the signers against, if any.
            **({"revocation": [{"kind": r.kind, "sha256": r.sha256, "der": _b64(r.der)}
                               for r in revocation]} if revocation else {}),
        }  # fmt: skip


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")
