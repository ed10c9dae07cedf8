"""What an agency system needs to talk to the hub: :class:`ClientConfig`.

Kept apart from :mod:`axis.client.agency` (which re-exports it) so the SDK's modules
can all name it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from envelopes.model import Organization
from signing.keys import SigningKey

INLINE_ATTACHMENT_MAX = 4 * 1024 * 1024  # larger files are streamed, not put in the package
MAX_ATTACHMENT_BYTES = 2 * 1024**3  # the hub's default max_attachment_bytes


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """What an agency system needs to talk to the hub."""

    amqp_url: str
    system_id: str
    signing_key: SigningKey
    hub_certificate: x509.Certificate
    trust_anchors: tuple[x509.Certificate, ...]
    organ: Organization | None = None
    failover: tuple[str, ...] = ()  # other nodes of the broker's cluster, "host:port"
    # Files up to this size travel inside the package; larger ones are streamed in chunks.
    inline_attachment_max: int = INLINE_ATTACHMENT_MAX
    max_attachment_bytes: int = MAX_ATTACHMENT_BYTES  # refused before any upload above it
