"""Clerk commands: send documents, take the inbox, answer with statuses, trace."""

from __future__ import annotations

import asyncio
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from axis.commands.common import JsonOption, emit, read_file, reporting, write_file
from axis.errors import InvalidMetadata, StatusCodeRefused
from axis.inbox_store import InboxStore
from axis.profile import load_profile, profile_toml
from axis.trace import render_timeline
from envelopes.builder import attachment_from_bytes, document_from_metadata
from envelopes.model import DocumentPackage
from envelopes.parser import parse_package
from envelopes.status_codes import StatusCode
from routing.decide import RECIPIENT_CODES, SENDER_CODES

ProfileOption = typer.Option(
    None,
    "--profile",
    "-p",
    envvar="AXIS_PROFILE",
    help="Client profile TOML (default: $AXIS_PROFILE).",
)
PROGRESS_THRESHOLD = 5 * 1024 * 1024

profile_app = typer.Typer(
    help="Client profiles: the broker account, keys and certificates of one agency system.",
    no_args_is_help=True,
)
inbox_app = typer.Typer(
    help="Take and list what the hub delivered to this system.", no_args_is_help=True
)


@profile_app.command("create")
def profile_create(
    registration: Path = typer.Argument(..., help="JSON printed by `axis agency register --json`."),
    key: Path = typer.Option(..., "--key", help="The system's signing key (PEM)."),
    cert: Path = typer.Option(..., "--cert", help="The system's registered certificate (PEM)."),
    hub_cert: Path = typer.Option(..., "--hub-cert", help="The hub's certificate (pki/hub.pem)."),
    ca: Path = typer.Option(
        ..., "--ca", help="The CA that issues agency certificates (pki/ca.pem)."
    ),
    amqp_url: str = typer.Option(
        "amqp://127.0.0.1:5672/",
        "--amqp-url",
        help="Broker address (credentials come from the registration).",
    ),
    organ_name: str = typer.Option("", "--organ-name", help="The agency's name, for packages."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the profile."),
    as_json: bool = JsonOption,
) -> None:
    """Write a client profile from the output of `axis agency register --json`.

    Example: axis profile create reg.json --key g22.key --cert g22.pem --hub-cert hub.pem
    --ca ca.pem -o g22.toml
    """
    with reporting(as_json):
        try:
            reg = json.loads(read_file(registration, "registration file"))
            system_id, password = reg["system_id"], reg["amqp_password"]
        except (ValueError, KeyError, TypeError):
            raise InvalidMetadata(
                f"{registration} is not the JSON of `axis agency register`"
            ) from None
        for path, what in (
            (key, "key"),
            (cert, "certificate"),
            (hub_cert, "hub certificate"),
            (ca, "CA certificate"),
        ):
            read_file(path, what)
        values = {
            "system_id": system_id,
            "organ_name": organ_name or reg.get("name", ""),
            "amqp_url": amqp_url,
            "password": password,
            "key": str(key.resolve()),
            "cert": str(cert.resolve()),
            "hub_cert": str(hub_cert.resolve()),
            "ca": str(ca.resolve()),
        }
        write_file(out, profile_toml(values).encode())
        out.chmod(0o600)
        load_profile(out)
        emit(
            as_json,
            {"profile": str(out), "system_id": system_id},
            [f"profile for {system_id} written to {out}"],
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
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for the receipt."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Do not wait for the receipt."),
    profile: Path | None = ProfileOption,
    as_json: bool = JsonOption,
) -> None:
    """Build, sign and submit a document package; wait for the hub's receipt.

    Example: axis send --to 000.00.00.H41 --subject "V/v họp" --code 12/VPCP --attach a.pdf
    """
    with reporting(as_json):
        prof = load_profile(profile)
        meta = _metadata(
            metadata,
            prof.system_id,
            prof.organ_name,
            to=to,
            subject=subject,
            code=code,
            type_name=type_name,
            priority=priority,
            document_id=document_id,
        )
        package = document_from_metadata(meta, [_attachment(p, as_json) for p in attach])
        result = asyncio.run(_send(prof, package, message_id, out_dir, timeout, no_wait))
        emit(as_json, result, lambda: _send_lines(result))


async def _send(
    prof: Any,
    package: DocumentPackage,
    message_id: str | None,
    out_dir: Path,
    timeout: float,
    no_wait: bool,
) -> dict[str, Any]:
    from axis.client import AgencyClient

    async with AgencyClient(prof.client_config(), auto_arrived=False) as client:
        signed = client.sign(package)
        consignment = await client.send(signed, message_id=message_id)
        stem = out_dir / _safe(consignment)
        write_file(stem.with_suffix(".edxml"), signed)
        result: dict[str, Any] = {
            "message_id": consignment,
            "document_id": package.document_id,
            "package": str(stem.with_suffix(".edxml")),
        }
        if no_wait:
            return result
        receipt = await client.wait_receipt(consignment, timeout)
        write_file(stem.with_suffix(".receipt.xml"), receipt.raw)
        r = receipt.receipt
        result.update(
            {
                "receipt": str(stem.with_suffix(".receipt.xml")),
                "event": r.event,
                "hub_time": r.hub_time.isoformat(),
                "recipients": list(r.recipients),
                "error_code": r.error_code or None,
                "reason": r.reason or None,
            }
        )
        return result


def _send_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        f"sent consignment {result['message_id']} (document {result['document_id']})",
        f"package saved to {result['package']}",
    ]
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


def _metadata(path: Path | None, system_id: str, organ_name: str, **flags: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if path is not None:
        raw = read_file(path, "metadata file")
        try:
            meta = (
                json.loads(raw)
                if path.suffix.lower() == ".json"
                else tomllib.loads(raw.decode("utf-8"))
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidMetadata(f"metadata file {path} does not parse: {exc}") from None
    meta.setdefault("from", {"organ_id": system_id, "organ_name": organ_name})
    if flags.get("to"):
        meta["to"] = [{"organ_id": organ} for organ in flags["to"]]
    for key in ("subject", "type_name", "priority", "document_id"):
        if flags.get(key) is not None:
            meta[key] = flags[key]
    if flags.get("code"):
        number, _, notation = str(flags["code"]).partition("/")
        meta["code"] = {"number": number, "notation": notation}
    meta.setdefault("promulgation_date", datetime.now(UTC).date().isoformat())
    return meta


def _attachment(path: Path, as_json: bool) -> Any:
    data = read_file(path, "attachment")
    if len(data) > PROGRESS_THRESHOLD and not as_json:
        typer.echo(f"packing {path.name} ({len(data) / 1e6:.1f} MB)…", err=True)
    return attachment_from_bytes(path.name, data)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.," else "_" for c in name)


@inbox_app.command("fetch")
def inbox_fetch(
    to: Path = typer.Option(Path("inbox"), "--to", help="Folder to store items in."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Take at most this many."),
    profile: Path | None = ProfileOption,
    as_json: bool = JsonOption,
) -> None:
    """Take what waits in the inbox: verify, store, ack, and answer documents with status 01."""
    with reporting(as_json):
        prof = load_profile(profile)
        items = asyncio.run(_fetch(prof, InboxStore(to), limit, as_json))
        emit(
            as_json,
            {"fetched": items},
            lambda: (
                [f"{i['kind']:8} {i['id']}  {i['summary']}" for i in items]
                + [f"{len(items)} item(s) stored in {to}"]
            ),
        )


async def _fetch(
    prof: Any, store: InboxStore, limit: int | None, as_json: bool
) -> list[dict[str, Any]]:
    from axis.client import AgencyClient

    stored: list[dict[str, Any]] = []
    async with AgencyClient(prof.client_config()) as client:
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
                [f"{e['stored_at'][:19]}  {e['kind']:8} {e['summary']}" for e in entries]
                or ["(nothing fetched yet)"]
            ),
        )


def status(
    document: Path = typer.Argument(..., help="The document package (.edxml) the status is about."),
    code: str = typer.Option(..., "--code", help="Status code: 02-06, 13, 15 or 16."),
    description: str = typer.Option("", "--description", help="Free text for the other party."),
    profile: Path | None = ProfileOption,
    as_json: bool = JsonOption,
) -> None:
    """Send a status package about a received (02-06, 15, 16) or sent (13) document."""
    with reporting(as_json):
        prof = load_profile(profile)
        package = parse_package(read_file(document, "document package"))
        if not isinstance(package, DocumentPackage):
            raise InvalidMetadata(f"{document} is a status package, not a document")
        status_code = _status_code(code, package, prof.system_id)
        message_id = asyncio.run(_send_status(prof, package, status_code, description))
        emit(
            as_json,
            {
                "message_id": message_id,
                "document_id": package.document_id,
                "status_code": status_code.value,
            },
            [
                f"sent status {status_code.value} {status_code.vi} ({status_code.en}) about "
                f"{package.document_id} as consignment {message_id}"
            ],
        )


def _status_code(code: str, package: DocumentPackage, system_id: str) -> StatusCode:
    try:
        status_code = StatusCode(code.zfill(2))
    except ValueError:
        raise StatusCodeRefused(f"{code!r} is not a status code (02-06, 13, 15, 16)") from None
    if status_code is StatusCode.ARRIVED:
        raise StatusCodeRefused("status 01 is sent automatically when `axis inbox fetch` stores it")
    is_sender = package.sender.organ_id == system_id
    allowed = SENDER_CODES if is_sender else RECIPIENT_CODES
    if status_code not in allowed:
        side = "the sender" if is_sender else "a recipient"
        raise StatusCodeRefused(
            f"status {status_code.value} ({status_code.en}) makes no sense "
            f"from {side} of the document"
        )
    return status_code


async def _send_status(
    prof: Any, package: DocumentPackage, code: StatusCode, description: str
) -> str:
    from axis.client import AgencyClient

    async with AgencyClient(prof.client_config()) as client:
        return await client.send_status(package, code, description)


def trace(
    ident: str = typer.Argument(..., help="Consignment id or edXML DocumentId."),
    profile: Path | None = typer.Option(
        None, "--profile", "-p", help="Ask the hub as this agency (default: $AXIS_PROFILE)."
    ),
    home: Path | None = typer.Option(None, "--home", help="Operators: read the hub home's store."),
    as_json: bool = JsonOption,
) -> None:
    """The timeline of one document: submitted, accepted or rejected, delivered, statuses."""
    with reporting(as_json):
        timeline = (
            _trace_from_home(home, ident)
            if home is not None or (profile is None and not _profile_env())
            else asyncio.run(_trace_from_hub(profile, ident))
        )
        emit(as_json, timeline, lambda: render_timeline(timeline))


def _profile_env() -> bool:
    import os

    return bool(os.environ.get("AXIS_PROFILE"))


def _trace_from_home(home: Path | None, ident: str) -> dict[str, Any]:
    from axis.errors import QueryRefused
    from axis.settings import load_settings
    from axis.store import Store
    from axis.trace import timeline_json

    store = Store(load_settings(home).db_url)
    try:
        events = store.trace(ident)
    finally:
        store.dispose()
    if not events:
        raise QueryRefused(f"the hub has no document or consignment {ident!r}")
    return timeline_json(events)


async def _trace_from_hub(profile: Path | None, ident: str) -> dict[str, Any]:
    from axis.client import AgencyClient

    async with AgencyClient(load_profile(profile).client_config()) as client:
        answer = await client.trace(ident)
    answer.pop("ok", None)
    return answer
