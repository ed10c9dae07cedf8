"""The decision's rule for streamed attachments (pure): a package that names a file is
accepted only when the hub holds that file whole and its SHA-256 matched."""

from __future__ import annotations

from envelopes.attachment_refs import AttachmentRef, references
from envelopes.errors import AttachmentDigestMismatch, AttachmentIncomplete, AttachmentTooLarge
from envelopes.model import Package
from routing.ports import AttachmentView


def checked_references(package: Package, system_id: str, view: AttachmentView | None,
                       max_bytes: int) -> tuple[AttachmentRef, ...]:  # fmt: skip
    """The verified package's streamed files, each held whole by the hub; else a coded error.

    ``system_id`` is the authenticated sender: a package can only name files its own
    system uploaded.
    """
    refs = references(package)
    for ref in refs:
        label = f"{ref.name!r} ({ref.sha256})"
        if ref.size > max_bytes:
            raise AttachmentTooLarge(f"attachment {label} has {ref.size} bytes; the hub's "
                                     f"limit is {max_bytes}", size=ref.size, limit=max_bytes)
        state = "missing" if view is None else view.state_of(system_id, ref.sha256, ref.size)
        if state == "mismatch":
            raise AttachmentDigestMismatch(
                f"the file uploaded for attachment {label} did not have that SHA-256",
                sha256=ref.sha256)  # fmt: skip
        if state != "complete":
            raise AttachmentIncomplete(
                f"attachment {label}: the hub does not hold the whole file ({state}); "
                "upload every chunk, then send the package again", sha256=ref.sha256)
    return refs
