"""What the clerk commands share: coded broker failures, quiet library logs, metadata, names."""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiormq

from axis.errors import HubNotReady
from envelopes.errors import AxisError, InvalidMetadata
from routing.errors import AccessRefused, InvalidMessageId, TransportError

DEFAULT_CLIENT_AMQP_URL = "amqp://127.0.0.1:5672/"
# The hub's rule (routing.decide), checked before anything is sent.
_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,128}")


def check_message_id(message_id: str | None) -> None:
    """Refuse a consignment id the hub would reject: 1-128 printable ASCII, no spaces."""
    if message_id is not None and not _MESSAGE_ID.fullmatch(message_id):
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
    if not raw:
        return DEFAULT_CLIENT_AMQP_URL
    parts = urlsplit(raw)
    host = parts.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


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
