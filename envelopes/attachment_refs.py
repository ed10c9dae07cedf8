"""Streamed attachments: a signed reference in the package, the file beside it.

A file above the inline threshold does not travel base64-encoded inside the
package. The package carries, in its place, an ordinary QCVN 102:2016 attachment
whose content type is :data:`REF_CONTENT_TYPE` and whose payload is a small JSON
object naming the file, its size and its SHA-256. The sender's signature covers
that payload, so it binds the file; the file itself travels in chunks of
:data:`CHUNK_BYTES` (docs/protocol.md, "Streamed attachments"). A package with a
reference is still a valid edXML package for any tool; only Axis fetches the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from envelopes.errors import InvalidAttachment
from envelopes.model import Attachment, DocumentPackage, Package

REF_CONTENT_TYPE = "application/vnd.axis.attachment-ref+json"
REF_VERSION = 1
CHUNK_BYTES = 1024 * 1024  # every chunk but the last holds exactly this many bytes
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """What the signed package says of one streamed file."""

    name: str
    size: int
    sha256: str
    content_type: str = "application/octet-stream"

    @property
    def chunks(self) -> int:
        """How many chunks carry the file."""
        return chunk_count(self.size)

    def to_dict(self) -> dict[str, object]:
        """The reference as JSON-ready data (the payload's fields)."""
        return {"name": self.name, "size": self.size, "sha256": self.sha256,
                "content_type": self.content_type}  # fmt: skip


def chunk_count(size: int) -> int:
    """Chunks of :data:`CHUNK_BYTES` for ``size`` bytes (at least one)."""
    return max(1, -(-size // CHUNK_BYTES))


def chunk_length(size: int, index: int) -> int:
    """The exact length of chunk ``index`` of a ``size``-byte file."""
    last = chunk_count(size) - 1
    if index < last:
        return CHUNK_BYTES
    return size - last * CHUNK_BYTES


def valid_sha256(text: str) -> bool:
    """Lower-case hexadecimal SHA-256."""
    return _SHA256.fullmatch(text) is not None


def ref_payload(ref: AttachmentRef) -> bytes:
    """The JSON payload of a reference attachment (stable key order, UTF-8)."""
    data = {"axis-attachment-ref": REF_VERSION, **ref.to_dict()}
    return json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")


def reference_attachment(ref: AttachmentRef, *, content_id: str = "",
                         description: str = "") -> Attachment:  # fmt: skip
    """The edXML attachment that stands for a streamed file (its payload is not zipped)."""
    _check(ref, ref.name or "a reference")
    return Attachment(
        # Name and digest: two references to the same bytes under two names stay distinct.
        content_id=content_id or "cid:" + hashlib.sha256(
            f"{ref.name}\0{ref.sha256}".encode()).hexdigest()[:32],
        attachment_name=ref.name,
        data=ref_payload(ref),
        description=description,
        content_type=REF_CONTENT_TYPE,
    )


def is_reference(attachment: Attachment) -> bool:
    """Whether ``attachment`` stands for a streamed file."""
    return attachment.content_type.strip().lower() == REF_CONTENT_TYPE


def read_reference(attachment: Attachment) -> AttachmentRef:
    """The reference a reference attachment carries; :class:`InvalidAttachment` if malformed."""
    label = attachment.attachment_name or attachment.content_id
    try:
        data = json.loads(attachment.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidAttachment(f"attachment reference {label!r} is not JSON") from None
    if not isinstance(data, dict) or data.get("axis-attachment-ref") != REF_VERSION:
        raise InvalidAttachment(f"attachment reference {label!r} is not version {REF_VERSION}")
    name, size, sha = data.get("name"), data.get("size"), data.get("sha256")
    content_type = data.get("content_type", "application/octet-stream")
    if not isinstance(name, str) or not isinstance(content_type, str) or not isinstance(sha, str):
        raise InvalidAttachment(f"attachment reference {label!r}: name, sha256 must be text")
    if not isinstance(size, int) or isinstance(size, bool):
        raise InvalidAttachment(f"attachment reference {label!r}: size must be an integer")
    ref = AttachmentRef(name=name, size=size, sha256=sha, content_type=content_type)
    _check(ref, label)
    return ref


def references(package: Package) -> tuple[AttachmentRef, ...]:
    """Every streamed file a (verified) package names, in manifest order."""
    if not isinstance(package, DocumentPackage):
        return ()
    return tuple(read_reference(a) for a in package.attachments if is_reference(a))


def _check(ref: AttachmentRef, label: str) -> None:
    if not valid_sha256(ref.sha256):
        raise InvalidAttachment(f"attachment reference {label!r}: sha256 is not 64 hex digits")
    if ref.size < 1:
        raise InvalidAttachment(f"attachment reference {label!r}: size must be positive")
    if not usable_name(ref.name):
        raise InvalidAttachment(f"attachment reference {label!r}: unusable file name")


def usable_name(name: str) -> bool:
    """Whether a reference can carry ``name``: not empty, not too long, no path separator."""
    return bool(name) and len(name) <= _MAX_NAME and not any(c in name for c in "/\\\x00")
