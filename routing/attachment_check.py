"""The decision's rule for streamed attachments: a package that names a file is accepted
only when the hub holds that file whole and its SHA-256 matched.

The rule is pure; the :class:`~routing.ports.AttachmentView` it reads looks at the
disk, so the hub calls :func:`checked_files` in its I/O threads, after the pure
decision returned :class:`~routing.decide.NeedsFiles`.
"""

from __future__ import annotations

from envelopes.attachment_refs import AttachmentRef
from envelopes.errors import AxisError
from routing.decide import Accepted, NeedsFiles, Rejected
from routing.errors import AttachmentDigestMismatch, AttachmentIncomplete, AttachmentTooLarge
from routing.ports import AttachmentView


def checked_files(pending: NeedsFiles, view: AttachmentView | None) -> Accepted | Rejected:
    """The pending document, accepted once each file it names is held whole; else rejected
    with the first file's refusal (as :func:`routing.decide.decide` rejects). A disk that
    cannot answer raises: the hub retries the submission later."""
    accepted = pending.accepted
    sub = accepted.submission
    try:
        _check(accepted.attachments, accepted.sender_system, view)
    except AxisError as error:
        return Rejected(sub, accepted.sha256, error, kind=sub.routing_key,
                        sender_system=sub.user_id or "")  # fmt: skip
    return accepted


def _check(refs: tuple[AttachmentRef, ...], system_id: str,
           view: AttachmentView | None) -> None:  # fmt: skip
    for ref in refs:
        label = f"{ref.name!r} ({ref.sha256})"
        if view is not None and ref.size > view.max_bytes:
            raise AttachmentTooLarge(f"attachment {label} has {ref.size} bytes; the hub's "
                                     f"limit is {view.max_bytes}", size=ref.size,
                                     limit=view.max_bytes)  # fmt: skip
        state = "missing" if view is None else view.state_of(system_id, ref.sha256, ref.size)
        if state == "mismatch":
            raise AttachmentDigestMismatch(
                f"the file uploaded for attachment {label} did not have that SHA-256",
                sha256=ref.sha256)  # fmt: skip
        if state != "complete":
            raise AttachmentIncomplete(
                f"attachment {label}: the hub does not hold the whole file ({state}); "
                "upload every chunk, then send the package again", sha256=ref.sha256)
