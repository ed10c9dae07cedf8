"""``axis send``'s work once the command line is read: attachments (inline or streamed),
the package, its submission and the wait for the receipt."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from axis.client.profile import Profile
from axis.client.upload import FileUpload, check_files
from axis.commands.clerk_io import broker_errors, sent_paths, write_sent_record
from axis.commands.common import write_file
from axis.commands.progress import Bars
from axis.errors import ReceiptTimeout
from envelopes.attachment_refs import is_reference, read_reference
from envelopes.builder import document_from_metadata
from envelopes.model import Attachment
from routing.contract import utc_text

STEP_THRESHOLD = 5 * 1024 * 1024  # above this much inline data, say what is happening


def check_attachments(meta: dict[str, Any], paths: list[Path], max_bytes: int) -> list[int]:
    """Refuse, before anything is uploaded: a metadata file that makes no package, a
    missing or unreadable file, a file above ``max_bytes`` (``attachment.too_large``)."""
    sizes = check_files(paths, max_bytes)
    document_from_metadata(meta, [])
    return sizes


async def send_document(prof: Profile, meta: dict[str, Any], paths: list[Path], *,
                        inline_max: int, message_id: str | None, out_dir: Path, timeout: float,
                        no_wait: bool, bars: Bars, chatty: bool) -> dict[str, Any]:  # fmt: skip
    """Upload the large files, then build, sign and submit the package; wait for the
    receipt unless ``no_wait``. ``chatty``: say each step on stderr."""
    from axis.client.agency import AgencyClient

    def step(text: str) -> None:
        if chatty:
            typer.echo(text, err=True)

    async with (
        broker_errors("send"),
        AgencyClient(prof.client_config(), auto_arrived=False) as client,
    ):
        uploads: list[FileUpload] = []
        attachments = await client.attach_files(
            paths, inline_max=inline_max, uploads=uploads,
            progress=lambda name, done, total: bars.update(
                f"up:{name}", f"uploading {name}", done, total),
            hashing=lambda name, done, total: bars.update(
                f"hash:{name}", f"reading {name}", done, total),
        )  # fmt: skip
        package = document_from_metadata(meta, attachments)
        step("signing the package…")
        signed = await asyncio.to_thread(client.sign, package)
        step(f"submitting {len(signed) / 1e6:.1f} MB to the hub…")
        consignment = await client.send(signed, message_id=message_id)
        package_path, receipt_path = sent_paths(out_dir, consignment)
        write_file(package_path, signed)
        write_sent_record(package_path, prof.system_id, consignment, package)
        result: dict[str, Any] = {
            "message_id": consignment,
            "document_id": package.document_id,
            "package": str(package_path),
            "attachments": [_described(a, uploads) for a in attachments],
        }
        if no_wait:
            return result
        step("waiting for the hub's receipt…")
        try:
            receipt = await client.wait_receipt(consignment, timeout)
        except ReceiptTimeout:
            raise ReceiptTimeout(
                f"no receipt for consignment {consignment} within {timeout:g} s (is the hub "
                f"running?); the package was submitted and saved to {package_path}; look later "
                f"with `axis trace {consignment}`",
                message_id=consignment,
                package=str(package_path),
            ) from None
        write_file(receipt_path, receipt.raw)
        r = receipt.receipt
        write_sent_record(package_path, prof.system_id, consignment, package, r.event)
        result.update(
            receipt=str(receipt_path),
            event=r.event,
            hub_time=utc_text(r.hub_time),
            recipients=list(r.recipients),
            error_code=r.error_code or None,
            reason=r.reason or None,
        )
        return result


def _described(attachment: Attachment, uploads: list[FileUpload]) -> dict[str, Any]:
    """An attachment in ``axis send --json``: the file's name, size and SHA-256, and whether
    it was streamed (uploaded apart, referenced by the package) or inline; for a streamed
    file, its chunks and how many this run sent (the others the hub held already)."""
    if is_reference(attachment):
        ref = read_reference(attachment)
        sent = sum(u.sent for u in uploads if u.ref == ref)
        return {"name": ref.name, "size": ref.size, "sha256": ref.sha256, "streamed": True,
                "chunks": ref.chunks, "chunks_sent": sent}  # fmt: skip
    return {"name": attachment.attachment_name, "size": attachment.size,
            "sha256": attachment.sha256, "streamed": False}  # fmt: skip


def _streamed_line(a: dict[str, Any]) -> str:
    held = a["chunks"] - a["chunks_sent"]
    resumed = f" ({held} the hub held already)" if held else ""
    return (f"streamed {a['name']} ({a['size']} bytes, SHA-256 {a['sha256']}): sent "
            f"{a['chunks_sent']} of {a['chunks']} chunks{resumed}")


def send_lines(result: dict[str, Any]) -> list[str]:
    """``axis send``'s words for a person."""
    lines = [
        f"sent consignment {result['message_id']} (document {result['document_id']})",
        f"package saved to {result['package']}",
    ]
    lines += [_streamed_line(a) for a in result.get("attachments", []) if a["streamed"]]
    if "event" not in result:
        return [*lines, "not waiting for the receipt (--no-wait)"]
    if result["event"] == "rejected":
        lines.append(
            f"REJECTED by the hub at {result['hub_time']}: {result['error_code']}: "
            f"{result['reason']}"
        )
    else:
        lines.append(
            f"accepted by the hub at {result['hub_time']} for {', '.join(result['recipients'])}"
        )
    return [*lines, f"receipt saved to {result['receipt']}"]


__all__ = ["STEP_THRESHOLD", "check_attachments", "send_document", "send_lines"]
