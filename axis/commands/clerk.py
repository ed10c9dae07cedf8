"""Clerk commands: send documents, take the inbox, answer with statuses, trace."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import typer

from axis.client.inbox_store import InboxStore
from axis.client.profile import Profile, load_profile
from axis.commands.clerk_io import (
    SENT_RECORD_SUFFIX,
    Side,
    broker_errors,
    check_message_id,
    document_side,
    merge_flags,
    quiet_amqp_logs,
    read_metadata,
)
from axis.commands.clerk_send import (
    STEP_THRESHOLD,
    check_attachments,
    send_document,
    send_lines,
)
from axis.commands.common import JsonOption, emit, read_file, reporting
from axis.commands.profile_cmd import profile_app, profile_create
from axis.commands.progress import Bars, NoProgressOption, progress_wanted
from axis.errors import error_for_code
from axis.trace import render_timeline
from envelopes.errors import InvalidMetadata
from envelopes.model import DocumentPackage
from envelopes.parser import parse_package
from envelopes.status_codes import StatusCode
from routing.decide import RECIPIENT_CODES, SENDER_CODES
from routing.errors import QueryRefused, StatusCodeRefused

ProfileOption = typer.Option(
    None,
    "--profile",
    "-p",
    envvar="AXIS_PROFILE",
    help="Client profile TOML (default: $AXIS_PROFILE).",
)
SenderOrganOption = typer.Option(
    None, "--organ", help="The document's sender organ, when your system is a party to "
    "documents of several organs with this DocumentId (a document is organ + id).",
)

inbox_app = typer.Typer(
    help="Take and list what the hub delivered to this system.", no_args_is_help=True
)


def send(
    metadata: Path | None = typer.Argument(
        None, help="Metadata file (TOML or JSON); flags override."
    ),
    to: list[str] = typer.Option([], "--to", help="Recipient organ id (repeat for several)."),
    subject: str | None = typer.Option(None, "--subject"),
    code: str | None = typer.Option(None, "--code", help="Number/notation, e.g. 7816/VPCP-TTĐT."),
    type_name: str | None = typer.Option(None, "--type-name", help="e.g. Công văn."),
    priority: int | None = typer.Option(None, "--priority", min=0, max=4),
    document_id: str | None = typer.Option(None, "--document-id"),
    attach: list[Path] = typer.Option([], "--attach", help="File to attach (repeatable)."),
    message_id: str | None = typer.Option(
        None, "--message-id", help="Consignment id (default: a new UUID)."
    ),
    out_dir: Path = typer.Option(
        Path("sent"), "--out-dir", help="Where the package and receipt go."
    ),
    timeout: float = typer.Option(
        30.0, "--timeout", min=0.1, help="Seconds to wait for the receipt."
    ),
    no_wait: bool = typer.Option(False, "--no-wait", help="Do not wait for the receipt."),
    inline_max: int | None = typer.Option(
        None, "--inline-max", min=0, help="Files above this many bytes are streamed, not put "
        "in the package (default: the profile's inline_attachment_max, 4 MiB).",
    ),
    no_progress: bool = NoProgressOption,
    profile: Path | None = ProfileOption,
    as_json: bool = JsonOption,
) -> None:
    """Build, sign and submit a document package; wait for the hub's signed receipt.

    An attached file above --inline-max is uploaded to the hub in chunks first (resumed
    if an earlier try was cut short) and the package carries a signed reference to it.

    The signed package is saved as OUT_DIR/<consignment>.edxml and the receipt as
    OUT_DIR/<consignment>.receipt.xml (check it later with `axis receipt verify`);
    OUT_DIR/<consignment>.sent.json records that this system sent it (`axis status`
    reads it). A rejection by the hub exits 1 with the hub's code.

    Example: axis send --to 000.00.00.H41 --subject "V/v họp" --code 12/VPCP --attach a.pdf
    """
    quiet_amqp_logs()
    with reporting(as_json):
        check_message_id(message_id)
        prof = load_profile(profile)
        meta = read_metadata(metadata, read_file(metadata, "metadata file") if metadata else None)
        merge_flags(
            meta,
            prof.system_id,
            prof.organ_name,
            to=to,
            subject=subject,
            code=code,
            type_name=type_name,
            priority=priority,
            document_id=document_id,
        )
        sizes = check_attachments(meta, attach, prof.max_attachment_bytes)
        inline_max = prof.inline_attachment_max if inline_max is None else inline_max
        inline = sum(size for size in sizes if size <= inline_max)
        with Bars(progress_wanted(as_json, no_progress)) as bars:
            result = asyncio.run(send_document(
                prof, meta, attach, inline_max=inline_max, message_id=message_id,
                out_dir=out_dir, timeout=timeout, no_wait=no_wait, bars=bars,
                chatty=inline > STEP_THRESHOLD and not as_json))  # fmt: skip
        if result.get("event") != "rejected":
            emit(as_json, result, lambda: send_lines(result))
            return
        if not as_json:
            emit(False, result, send_lines(result))
        # The hub's own code, so scripts see one error shape for every refusal.
        raise error_for_code(result["error_code"] or "")(
            result["reason"] or "rejected by the hub",
            message_id=result["message_id"],
            package=result["package"],
            receipt=result["receipt"],
        )


@inbox_app.command("fetch")
def inbox_fetch(
    to: Path = typer.Option(Path("inbox"), "--to", help="Folder to store items in."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Take at most this many."),
    no_progress: bool = NoProgressOption,
    profile: Path | None = ProfileOption,
    as_json: bool = JsonOption,
) -> None:
    """Take what waits in the inbox: verify, store, ack, and answer documents with status 01.

    Each item goes to its own folder under --to: the package or receipt exactly as
    received, attachments unpacked byte-identical (documents), and meta.json. A
    document's streamed files are downloaded first (resumed under --to/.downloads if an
    earlier run was cut short). An item is acknowledged only once it is stored; a copy
    already stored is skipped.
    """
    quiet_amqp_logs()
    with reporting(as_json):
        prof = load_profile(profile)
        store = InboxStore(to, prof.system_id)
        with Bars(progress_wanted(as_json, no_progress)) as bars:
            items = asyncio.run(_fetch(prof, store, limit, as_json, bars))
        emit(
            as_json,
            {"fetched": items, "folder": str(to)},
            lambda: (
                [f"{i['kind']:8} {i['id']}  {i['summary']}" for i in items]
                + [f"{len(items)} item(s) stored in {to}"]
            ),
        )


async def _fetch(
    prof: Profile, store: InboxStore, limit: int | None, as_json: bool, bars: Bars
) -> list[dict[str, Any]]:
    from axis.client.agency import AgencyClient

    stored: list[dict[str, Any]] = []
    client = AgencyClient(prof.client_config(), download_dir=store.download_dir,
                          download_progress=lambda ref, done, total: bars.update(
                              ref.sha256, f"downloading {ref.name}", done, total))  # fmt: skip
    async with broker_errors("read the inbox"), client:
        client.remember(store.known_ids())
        async for item in client.fetch(max_items=limit):
            entry = store.save(item)
            await item.ack()
            stored.append(entry)
            if not as_json:
                typer.echo(f"stored {entry['kind']} {entry['id']}", err=True)
    return stored


@inbox_app.command("list")
def inbox_list(
    folder: Path = typer.Argument(Path("inbox"), help="The folder `inbox fetch` stored into."),
    as_json: bool = JsonOption,
) -> None:
    """Show what has been fetched, newest first."""
    with reporting(as_json):
        entries = InboxStore(folder).entries()
        emit(
            as_json,
            {"items": entries},
            lambda: (
                [f"{e['stored_at'][:19]}  {e['kind']:8} {e['id']}  {e['summary']}" for e in entries]
                or ["(nothing fetched yet)"]
            ),
        )


def status(
    document: Path = typer.Argument(
        ..., help="The document package (.edxml), or its folder under the inbox."
    ),
    code: str = typer.Option(..., "--code", help="Status code: 02-06, 13, 15 or 16."),
    description: str = typer.Option("", "--description", help="Free text for the other party."),
    inbox: Path = typer.Option(
        Path("inbox"),
        "--inbox",
        help="The folder `axis inbox fetch --to` stores into: a document stored there for "
        "this system was received by it.",
    ),
    sent: Path = typer.Option(
        Path("sent"),
        "--sent",
        help="The folder `axis send --out-dir` saves into: a document recorded there "
        f"(<consignment>{SENT_RECORD_SUFFIX}) was sent by this system.",
    ),
    profile: Path | None = ProfileOption,
    as_json: bool = JsonOption,
) -> None:
    """Send a status package about a received (02-06, 15, 16) or sent (13) document.

    The side is this system's, not an organ's: a recipient of a document
    `axis inbox fetch` stored for it (its folder, or one under --inbox), the sender
    of one `axis send` recorded (beside the package, or under --sent).
    With no such record nothing is sent (status.side_unknown); a code that does not
    fit the side is refused (status.code_refused). 01 is sent by `axis inbox fetch`.

    Example: axis status inbox/<item>/package.edxml --code 03 --description "vào sổ"
    """
    quiet_amqp_logs()
    with reporting(as_json):
        prof = load_profile(profile)
        if document.is_dir():
            document = document / "package.edxml"
        package = parse_package(read_file(document, "document package"))
        if not isinstance(package, DocumentPackage):
            raise InvalidMetadata(f"{document} is a status package, not a document")
        status_code = _status_code(code)
        side = document_side(document, package, prof.system_id, inbox=inbox, sent=sent)
        _check_side(status_code, side, prof.system_id)
        message_id = asyncio.run(_send_status(prof, package, status_code, description))
        emit(
            as_json,
            {
                "message_id": message_id,
                "document_id": package.document_id,
                "side": side,
                "status_code": status_code.value,
                "status_vi": status_code.vi,
                "status_en": status_code.en,
            },
            [
                f"sent status {status_code.value} {status_code.vi} ({status_code.en}) about "
                f"{package.document_id} as consignment {message_id}"
            ],
        )


def _status_code(code: str) -> StatusCode:
    """The status code a clerk may send by hand (01 is `axis inbox fetch`'s)."""
    try:
        status_code = StatusCode(code.strip().zfill(2))
    except ValueError:
        raise StatusCodeRefused(f"{code!r} is not a status code (02-06, 13, 15, 16)") from None
    if status_code is StatusCode.ARRIVED:
        raise StatusCodeRefused("status 01 is sent automatically when `axis inbox fetch` stores it")
    return status_code


def _check_side(status_code: StatusCode, side: Side, system_id: str) -> None:
    """Refuse a code that ``side`` may not send (the hub's rule, routing.decide)."""
    allowed = SENDER_CODES if side == "sender" else RECIPIENT_CODES
    if status_code in allowed:
        return
    how = "`axis send` recorded sending it" if side == "sender" else "it fetched it"
    choices = ", ".join(sorted(c.value for c in allowed if c is not StatusCode.ARRIVED))
    raise StatusCodeRefused(
        f"status {status_code.value} ({status_code.en}) makes no sense from the document's "
        f"{side}: system {system_id} is its {side} ({how}); the {side} may send {choices}"
    )


async def _send_status(
    prof: Profile, package: DocumentPackage, code: StatusCode, description: str
) -> str:
    from axis.client.agency import AgencyClient

    async with broker_errors("send the status"), AgencyClient(prof.client_config()) as client:
        return await client.send_status(package, code, description)


def trace(
    ident: str = typer.Argument(..., help="Consignment id or edXML DocumentId."),
    profile: Path | None = typer.Option(
        None, "--profile", "-p", help="Ask the hub as this agency (default: $AXIS_PROFILE)."
    ),
    home: Path | None = typer.Option(
        None, "--home", help="Operators: read the hub home's store (default: $AXIS_HOME)."
    ),
    organ: str | None = SenderOrganOption,
    as_json: bool = JsonOption,
) -> None:
    """The timeline of one document: submitted, accepted or rejected, routed, statuses.

    With --profile (or $AXIS_PROFILE) the hub answers over the broker, and only about
    documents this system is a party to; with --home an operator reads the store.
    Status codes are shown with their Vietnamese and English names.
    """
    quiet_amqp_logs()
    with reporting(as_json):
        if home is not None and profile is not None:
            raise typer.BadParameter("give --profile or --home, not both")
        from_hub = profile is not None or (home is None and bool(os.environ.get("AXIS_PROFILE")))
        timeline = (
            asyncio.run(_trace_from_hub(profile, ident, organ))
            if from_hub
            else _trace_from_home(home, ident, organ)
        )
        emit(as_json, timeline, lambda: render_timeline(timeline))


def _trace_from_home(home: Path | None, ident: str, organ: str | None) -> dict[str, Any]:
    from axis.settings import load_settings
    from axis.store import Store
    from routing.contract import timeline_json

    store = Store(load_settings(home).db_url)
    try:
        events = (store.document_events(organ, ident) if organ
                  else store.trace_document(ident))  # fmt: skip
    finally:
        store.dispose()
    if not events:
        raise QueryRefused(f"the hub has no document or consignment {ident!r}")
    return timeline_json(events)


async def _trace_from_hub(profile: Path | None, ident: str, organ: str | None) -> dict[str, Any]:
    from axis.client.agency import AgencyClient

    prof = load_profile(profile)
    async with broker_errors("ask the hub"), AgencyClient(prof.client_config()) as client:
        answer = await client.trace(ident, organ=organ)
    answer.pop("ok", None)
    return answer


__all__ = ["inbox_app", "profile_app", "profile_create", "send", "status", "trace"]
