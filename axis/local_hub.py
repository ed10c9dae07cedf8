"""A throwaway hub on the local broker: a vhost of its own, a hub home in a folder, in-process.

``axis demo`` and ``axis conformance run`` both need a real hub for a few seconds
without touching any other: a fresh virtual host, a hub home (SQLite store, test
CA, hub key) in a given folder, the hub running in this process, systems
registered through the same path as ``axis agency register``. Leaving the context
stops the hub and deletes the vhost and every broker user it created.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from axis.client.profile import Profile
from axis.errors import AgencyExists
from axis.pki_files import PkiPaths, init_pki
from axis.provision import Management
from axis.settings import Settings, load_settings, write_default_config
from axis.store import Store
from routing.hub import Hub


@dataclass(slots=True)
class LocalHub:
    """The running hub, its settings and store, and what it registered."""

    settings: Settings
    pki: PkiPaths
    store: Store
    hub: Hub
    vhost_url: str
    management: Management
    users: list[str] = field(default_factory=list)

    def register(self, organ_id: str, name: str, cert_pem: bytes) -> dict[str, Any]:
        """Register a system exactly as ``axis agency register`` does; its user is removed later."""
        from axis.registration import register_system

        handover = register_system(self.settings, organ_id, name, cert_pem)
        self.users.append(organ_id)
        return handover

    def profile(self, handover: dict[str, Any], key: Path, cert: Path, at: Path) -> Profile:
        """A client profile (path ``at``, not written) for a system this hub registered."""
        return Profile(
            path=at,
            system_id=handover["system_id"],
            organ_name=handover["name"],
            amqp_url=self.vhost_url,
            password=handover["amqp_password"],
            key=key,
            cert=cert,
            hub_cert=self.pki.hub_cert,
            ca=self.pki.ca_cert,
        )


def refuse_existing_users(management: Management, organ_ids: tuple[str, ...], who: str) -> None:
    """Refuse to go on if a broker user of these names exists: users span every vhost, and
    the throwaway hub would reset (and later delete) a real system's account."""
    for organ_id in organ_ids:
        if management.user_exists(organ_id):
            raise AgencyExists(
                f"the broker already has a user {organ_id!r} (a real system?); {who} refuses "
                "to reset it — run it on a broker without one"
            )


@asynccontextmanager
async def local_hub(
    home: Path, amqp_url: str, management_url: str, *, prefix: str
) -> AsyncIterator[LocalHub]:
    """Run a hub in a new vhost ``<prefix>-<random>`` with its home in ``home`` (created)."""
    from axis.attachment_store import attachment_store_for
    from axis.evidence.service import EvidenceService
    from axis.metrics import HubMetrics
    from axis.pki_files import load_credential
    from axis.receipts import HubReceiptSigner
    from routing.hub_config import HubConfig

    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    management = Management(management_url)
    management.ensure_vhost(vhost)
    management.set_permissions(vhost, urlsplit(amqp_url).username or "guest", ".*", ".*", ".*")
    users: list[str] = []
    try:
        home.mkdir(parents=True, exist_ok=True)
        parts = urlsplit(amqp_url)
        vhost_url = urlunsplit((parts.scheme, parts.netloc, "/" + vhost, "", ""))
        config = write_default_config(home)
        config.write_text(
            config.read_text(encoding="utf-8").replace(
                'amqp_url = "amqp://guest:guest@127.0.0.1:5672/"', f'amqp_url = "{vhost_url}"'
            ),
            encoding="utf-8",
        )
        settings = load_settings(
            home, env={"AXIS_AMQP_URL": vhost_url, "AXIS_MANAGEMENT_URL": management_url}
        )
        pki = init_pki(settings.pki_dir, datetime.now(UTC))
        store = Store(settings.db_url)
        store.create_all()
        hub_key = load_credential(settings.hub_key_path, settings.hub_cert_path)
        hub = Hub(
            HubConfig(amqp_url=settings.amqp_url, registry_refresh_seconds=1.0),
            store,
            HubReceiptSigner(hub_key),
            HubMetrics(),
            evidence=EvidenceService(store, hub_key),
            attachments=attachment_store_for(settings),
        )
        await hub.start()
        running = LocalHub(settings, pki, store, hub, vhost_url, management, users)
        try:
            yield running
        finally:
            await hub.stop()
            store.dispose()
    finally:
        for user in users:
            management.delete_user(user)
        management.delete_vhost(vhost)
