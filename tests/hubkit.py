"""A real hub on the real broker, for integration tests: one vhost and hub home per test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from axis.attachment_store import attachment_store_for
from axis.client.agency import AgencyClient, InboxItem
from axis.client.profile import Profile
from axis.evidence.service import EvidenceService
from axis.metrics import HubMetrics
from axis.pki_files import AgencyPaths, PkiPaths, init_pki, issue_agency_files, load_credential
from axis.provision import Management
from axis.receipts import HubReceiptSigner
from axis.registration import register_system
from axis.settings import Settings, load_settings, write_default_config
from axis.store import Store
from envelopes.builder import attachment_from_bytes, document_from_metadata
from envelopes.model import DocumentPackage
from routing.hub import Hub
from routing.hub_config import HubConfig


def vhost_url(base: str, vhost: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + vhost, "", ""))


@dataclass
class Agency:
    organ_id: str
    name: str
    paths: AgencyPaths
    registration: dict[str, Any]
    profile: Profile
    client: AgencyClient


@dataclass
class HubKit:
    """A hub home, its store, a running hub and helpers to register agencies."""

    home: Path
    vhost: str
    settings: Settings
    pki: PkiPaths
    store: Store
    management: Management
    hub: Hub | None = None
    agencies: dict[str, Agency] = field(default_factory=dict)
    metrics: HubMetrics = field(default_factory=HubMetrics)
    evidence: EvidenceService | None = None

    async def start_hub(self, **config: Any) -> Hub:
        config.setdefault("queue_type", self.settings.queue_type)
        tsa_url = config.pop("tsa_url", "")
        revocation = config.pop("revocation", None)  # a routing.ports.RevocationKeeper
        attachments = config.pop("attachments", None) or attachment_store_for(self.settings)
        key = load_credential(self.pki.hub_key, self.pki.hub_cert)
        self.evidence = EvidenceService(self.store, key, tsa_url=tsa_url,
                                        on_unstamped=self.metrics.head_unstamped)  # fmt: skip
        self.hub = Hub(
            HubConfig(amqp_url=self.settings.amqp_url, registry_refresh_seconds=0.5, **config),
            self.store,
            HubReceiptSigner(key),
            self.metrics,
            evidence=self.evidence,
            revocation=revocation,
            attachments=attachments,
        )
        await self.hub.start()
        return self.hub

    async def stop_hub(self) -> None:
        if self.hub is not None:
            await self.hub.stop()
            self.hub = None

    async def agency(
        self, organ_id: str, name: str = "", serves: tuple[str, ...] = (), connect: bool = True,
        **revocation_pointers: Any,  # crl_urls, ocsp_url: see signing.pki.issue_agency
    ) -> Agency:
        name = name or f"Cơ quan {organ_id}"
        paths = issue_agency_files(self.settings.pki_dir, organ_id, name, datetime.now(UTC),
                                   **revocation_pointers)  # fmt: skip
        reg = register_system(self.settings, organ_id, name, paths.cert.read_bytes(), serves)
        profile = Profile(
            path=self.home / f"{organ_id}.toml",
            system_id=organ_id,
            organ_name=name,
            amqp_url=self.settings.amqp_url,
            password=reg["amqp_password"],
            key=paths.key,
            cert=paths.cert,
            hub_cert=self.pki.hub_cert,
            ca=self.pki.ca_cert,
        )
        client = AgencyClient(profile.client_config())
        if connect:
            await client.connect()
        agency = Agency(organ_id, name, paths, reg, profile, client)
        self.agencies[organ_id] = agency
        if self.hub is not None:
            await self.hub.refresh_registry()
        return agency


def document(
    sender: str,
    recipients: list[str],
    *,
    number: str = "1",
    attachment: bytes | None = None,
    subject: str = "V/v thử nghiệm",
) -> DocumentPackage:
    today = date.today()
    attachments = [attachment_from_bytes("van-ban.txt", attachment)] if attachment else []
    return document_from_metadata(
        {
            "from": {"organ_id": sender, "organ_name": f"Cơ quan {sender}"},
            "to": [{"organ_id": r, "organ_name": f"Cơ quan {r}"} for r in recipients],
            "document_id": f"{sender},{today:%Y/%m/%d},{number}/TEST",
            "code": {"number": number, "notation": "TEST"},
            "promulgation_date": today.isoformat(),
            "type_name": "Công văn",
            "subject": subject,
        },
        attachments,
    )


async def take(
    client: AgencyClient,
    want: int,
    *,
    timeout: float = 15.0,
    accept: Callable[[InboxItem], bool] = lambda _: True,
) -> list[InboxItem]:
    """Fetch-and-ack inbox items until ``want`` matching ones arrived (or time runs out)."""
    found: list[InboxItem] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(found) < want and asyncio.get_running_loop().time() < deadline:
        async for item in client.fetch():
            await item.ack()
            if accept(item):
                found.append(item)
        if len(found) < want:
            await asyncio.sleep(0.05)
    return found


async def make_kit(
    tmp: Path, amqp_base: str, management_base: str, vhost: str, db_url: str | None = None,
    queue_type: str = "quorum",
) -> HubKit:  # fmt: skip
    """A hub home on ``vhost`` (which exists already: the ``private_vhost`` fixture)."""
    management = Management(management_base)
    home = tmp / "hub"
    home.mkdir()
    write_default_config(home)
    if queue_type != "quorum":
        config = home / "axis.toml"
        config.write_text(config.read_text().replace('queue_type = "quorum"',
                                                     f'queue_type = "{queue_type}"'))
    env = {"AXIS_AMQP_URL": vhost_url(amqp_base, vhost), "AXIS_MANAGEMENT_URL": management_base}
    if db_url:  # in the file too, so that a command given --home finds the same store
        env["AXIS_DB_URL"] = db_url
        config = home / "axis.toml"
        line = f"db_url = {json.dumps(db_url)}"
        config.write_text(re.sub(r"(?m)^db_url = .*$", lambda _: line, config.read_text()))
    settings = load_settings(home, env)
    pki = init_pki(settings.pki_dir, datetime.now(UTC))
    store = Store(settings.db_url)
    store.create_all()
    return HubKit(home, vhost, settings, pki, store, management)


async def close_kit(kit: HubKit) -> None:
    for agency in kit.agencies.values():
        await agency.client.close()
        with contextlib.suppress(Exception):
            kit.management.delete_user(agency.organ_id)
    await kit.stop_hub()
    kit.store.dispose()
