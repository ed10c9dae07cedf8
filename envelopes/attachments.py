"""Attachment payloads: strict base64, and the Axis builder's deterministic ZIP.

The builder zips each file into a one-member archive with fixed timestamps and
the archive comment :data:`ZIP_MARKER`; a reader unzips exactly those payloads
(bounded) and keeps every other payload, vendor ZIPs included, as it came.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile

from envelopes.errors import InvalidAttachment

ZIP_MARKER = b"axis-edxml-zip/1"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK = 64 * 1024


def attachment_label(name: str, content_id: str) -> str:
    """How an error names an attachment: ``'report.pdf' (cid:…)``."""
    return f"{name!r} ({content_id})" if name else content_id or "an attachment without name"


def decode_base64(text: str, label: str) -> bytes:
    """Strict base64 (ASCII whitespace between characters allowed) or :class:`InvalidAttachment`."""
    compact = "".join(text.split())
    if not compact:
        raise InvalidAttachment(f"attachment {label} has no content (empty ContentTransferEncoded)")
    try:
        if len(compact) % 4:  # strict_mode alone lets a stray trailing "=" through
            raise binascii.Error("length is not a multiple of 4")
        return binascii.a2b_base64(compact.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        shown = compact[:40] + ("…" if len(compact) > 40 else "")
        raise InvalidAttachment(
            f"attachment {label}: ContentTransferEncoded is not valid base64 ({shown!r})"
        ) from None


def encode_base64(payload: bytes) -> str:
    """Base64 without line breaks, as vendor packages carry it."""
    return base64.b64encode(payload).decode("ascii")


def zip_file(name: str, data: bytes) -> bytes:
    """A deterministic one-member ZIP of ``data`` (fixed time, mode and comment)."""
    info = zipfile.ZipInfo(_member_name(name), date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.comment = ZIP_MARKER
        archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return buffer.getvalue()


def is_builder_zip(payload: bytes) -> bool:
    """Whether ``payload`` claims to be the Axis builder's ZIP (cheap: looks at the marker)."""
    return payload.startswith(b"PK\x03\x04") and payload.endswith(ZIP_MARKER)


def unzip_builder_payload(payload: bytes, label: str, budget: int) -> bytes:
    """The file inside a builder ZIP, decompressing at most ``budget`` bytes.

    Raises :class:`InvalidAttachment` for a broken archive or one that inflates
    beyond the budget (a zip bomb).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            members = archive.infolist()
            if len(members) != 1:
                raise InvalidAttachment(
                    f"attachment {label}: an Axis ZIP holds one file, not {len(members)}")
            return _read_bounded(archive, members[0], label, budget)
    except InvalidAttachment:
        raise
    except Exception as exc:  # zipfile raises many types on hostile input; all mean "broken"
        raise InvalidAttachment(
            f"attachment {label}: the ZIP payload cannot be read ({type(exc).__name__})"
        ) from None


def _read_bounded(archive: zipfile.ZipFile, member: zipfile.ZipInfo, label: str,
                  budget: int) -> bytes:
    if member.file_size > budget:
        raise _too_big(label, budget)
    out = bytearray()
    with archive.open(member) as stream:
        while chunk := stream.read(_CHUNK):
            out += chunk
            if len(out) > budget:
                raise _too_big(label, budget)
    return bytes(out)


def _too_big(label: str, budget: int) -> InvalidAttachment:
    return InvalidAttachment(
        f"attachment {label}: the ZIP payload inflates beyond the limit of {budget} bytes",
        limit=budget,
    )


def _member_name(name: str) -> str:
    # No directories inside the archive: a recipient extracting it must not write elsewhere.
    cleaned = name.replace("\\", "_").replace("/", "_").strip() or "attachment"
    return cleaned
