"""The interfaces the hub pipeline is given: the registry it reads, the store it writes,
the signer of its receipts and the monitor it reports to.

:mod:`routing` defines them and imports nothing from the service; ``axis`` implements
them (``axis.registry.RegistrySnapshot``, ``axis.store.Store``,
``axis.receipts.HubReceiptSigner``, ``axis.metrics.HubMetrics``) and ``axis serve``
assembles a :class:`routing.hub.Hub` from them. Structural typing (``Protocol``)
keeps the dependency one-way: the service satisfies these without importing a base.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cryptography import x509

from routing.contract_attachments import ChunkAddress
from routing.values import (
    DeliveryRecord,
    DocumentIdTaken,
    DocumentParties,
    DuplicateSubmission,
    NewSubmission,
    Receipt,
    SubmissionRecord,
    TraceEvent,
)
from signing.revocation import RevocationStatus


class CertificateView(Protocol):
    """A signing certificate registered to a system."""

    @property
    def pem(self) -> bytes: ...
    @property
    def revoked(self) -> bool: ...
    @property
    def not_after(self) -> datetime: ...


class SystemView(Protocol):
    """A registered system as routing sees it."""

    @property
    def system_id(self) -> str: ...
    @property
    def active(self) -> bool: ...
    @property
    def certificates(self) -> Mapping[str, CertificateView]: ...


class RegistryView(Protocol):
    """An immutable registry snapshot: systems, their certificates, who serves an organ."""

    @property
    def systems(self) -> Mapping[str, SystemView]: ...
    @property
    def organ_system(self) -> Mapping[str, str]:
        """Every served organ (primary id) → the id of the system serving it."""
        ...

    def system(self, system_id: str) -> SystemView | None:
        """The system registered under ``system_id``, if any."""
        ...

    def serving_system(self, organ_id: str) -> str | None:
        """The id of the system serving ``organ_id`` (None: unknown or unserved)."""
        ...

    def canonical_organ(self, code: str) -> str:
        """The organ's primary id for any of its codes; an unknown code stays as it is."""
        ...

    def serves(self, system_id: str, organ_id: str) -> bool:
        """True when ``system_id`` is the system serving ``organ_id``."""
        ...

    def certificate(self, system_id: str, fingerprint: str) -> CertificateView | None:
        """The certificate ``fingerprint`` registered to ``system_id``, if any."""
        ...


class RevocationView(Protocol):
    """The issuing CAs' word on signer certificates (CRL, OCSP), as the decision reads it:
    answered from memory, never with I/O (docs/signing.md, "Revocation")."""

    @property
    def fail_closed(self) -> bool:
        """True: a signer whose status is not known to be good is refused; False ("warn"):
        accepted, and reported with :meth:`RevocationKeeper.accepted_anyway`."""
        ...

    def status(self, cert: x509.Certificate, at: datetime) -> RevocationStatus | None:
        """What the newest material of ``cert``'s CA says of it at ``at``; None when there
        is nothing to check (no CRL or OCSP source for it: the check is off for it)."""
        ...


class RevocationKeeper(RevocationView, Protocol):
    """The service behind the view: fetches CRLs and OCSP responses into its memory."""

    def refresh(self, registry: RegistryView, at: datetime) -> bool:
        """Fetch what is missing or due for the registered certificates (blocking: the hub
        calls it in a thread of its own); True if an answer may have changed."""
        ...

    def accepted_anyway(self, status: RevocationStatus, system_id: str) -> None:
        """A package of ``system_id`` was accepted under "warn" although its signer's
        status was not good: count it and log it."""
        ...


class ReceiptSigner(Protocol):
    """Turns what a receipt states into the hub-signed receipt document."""

    def sign(self, receipt: Receipt) -> bytes:
        """The signed receipt bytes (called off the event loop)."""
        ...


class RegistrySource(Protocol):
    """Where a hub reads its registry snapshot from, and learns that it changed."""

    def registry_version(self) -> int:
        """A number that moves whenever the registry changes."""
        ...

    def load_snapshot(self) -> RegistryView:
        """The whole registry, read now."""
        ...


class QueryStore(Protocol):
    """What the query endpoint reads: documents, their timelines and stored receipts."""

    def find_submission(self, user_id: str, message_id: str) -> SubmissionRecord | None:
        """The submission ``message_id`` of system ``user_id``, if stored."""
        ...

    def documents_named(
        self, document_id: str, sender_organ: str | None = None
    ) -> list[DocumentParties]:
        """The parties of every accepted document with this id (of one sender organ)."""
        ...

    def document_events(self, document_organ: str, document_id: str) -> list[TraceEvent]:
        """Every event about document (organ, id), in time order."""
        ...

    def consignment_events(self, submitter: str, message_id: str) -> list[TraceEvent]:
        """Every event about one consignment of ``submitter``, in time order."""
        ...

    def delivered_receipts(self, document_organ: str, document_id: str) -> list[bytes]:
        """The signed "delivered" receipts of document (organ, id)."""
        ...


class HubStore(RegistrySource, QueryStore, Protocol):
    """Everything the hub pipeline records and reads (synchronous; called in threads)."""

    def record_submissions(
        self, items: Sequence[NewSubmission]
    ) -> list[SubmissionRecord | DuplicateSubmission | DocumentIdTaken]:
        """Store a batch with one commit; a re-submission comes back as a duplicate, a new
        package reusing its organ's DocumentId as taken."""
        ...

    def submission_deliveries(self, submission_id: int) -> list[DeliveryRecord]:
        """The copies one stored submission was routed to."""
        ...

    def mark_delivered(
        self,
        document_organ: str,
        document_id: str,
        system_id: str,
        at: datetime,
        receipt: bytes | None = None,
    ) -> int:
        """Record a recipient's first status 01 and the hub's "delivered" receipt; the
        number of deliveries changed (0: confirmed before, or never delivered)."""
        ...

    def add_events(self, events: Sequence[TraceEvent]) -> None:
        """Append trace events."""
        ...

    def log_receipt(
        self, receipt: bytes, *, document_organ: str, document_id: str, submitter: str,
        message_id: str, system_id: str, at: datetime,
    ) -> int | None:  # fmt: skip
        """Append a receipt signed outside a submission (a business receipt) to the
        evidence log; its index (None when the store keeps no log)."""
        ...


class EvidenceKeeper(Protocol):
    """The evidence log's signer and reader (docs/evidence.md); called in threads.

    JSON answers are the query API's: heads as signed XML text with the RFC 3161
    token in base64, hashes in lowercase hex.
    """

    def check(self) -> None:
        """Raise ``log.tampered`` if the stored log is not the one the hub signed."""
        ...

    def make_head(self) -> object | None:
        """Sign a head if the log grew (or stamp an unstamped one); the head, if made."""
        ...

    def head_data(self) -> dict[str, Any]:
        """The newest signed head."""
        ...

    def consistency(self, old_size: int, new_size: int) -> dict[str, Any]:
        """A consistency proof between two tree sizes."""
        ...

    def document_evidence(
        self, parties: DocumentParties, consignment: str | None = None
    ) -> dict[str, Any]:
        """Bundle material about one document: receipts, registry entries, proofs, head."""
        ...

    def consignment_evidence(self, submitter: str, message_id: str) -> dict[str, Any]:
        """Bundle material about one consignment that names no document."""
        ...


class AttachmentView(Protocol):
    """What the hub checks of a sender's streamed files before it accepts a package naming
    them (a stat, in its I/O threads; no file is read)."""

    @property
    def max_bytes(self) -> int:
        """The largest file the hub takes (``max_attachment_bytes``)."""
        ...

    def state_of(self, owner: str, sha256: str, size: int) -> str:
        """``complete`` (whole, SHA-256 checked), ``mismatch``, ``partial`` or ``missing``."""
        ...


@dataclass(frozen=True, slots=True)
class PutOutcome:
    """After a chunk: how many chunks of the file the hub holds, and whether it is whole."""

    held: int
    complete: bool


class AttachmentKeeper(AttachmentView, Protocol):
    """Where the hub keeps streamed files (docs/protocol.md); called in threads."""

    def put(self, owner: str, address: ChunkAddress, data: bytes) -> PutOutcome:
        """Store a chunk; on the last one check the whole file (``attachment.*`` errors)."""
        ...

    def held(self, owner: str, sha256: str, size: int) -> tuple[list[int], bool]:
        """The chunk indices held, and whether the file is whole and checked."""
        ...

    def grant(self, owner: str, sha256: str, recipients: Sequence[str]) -> None:
        """Let the recipient systems of an accepted package download the file;
        ``attachment.incomplete`` if the file is no longer whole (swept meanwhile)."""
        ...

    def read_chunk(self, requester: str, address: ChunkAddress) -> bytes:
        """A chunk for a system the file was granted to (else ``attachment.not_found``)."""
        ...

    def sweep(self, now: datetime | None = None) -> object:
        """Drop abandoned uploads and files past their retention."""
        ...


class HubMonitor(Protocol):
    """What the hub reports as it works (metrics); every argument is from a bounded set."""

    def started(self) -> None:
        """A submission was taken from the queue."""
        ...

    def finished(self, seconds: float) -> None:
        """A submission was settled (acked or returned) after ``seconds``."""
        ...

    def accepted(self, kind: str, deliveries: int) -> None:
        """A submission was accepted and copied to ``deliveries`` inboxes."""
        ...

    def rejected(self, kind: str, code: str) -> None:
        """A submission was rejected with error ``code``."""
        ...

    def duplicate(self) -> None:
        """A re-submission was answered with its original receipt."""
        ...

    def retried(self, attempt: int) -> None:
        """A submission failed (attempt ``attempt``) and was parked for a retry."""
        ...

    def gave_up(self) -> None:
        """A submission failed its last attempt: hub.unavailable receipt, dead letter."""
        ...

    def registry_loaded(self, snapshot: RegistryView) -> None:
        """The hub (re)loaded its registry snapshot (on start and after each change)."""
        ...

    def receipt_sent(self, seconds: float) -> None:
        """A submission's receipt was published (and confirmed) ``seconds`` after the
        hub took the submission from the queue."""
        ...

    def dead_lettered(self, reason: str) -> None:
        """The hub put a submission into ``axis.dead`` with reason code ``reason``."""
        ...

    def logged(self, entries: int) -> None:
        """``entries`` entries were appended to the evidence log (committed)."""
        ...

    def attachment_answered(self, request: str, code: str, size: int) -> None:
        """An attachment request (``put``, ``get``, ``state``) was answered: ``code`` is ""
        or the refusal's code; ``size`` the chunk bytes stored or sent."""
        ...


class NoMonitor:
    """A :class:`HubMonitor` that records nothing."""

    def started(self) -> None:
        pass

    def finished(self, seconds: float) -> None:
        pass

    def accepted(self, kind: str, deliveries: int) -> None:
        pass

    def rejected(self, kind: str, code: str) -> None:
        pass

    def duplicate(self) -> None:
        pass

    def retried(self, attempt: int) -> None:
        pass

    def gave_up(self) -> None:
        pass

    def registry_loaded(self, snapshot: RegistryView) -> None:
        pass

    def receipt_sent(self, seconds: float) -> None:
        pass

    def dead_lettered(self, reason: str) -> None:
        pass

    def logged(self, entries: int) -> None:
        pass

    def attachment_answered(self, request: str, code: str, size: int) -> None:
        pass
