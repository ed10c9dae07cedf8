"""``axis log head`` and ``axis evidence export``: the evidence log's heads and bundles, from
the hub over the broker (a clerk, with a profile) or from the hub home (an operator)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from axis.commands.clerk_io import broker_errors, quiet_amqp_logs
from axis.commands.common import JsonOption, emit, reporting, write_file
from axis.evidence.bundle import Bundle, BundleEntry, RevocationFile, write_bundle
from axis.evidence.heads import head_summary

if TYPE_CHECKING:
    from axis.evidence.service import EvidenceService

log_app = typer.Typer(help="The hub's evidence log: its signed tree heads.",
                      no_args_is_help=True)  # fmt: skip
evidence_app = typer.Typer(help="Evidence bundles an auditor checks offline "
                           "(`axis audit verify`).", no_args_is_help=True)  # fmt: skip
T = TypeVar("T")

ProfileOption = typer.Option(
    None, "--profile", "-p", help="Ask the hub as this agency (default: $AXIS_PROFILE).")
HomeOption = typer.Option(
    None, "--home", help="Operators: read the hub home's store (default: $AXIS_HOME).")


@log_app.command("head")
def head_command(
    profile: Path | None = ProfileOption,
    home: Path | None = HomeOption,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the signed head (XML) here, and its RFC 3161 token, "
        "if any, beside it as FILE.tsr."),
    new: bool = typer.Option(
        False, "--new", help="Operators: sign a head over the whole log now (if it grew)."),
    as_json: bool = JsonOption,
) -> None:
    """The hub's newest signed tree head: size, root hash, time (signed XML with -o).

    Example:

        axis log head --profile g22.toml -o head-2026-12-05.xml
    """
    with reporting(as_json):
        if new and (profile is not None or home is None):
            raise typer.BadParameter("--new is for operators: give --home")
        data = ask_hub(profile, home, lambda c: c.log_head(), lambda e: _fresh_head(e, new))
        head = data["head"].encode("utf-8")
        token = base64.b64decode(data["timestamp"]) if data.get("timestamp") else None
        if out is not None:
            write_file(out, head)
            if token is not None:
                write_file(out.with_name(out.name + ".tsr"), token)
        summary = {**head_summary(head), "time_stamped": token is not None,
                   "file": str(out) if out else None}  # fmt: skip
        emit(as_json, summary if out else {**summary, "head": data["head"]},
             lambda: _head_lines(summary))  # fmt: skip


@evidence_app.command("export")
def export_command(
    ident: str = typer.Argument(..., help="A consignment id of yours, or a DocumentId."),
    out: Path = typer.Option(..., "--out", "-o", help="The bundle to write (ZIP)."),
    organ: str | None = typer.Option(
        None, "--organ", help="The document's sender organ (a document is organ + id)."),
    with_package: bool = typer.Option(
        False, "--with-package", help="Include the package itself (package.edxml)."),
    profile: Path | None = ProfileOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Write one self-contained evidence bundle about a document or consignment.

    It holds every receipt the hub signed about the consignments of the document's
    parties (a third system's refused attempts stay out), the sender system's registry
    entries, each with its inclusion proof to one signed tree head, that head and its
    RFC 3161 token, and the hub certificate. Check it offline with
    `axis audit verify FILE.zip --trust ca.pem`.

    Example:

        axis evidence export 000.00.00.G22,2026/12/05,1/VPCP -o evidence.zip -p g22.toml
    """
    with reporting(as_json):
        material = ask_hub(profile, home, lambda c: c.evidence(ident, organ=organ),
                        lambda e: _home_evidence(e, ident, organ))  # fmt: skip
        bundle = bundle_of(material, with_package)
        write_file(out, write_bundle(bundle))
        data = {"file": str(out), "subject": bundle.subject, "entries": len(bundle.entries),
                "tree_size": head_summary(bundle.head)["tree_size"],
                "time_stamped": bundle.timestamp is not None,
                "package": bundle.package is not None}  # fmt: skip
        emit(as_json, data, [
            f"wrote {out}: {len(bundle.entries)} log entries proven against the tree head of "
            f"size {data['tree_size']}" + (" (time-stamped)" if bundle.timestamp else ""),
            f"check it: axis audit verify {out} --trust <CA.pem>"])  # fmt: skip


def bundle_of(material: dict[str, Any], with_package: bool) -> Bundle:
    """The bundle the hub's ``evidence`` material describes."""
    package = material.get("package") if with_package else None
    return Bundle(
        subject=dict(material["subject"]),
        head=material["head"].encode("utf-8"),
        timestamp=_unb64(material.get("timestamp")),
        hub_certificate=material["hub_certificate"].encode("ascii"),
        entries=tuple(BundleEntry(e["type"], int(e["index"]), base64.b64decode(e["payload"]),
                                  tuple(bytes.fromhex(h) for h in e["path"]))
                      for e in material["entries"]),
        package=_unb64(package),
        exported_at=datetime.now(UTC),
        revocation=tuple(RevocationFile(m["kind"], base64.b64decode(m["der"]))
                         for m in material.get("revocation", ())),
    )  # fmt: skip


def ask_hub(
    profile: Path | None, home: Path | None,
    from_hub: Callable[[Any], Awaitable[dict[str, Any]]],
    from_home: Callable[[EvidenceService], dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    """Ask the hub over the broker (a profile) or read the hub home (an operator)."""
    if home is not None and profile is not None:
        raise typer.BadParameter("give --profile or --home, not both")
    if profile is not None or (home is None and os.environ.get("AXIS_PROFILE")):
        return asyncio.run(_over_broker(profile, from_hub))
    return with_home_evidence(home, from_home)


async def _over_broker(
    profile: Path | None, ask: Callable[[Any], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    from axis.client.agency import AgencyClient
    from axis.client.profile import load_profile

    quiet_amqp_logs()
    prof = load_profile(profile)
    async with broker_errors("ask the hub"), AgencyClient(prof.client_config()) as client:
        answer = await ask(client)
    answer.pop("ok", None)
    return answer


def with_home_evidence(home: Path | None, use: Callable[[EvidenceService], T]) -> T:
    """Run ``use`` on the evidence log of a hub home (store and hub key)."""
    from axis.evidence.service import EvidenceService
    from axis.pki_files import load_credential
    from axis.settings import load_settings
    from axis.store import Store

    settings = load_settings(home)
    store = Store(settings.db_url)
    try:
        key = load_credential(settings.hub_key_path, settings.hub_cert_path)
        return use(EvidenceService(store, key, tsa_url=settings.log_tsa_url))
    finally:
        store.dispose()


def _fresh_head(evidence: EvidenceService, new: bool) -> dict[str, Any]:
    if new:
        evidence.make_head()
    return evidence.head_data()


def _home_evidence(evidence: EvidenceService, ident: str, organ: str | None) -> dict[str, Any]:
    """The operator sees every document: a consignment id (of any system) or a DocumentId."""
    from axis.evidence.errors import LogEntryNotFound

    store = evidence.store
    documents = store.documents_named(ident, organ)
    if len(documents) == 1:
        return evidence.document_evidence(documents[0])
    if len(documents) > 1:
        raise LogEntryNotFound(f"{len(documents)} organs sent a document {ident!r}: give --organ")
    for event in store.trace(ident):  # a consignment id: its document, else itself
        if event.message_id == ident and event.submitter:
            parties = (store.document_parties(event.document_organ, event.document_id)
                       if event.document_organ and event.document_id else None)  # fmt: skip
            if parties and event.submitter in {parties.sender_system, *parties.recipients}:
                return evidence.document_evidence(parties, ident)
            return evidence.consignment_evidence(event.submitter, ident)
    raise LogEntryNotFound(f"the hub has no document or consignment {ident!r}")


def _head_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"tree size  {summary['tree_size']}", f"root hash  {summary['root_hash']}",
             f"signed at  {summary['timestamp']}",
             f"time-stamp {'RFC 3161 token' if summary['time_stamped'] else 'none'}"]  # fmt: skip
    if summary.get("file"):
        lines.append(f"written to {summary['file']}")
    return lines


def _unb64(text: str | None) -> bytes | None:
    return None if not text else base64.b64decode(text)


