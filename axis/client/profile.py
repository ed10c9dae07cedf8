"""Client profiles: what a clerk's machine needs to act as one agency system.

A profile is a TOML file (named by ``--profile`` or ``$AXIS_PROFILE``)::

    system_id = "000.00.00.G22"
    organ_name = "Văn phòng Chính phủ"
    amqp_url = "amqp://127.0.0.1:5672/"
    password = "…"                 # the account password `axis agency register` printed
    key = "000.00.00.G22.key"      # paths relative to the profile file
    cert = "000.00.00.G22.pem"
    hub_cert = "hub.pem"
    ca = "ca.pem"
    amqp_failover = ["127.0.0.1:5673"]   # optional: other nodes of the broker's cluster
    inline_attachment_max = 4194304      # optional: larger files are streamed (bytes)
    max_attachment_bytes = 2147483648    # optional: larger files are refused (bytes)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from axis.client.agency import ClientConfig
from axis.client.config import INLINE_ATTACHMENT_MAX, MAX_ATTACHMENT_BYTES
from axis.errors import InvalidSettings, ProfileNotFound
from axis.pki_files import load_credential
from axis.settings import check_addresses
from envelopes.model import Organization
from signing.keys import load_certificate, load_certificates

REQUIRED = ("system_id", "amqp_url", "password", "key", "cert", "hub_cert", "ca")


@dataclass(frozen=True, slots=True)
class Profile:
    """A parsed profile; paths are absolute."""

    path: Path
    system_id: str
    organ_name: str
    amqp_url: str
    password: str
    key: Path
    cert: Path
    hub_cert: Path
    ca: Path
    failover: tuple[str, ...] = ()
    inline_attachment_max: int = INLINE_ATTACHMENT_MAX
    max_attachment_bytes: int = MAX_ATTACHMENT_BYTES

    def broker_url(self) -> str:
        """``amqp_url`` with the system's credentials in it."""
        parts = urlsplit(self.amqp_url)
        host = parts.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        netloc = f"{quote(self.system_id, safe='')}:{quote(self.password, safe='')}@{host}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))

    def client_config(self) -> ClientConfig:
        """Load the keys and certificates into a client configuration."""
        return ClientConfig(
            amqp_url=self.broker_url(),
            system_id=self.system_id,
            signing_key=load_credential(self.key, self.cert),
            hub_certificate=load_certificate(_read(self.hub_cert, "hub certificate")),
            trust_anchors=tuple(load_certificates(_read(self.ca, "CA certificate"))),
            failover=self.failover,
            inline_attachment_max=self.inline_attachment_max,
            max_attachment_bytes=self.max_attachment_bytes,
            organ=Organization(
                self.system_id, organ_name=self.organ_name, organization_in_charge=self.organ_name
            ),
        )


def resolve_profile_path(path: Path | None, env: Mapping[str, str] | None = None) -> Path:
    """The profile named by the argument, else ``$AXIS_PROFILE``."""
    env = os.environ if env is None else env
    if path is not None:
        return path
    if env.get("AXIS_PROFILE"):
        return Path(env["AXIS_PROFILE"])
    raise ProfileNotFound("no profile given: use --profile FILE or set AXIS_PROFILE")


def load_profile(path: Path | None = None, env: Mapping[str, str] | None = None) -> Profile:
    """Read and check a profile file."""
    path = resolve_profile_path(path, env)
    data = read_toml_file(path, "profile")
    missing = [key for key in REQUIRED if not isinstance(data.get(key), str) or not data[key]]
    if missing:
        raise InvalidSettings(f"profile {str(path)!r} lacks {', '.join(missing)}")
    _check_amqp_url(path, data["amqp_url"])
    base = path.resolve().parent
    return Profile(
        path=path,
        system_id=data["system_id"],
        organ_name=str(data.get("organ_name", "")),
        amqp_url=data["amqp_url"],
        password=data["password"],
        key=base / data["key"],
        cert=base / data["cert"],
        hub_cert=base / data["hub_cert"],
        ca=base / data["ca"],
        failover=check_addresses(data.get("amqp_failover", [])),
        inline_attachment_max=_size(path, data, "inline_attachment_max", INLINE_ATTACHMENT_MAX),
        max_attachment_bytes=_size(path, data, "max_attachment_bytes", MAX_ATTACHMENT_BYTES),
    )


def _size(path: Path, data: Mapping[str, Any], key: str, default: int) -> int:
    """An optional byte count of the profile: a non-negative integer."""
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidSettings(f"profile {str(path)!r}: {key} must be a non-negative integer "
                              "(bytes)")  # fmt: skip
    return value


def without_credentials(url: str) -> str:
    """``url`` without its user and password: the broker address a profile stores."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def read_toml_file(path: Path, what: str) -> dict[str, Any]:
    """The table of the TOML file ``path`` (``config.profile_not_found`` if there is none,
    ``config.invalid`` if it is not TOML); ``what`` names the file in the messages."""
    if not path.is_file():
        raise ProfileNotFound(f"{what} {str(path)!r} does not exist", path=str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidSettings(f"{what} {str(path)!r} is not valid TOML: {exc}") from None


def profile_toml(values: Mapping[str, Any]) -> str:
    """A profile file's text (keys in the documented order)."""
    order = ("system_id", "organ_name", "amqp_url", "password", "key", "cert", "hub_cert", "ca")
    lines = ["# Axis client profile. Keep it private: it holds the system's password."]
    for key in order:
        value = str(values.get(key, ""))
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key} = "{escaped}"')
    return "\n".join(lines) + "\n"


def _check_amqp_url(path: Path, url: str) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise InvalidSettings(f"profile {str(path)!r}: invalid amqp_url: {exc}") from None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise InvalidSettings(
            f"profile {str(path)!r}: amqp_url {url!r} must be amqp://HOST[:PORT]/VHOST"
        )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidSettings(f"cannot read the {what} {str(path)!r}: {exc.strerror}") from None
