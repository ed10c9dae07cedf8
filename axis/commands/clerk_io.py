"""What the clerk commands share: coded broker failures, quiet library logs, metadata, names,
and the records that tell which side of a document this system is on (``axis status``)."""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aio_pika
import aiormq

from axis.client.inbox_store import InboxStore, fetched_document, item_meta
from axis.client.profile import without_credentials
from axis.commands.common import write_file
from axis.errors import HubNotReady, StatusSideUnknown
from envelopes.errors import AxisError, InvalidMetadata
from envelopes.model import DocumentPackage
from routing.decide import valid_message_id
from routing.errors import AccessRefused, InvalidMessageId, TransportError

DEFAULT_CLIENT_AMQP_URL = "amqp://127.0.0.1:5672/"
SENT_RECORD_SUFFIX = ".sent.json"
Side = Literal["sender", "recipient"]
# The hub's rule (routing.decide), checked before anything is sent.


def check_message_id(message_id: str | None) -> None:
    """Refuse a consignment id the hub would reject: 1-128 printable ASCII, no spaces."""
    if message_id is not None and not valid_message_id(message_id):
        raise InvalidMessageId(
            f"--message-id {message_id!r} must be 1-128 printable ASCII characters, no spaces"
        )


def quiet_amqp_logs() -> None:
    """Keep the AMQP libraries' own log lines off a clerk's terminal: errors are reported coded."""
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@asynccontextmanager
async def broker_errors(what: str) -> AsyncIterator[None]:
    """Turn the AMQP libraries' exceptions raised inside into coded transport errors."""
    try:
        yield
    except AxisError:
        raise
    except aiormq.exceptions.ChannelNotFoundEntity as exc:
        raise HubNotReady(
            f"cannot {what}: {_first_line(exc)}; the hub has never run in this virtual host, "
            "or the profile's amqp_url names the wrong one"
        ) from None
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise AccessRefused(f"cannot {what}: {_first_line(exc)}") from None
    except aiormq.exceptions.InvalidFrameError as exc:
        if "Connection.Close" not in str(exc):
            raise TransportError(f"cannot {what}: {_first_line(exc)}") from None
        # RabbitMQ closes the opening connection when the account may not use the vhost.
        raise AccessRefused(
            f"cannot {what}: the broker closed the connection while opening it; the system's "
            "account has no access to the virtual host the profile's amqp_url names"
        ) from None
    except (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException, OSError) as exc:
        raise TransportError(
            f"cannot {what}: the broker connection failed: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def client_amqp_url(env: dict[str, str] | None = None) -> str:
    """The broker address for a new profile: ``$AXIS_AMQP_URL`` without its credentials."""
    raw = (os.environ if env is None else env).get("AXIS_AMQP_URL", "")
    return without_credentials(raw) if raw else DEFAULT_CLIENT_AMQP_URL


def read_metadata(path: Path | None, raw: bytes | None) -> dict[str, Any]:
    """A metadata file's mapping (JSON when it ends in .json, else TOML)."""
    if path is None or raw is None:
        return {}
    try:
        meta = (
            json.loads(raw)
            if path.suffix.lower() == ".json"
            else tomllib.loads(raw.decode("utf-8"))
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMetadata(f"metadata file {path} does not parse: {exc}") from None
    if not isinstance(meta, dict):
        raise InvalidMetadata(f"metadata file {path} must hold a mapping of keys")
    return meta


def merge_flags(meta: dict[str, Any], system_id: str, organ_name: str, **flags: Any) -> None:
    """Apply the command-line flags over the metadata file, in place."""
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


def safe_name(name: str) -> str:
    """``name`` as one file name: no separators, no leading dot."""
    cleaned = "".join(c if c.isalnum() or c in "-_.," else "_" for c in name).lstrip(".")
    return cleaned or "item"


def sent_paths(out_dir: Path, consignment: str) -> tuple[Path, Path]:
    """Where a sent package and its receipt go (dots in the id are kept, not a suffix)."""
    stem = safe_name(consignment)
    return out_dir / f"{stem}.edxml", out_dir / f"{stem}.receipt.xml"


# -- which side of a document this system is on -------------------------------------------


def sent_record_path(package_path: Path) -> Path:
    """The record `axis send` keeps beside a sent package: ``<consignment>.sent.json``."""
    return package_path.with_name(package_path.name.removesuffix(".edxml") + SENT_RECORD_SUFFIX)


def write_sent_record(
    package_path: Path,
    system_id: str,
    message_id: str,
    package: DocumentPackage,
    event: str | None = None,
) -> None:
    """Record that ``system_id`` submitted ``package`` (``event``: the receipt's, once known)."""
    record = {
        "system_id": system_id,
        "message_id": message_id,
        "document_id": package.document_id,
        "sender": package.sender.organ_id,
        "recipients": [organ.organ_id for organ in package.recipients],
        "package": package_path.name,
        "event": event,
        "recorded_at": datetime.now(UTC).isoformat(),
    }
    text = json.dumps(record, ensure_ascii=False, indent=2)
    write_file(sent_record_path(package_path), text.encode("utf-8"))


def read_sent_record(path: Path) -> dict[str, Any] | None:
    """A sent record, None if there is none (or it does not parse)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def document_side(
    document: Path, package: DocumentPackage, system_id: str, *, inbox: Path, sent: Path
) -> Side:
    """Which side of ``package`` this system is on, by system (never by organ id).

    The recipient if `axis inbox fetch` stored the document for this system (the
    item's own folder, or one under ``inbox``); else the sender if `axis send`
    recorded sending it (the record beside ``document``, or one under ``sent``). A
    system that did both is a recipient, as the hub judges it. With neither record
    it raises ``status.side_unknown`` rather than guess.
    """
    key = (package.document_id, package.sender.organ_id)
    if _received(document, system_id, key, inbox):
        return "recipient"
    if _sent(document, system_id, key, sent):
        return "sender"
    raise StatusSideUnknown(
        f"no record that system {system_id} received or sent document {key[0]!r} of organ "
        f"{key[1]}: neither an item `axis inbox fetch` stored (beside {str(document)!r} or "
        f"under --inbox {str(inbox)!r}) nor a package `axis send` recorded (a "
        f"<consignment>{SENT_RECORD_SUFFIX} beside it or under --sent {str(sent)!r}); "
        "name the right folder with --inbox or --sent",
        document_id=key[0],
        system_id=system_id,
    )


def _received(document: Path, system_id: str, key: tuple[str, str], inbox: Path) -> bool:
    own = item_meta(document.parent)
    if own is not None and fetched_document(own, system_id, *key):
        return True
    return InboxStore(inbox).has_document(system_id, *key)


def _sent(document: Path, system_id: str, key: tuple[str, str], sent: Path) -> bool:
    paths = [sent_record_path(document)]
    if sent.is_dir():
        paths += sorted(sent.glob(f"*{SENT_RECORD_SUFFIX}"))
    return any(_sent_by(read_sent_record(path), system_id, key) for path in paths)


def _sent_by(record: dict[str, Any] | None, system_id: str, key: tuple[str, str]) -> bool:
    """Whether ``record`` is of ``system_id`` sending the document ``key`` (and not refused)."""
    return (
        record is not None
        and record.get("system_id") == system_id
        and (record.get("document_id"), record.get("sender")) == key
        and record.get("event") != "rejected"
    )
