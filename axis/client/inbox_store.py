"""The clerk's local inbox folder: one sub-folder per fetched item.

Each item is written to a temporary folder and renamed into place, so a crash
never leaves half an item, and only then is the message acked::

    inbox/<item id>/package.edxml     the bytes exactly as delivered
    inbox/<item id>/attachments/…     attachments, unpacked, byte-identical (a repeated
                                      name gets ``~2``; meta.json maps each to its file);
                                      a streamed file is moved in from the download
                                      folder under its reference's name
    inbox/<item id>/meta.json         kind, parties, subject, verification result and
                                      ``fetched_by``: the system whose inbox it came from

Streamed files are downloaded into :attr:`InboxStore.download_dir` (``.downloads``,
kept across runs so an interrupted download resumes) before the item is saved.
``axis status`` counts a document stored here as one this system received
(:func:`fetched_document`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from axis.client.agency import InboxItem
from axis.files import sync_dir
from envelopes.attachment_refs import is_reference, read_reference
from envelopes.errors import AxisError
from envelopes.model import Attachment, DocumentPackage, StatusPackage
from routing.contract import TYPE_EDOC
from signing.keys import fingerprint

META = "meta.json"
DOWNLOADS = ".downloads"


class InboxStore:
    """A folder of fetched inbox items (of ``system_id``'s inbox, when it is given)."""

    def __init__(self, folder: Path, system_id: str = "") -> None:
        self.folder = folder
        self.system_id = system_id

    @property
    def download_dir(self) -> Path:
        """Where streamed files are downloaded before an item is saved (same file system,
        so saving moves them in)."""
        return self.folder / DOWNLOADS

    def known_ids(self) -> set[str]:
        """Message ids already stored (so a re-delivered copy is not stored twice)."""
        return {e["message_id"] for e in self.entries()}

    def entries(self) -> list[dict[str, Any]]:
        """Every stored item's metadata, newest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for meta in self.folder.glob(f"*/{META}"):
            try:
                found.append(json.loads(meta.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda e: e.get("stored_at", ""), reverse=True)

    def save(self, item: InboxItem) -> dict[str, Any]:
        """Store one item durably (written, synced, then renamed into place); returns its metadata.

        A folder left by the same message (a crash before its ack) is replaced; one of
        another message whose id maps to the same folder name is kept, and this item
        gets a numbered folder of its own.
        """
        item_id = self._free_id(
            _safe(item.message_id or f"{item.kind}-{datetime.now(UTC).timestamp()}"),
            item.message_id,
        )
        final = self.folder / item_id
        tmp = self.folder / f".{item_id}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        name = "receipt.xml" if item.kind == "receipt" else "package.edxml"
        _write(tmp / name, item.body)
        meta = _meta(item, item_id)
        if self.system_id:
            meta["fetched_by"] = self.system_id
        if isinstance(item.package, DocumentPackage):
            attachments = tmp / "attachments"
            attachments.mkdir()
            taken: set[str] = set()
            for att, entry in zip(item.package.attachments, meta["attachments"], strict=True):
                entry["file"] = _unique(_safe(att.attachment_name), taken)
                if not _put_attachment(attachments / entry["file"], att, entry, item.files):
                    taken.discard(entry["file"])
                    entry["file"] = None  # a streamed file that could not be downloaded
            sync_dir(attachments)
        _write(tmp / META, json.dumps(meta, ensure_ascii=False, indent=2).encode("utf-8"))
        sync_dir(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        sync_dir(self.folder)
        for downloaded in set(item.files.values()):  # in the item's folder now
            downloaded.unlink(missing_ok=True)
        return meta

    def has_document(self, system_id: str, document_id: str, sender_organ: str) -> bool:
        """Whether a document ``(sender_organ, document_id)`` fetched by ``system_id`` is here."""
        return any(
            fetched_document(e, system_id, document_id, sender_organ) for e in self.entries()
        )

    def _free_id(self, item_id: str, message_id: str) -> str:
        candidate, n = item_id, 1
        while (self.folder / candidate).exists() and _stored_id(self.folder / candidate) not in (
            None,
            message_id,
        ):
            n += 1
            candidate = f"{item_id}~{n}"
        return candidate


def item_meta(folder: Path) -> dict[str, Any] | None:
    """The ``meta.json`` of one stored item's folder, None if it has none (or not readable)."""
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def fetched_document(
    meta: Mapping[str, Any], system_id: str, document_id: str, sender_organ: str
) -> bool:
    """Whether ``meta`` is the document ``(sender_organ, document_id)`` fetched by ``system_id``.

    A document is named as the hub names it: its DocumentId and its sender organ. An
    item stored before ``meta.json`` named the fetching system counts as this system's.
    """
    return (
        meta.get("kind") == TYPE_EDOC
        and meta.get("document_id") == document_id
        and meta.get("sender") == sender_organ
        and meta.get("fetched_by", system_id) == system_id
    )


def _stored_id(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / META).read_text(encoding="utf-8"))["message_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``stem~2.ext``… when an earlier attachment of the item took it."""
    candidate, n = name, 1
    stem, dot, ext = name.rpartition(".") if "." in name.strip(".") else (name, "", "")
    while candidate in taken:
        n += 1
        candidate = f"{stem}~{n}{dot}{ext}"
    taken.add(candidate)
    return candidate


def _put_attachment(path: Path, att: Attachment, entry: dict[str, Any],
                    files: Mapping[str, Path]) -> bool:  # fmt: skip
    """Write an inline attachment, or link (else copy) a downloaded streamed file, to ``path``;
    False for a streamed file that is not there."""
    if not entry.get("streamed"):
        _write(path, att.data)
        return True
    source = files.get(str(entry["sha256"]))
    if source is None or not source.is_file():
        return False
    try:
        os.link(source, path)  # the download is removed only once the item is in place
    except OSError:
        shutil.copyfile(source, path)
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    return True


def _attachment_entry(att: Attachment) -> dict[str, Any]:
    """What meta.json says of one attachment: the file's name, SHA-256 and size (for a
    streamed file, the ones its signed reference gives)."""
    if not is_reference(att):
        return {"name": att.attachment_name, "sha256": att.sha256, "size": att.size}
    try:
        ref = read_reference(att)
    except AxisError:
        return {"name": att.attachment_name, "sha256": None, "size": None, "streamed": True}
    return {"name": att.attachment_name, "sha256": ref.sha256, "size": ref.size,
            "content_type": ref.content_type, "streamed": True}  # fmt: skip


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _meta(item: InboxItem, item_id: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": item_id,
        "message_id": item.message_id,
        "kind": item.kind,
        "stored_at": datetime.now(UTC).isoformat(),
        "headers": {k: str(v) for k, v in item.headers.items()},
        "verified": item.error is None,
    }
    if item.error is not None:
        meta["error"] = item.error.to_dict()
        meta["summary"] = f"NOT VERIFIED: {item.error.code}"
    if item.signer is not None:
        meta["signer"] = {
            "subject": item.signer.subject.rfc4514_string(),
            "fingerprint": fingerprint(item.signer),
        }
    package = item.package
    if isinstance(package, DocumentPackage):
        meta.update(
            document_id=package.document_id,
            sender=package.sender.organ_id,
            subject=package.subject,
            attachments=[_attachment_entry(a) for a in package.attachments],
        )
        meta.setdefault(
            "summary", f"{package.document_id} from {package.sender.organ_id}: {package.subject}"
        )
    elif isinstance(package, StatusPackage):
        code = package.status_code
        meta.update(
            document_id=package.document_id, sender=package.sender.organ_id, status_code=code.value
        )
        meta.setdefault(
            "summary",
            f"status {code.value} {code.vi} ({code.en}) from "
            f"{package.sender.organ_id} about {package.document_id}",
        )
    elif item.receipt is not None:
        r = item.receipt.receipt
        meta.update(
            event=r.event,
            document_id=r.document_id,
            consignment=r.message_id,
            error_code=r.error_code or None,
        )
        detail = f" ({r.error_code})" if r.error_code else ""
        if r.status_code:  # a business receipt: the recipient's status was routed
            meta["status_code"] = r.status_code
            detail = f" {r.status_code} from {r.recipient_system}"
        meta.setdefault("summary", f"receipt: {r.event}{detail} {r.message_id}")
    meta.setdefault("summary", item.kind)
    return meta


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_.," else "_" for c in name).strip(".")
    return cleaned or "item"
