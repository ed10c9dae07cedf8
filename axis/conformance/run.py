"""One conformance run: a throwaway hub, the system under test registered in it, a peer system
run by the kit, then the send and the receive exchanges, each judged rule by rule."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractConnection

from axis.client.agency import AgencyClient
from axis.client.profile import profile_toml, without_credentials
from axis.conformance.hooks import hook_environment, run_hook
from axis.conformance.profile import VendorProfile, read_certificate
from axis.conformance.rules import (
    RULES,
    SEEN_GRACE,
    Answers,
    HookRun,
    Plan,
    Seen,
    Verdict,
    judge_receiving,
    judge_sending,
)
from axis.conformance.wire import (
    SubmitSpy,
    admin_channel,
    drain_inbox,
    inbox_depth,
    publish_delivery,
    wait_depth,
)
from axis.local_hub import LocalHub, local_hub, refuse_existing_users
from axis.pki_files import issue_agency_files, load_credential
from axis.provision import Management
from envelopes.builder import attachment_from_bytes, build_package
from envelopes.metadata import document_from_metadata
from envelopes.model import DocumentPackage
from routing.contract import EDOC_KEY, STATUS_KEY, delivery_message, delivery_message_id
from routing.values import SubmissionRecord
from signing.keys import SigningKey
from signing.sign import sign_package

PEER_NAME = "Axis conformance peer"
FORGER_ORGAN = "000.00.00.Z99"  # has a valid certificate of the kit's CA, is never registered
SETTLE_SECONDS = 2.0  # after the awaited answer: time for any answer that should not come
MARKER = b"KIT-MARKER-ORIGINAL"
Progress = Callable[[str], None]


@dataclass(slots=True)
class Report:
    """Every rule's verdict, in catalogue order."""

    system_id: str
    vhost: str
    verdicts: list[Verdict]
    workdir: Path
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        order = {rule.id: n for n, rule in enumerate(RULES)}
        self.verdicts.sort(key=lambda v: order[v.rule])
        results = ("pass", "fail", "skip")
        self.counts = {r: sum(v.result == r for v in self.verdicts) for r in results}

    @property
    def ok(self) -> bool:
        """No rule failed."""
        return self.counts["fail"] == 0

    def to_dict(self) -> dict[str, Any]:
        titles = {rule.id: rule for rule in RULES}
        return {
            "ok": self.ok, "system_id": self.system_id, "vhost": self.vhost,
            "workdir": str(self.workdir),
            "passed": self.counts["pass"], "failed": self.counts["fail"],
            "skipped": self.counts["skip"],
            "rules": [{"id": v.rule, "result": v.result, "title": titles[v.rule].title,
                       "doc": titles[v.rule].doc, "detail": v.detail} for v in self.verdicts],
        }  # fmt: skip


async def run_conformance(
    profile: VendorProfile, *, amqp_url: str, management_url: str, workdir: Path,
    progress: Progress,
) -> Report:  # fmt: skip
    """Drive the system of ``profile`` through the documented exchanges; judge every rule."""
    refuse_existing_users(Management(management_url), (profile.system_id, profile.peer_organ),
                          "the conformance kit")  # fmt: skip
    async with local_hub(workdir / "hub", amqp_url, management_url,
                         prefix="axis-conformance") as local:  # fmt: skip
        progress(f"hub running in vhost {local.settings.vhost!r}")
        kit = await _Kit.open(local, profile, workdir, progress)
        try:
            verdicts = await kit.sending() + await kit.receiving()
        finally:
            await kit.close()
    return Report(profile.system_id, local.settings.vhost, verdicts, workdir)


class _Kit:
    """The kit's side of a run: the peer system, the operator's broker view, the hooks."""

    def __init__(self, local: LocalHub, profile: VendorProfile, workdir: Path,
                 progress: Progress) -> None:  # fmt: skip
        self.local = local
        self.profile = profile
        self.workdir = workdir
        self.progress = progress
        self.env: dict[str, str] = {}
        self.expected_taken: set[str] = set()  # inbox message ids the system must settle
        self.connection: AbstractConnection | None = None
        self.channel: AbstractChannel
        self.spy: SubmitSpy
        self.peer: AgencyClient
        self.forger: SigningKey

    @classmethod
    async def open(cls, local: LocalHub, profile: VendorProfile, workdir: Path,
                   progress: Progress) -> _Kit:  # fmt: skip
        kit = cls(local, profile, workdir, progress)
        await kit._setup()
        return kit

    async def _setup(self) -> None:
        local, profile, now = self.local, self.profile, datetime.now(UTC)
        pki = local.settings.pki_dir
        system = local.register(profile.system_id, profile.organ_name, read_certificate(profile))
        peer_paths = issue_agency_files(pki, profile.peer_organ, PEER_NAME, now)
        peer = local.register(profile.peer_organ, PEER_NAME, peer_paths.cert.read_bytes())
        forger = issue_agency_files(pki, FORGER_ORGAN, "Axis conformance forger", now)
        self.forger = load_credential(forger.key, forger.cert)
        await local.hub.refresh_registry()
        progress = self.progress
        progress(f"registered {profile.system_id} (the system under test) and "
                 f"{profile.peer_organ} (the kit's peer)")  # fmt: skip
        peer_profile = local.profile(peer, peer_paths.key, peer_paths.cert, self.workdir / "peer")
        self.peer = AgencyClient(peer_profile.client_config(), auto_arrived=False)
        await self.peer.connect()
        self.connection, self.channel = await admin_channel(local.vhost_url)
        self.spy = SubmitSpy(self.channel)
        await self.spy.start()
        self.env = self._environment(system)

    def _environment(self, system: dict[str, Any]) -> dict[str, str]:
        local, profile = self.local, self.profile
        as_system = local.profile(system, profile.key or Path(), profile.certificate,
                                  self.workdir / "axis-profile.toml")  # fmt: skip
        values = {
            "system_id": profile.system_id, "password": system["amqp_password"],
            "amqp_url": as_system.broker_url(), "vhost": local.settings.vhost,
            "peer_organ": profile.peer_organ, "ca": str(local.pki.ca_cert),
            "hub_cert": str(local.pki.hub_cert), "workdir": str(self.workdir),
        }  # fmt: skip
        env = hook_environment(os.environ, values)
        if profile.key is not None:
            as_system.path.write_text(profile_toml({
                "system_id": profile.system_id, "organ_name": profile.organ_name,
                "amqp_url": without_credentials(local.vhost_url),
                "password": system["amqp_password"], "key": profile.key.resolve(),
                "cert": profile.certificate.resolve(), "hub_cert": local.pki.hub_cert,
                "ca": local.pki.ca_cert,
            }), encoding="utf-8")  # fmt: skip
            as_system.path.chmod(0o600)
            env["AXIS_PROFILE"] = str(as_system.path)
        return env

    async def close(self) -> None:
        await self.peer.close()
        if self.connection is not None:
            await self.connection.close()

    async def _hook(self, name: str) -> HookRun:
        command = self.profile.hooks[name]
        self.progress(f"running the {name} hook: {command}")
        env = {**self.env, "AXIS_CONFORMANCE_HOOK": name}
        return await run_hook(command, cwd=self.profile.folder, env=env,
                              timeout=self.profile.hook_timeout, log=self.workdir / f"{name}.log")

    # -- the system sends ------------------------------------------------------------

    async def sending(self) -> list[Verdict]:
        profile, timeout = self.profile, self.profile.hook_timeout
        if "send" not in profile.hooks:
            return judge_sending(profile.system_id, None, timeout, None, None)
        since = len(self.spy.seen)
        hook = await self._hook("send")
        seen = await self.spy.wait_for(
            lambda s: s.kind == EDOC_KEY and s.user_id != profile.peer_organ, SEEN_GRACE, since
        )
        record = None
        if seen is not None and seen.user_id and seen.message_id:
            record = await self._record(seen.user_id, seen.message_id, timeout)
            self.expected_taken.add(delivery_message_id(seen.user_id, seen.message_id))
        return judge_sending(profile.system_id, hook, timeout, seen, record)

    async def _record(
        self, user_id: str, message_id: str, timeout: float
    ) -> SubmissionRecord | None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            record = await asyncio.to_thread(self.local.store.find_submission, user_id, message_id)
            if record is not None or asyncio.get_running_loop().time() >= deadline:
                return record
            await asyncio.sleep(0.1)

    # -- the system receives ---------------------------------------------------------

    async def receiving(self) -> list[Verdict]:
        profile, timeout = self.profile, self.profile.hook_timeout
        if "receive" not in profile.hooks:
            return judge_receiving(None, timeout, Plan("", "", ""), Answers())
        plan = await self._deliver()
        since = len(self.spy.seen)
        hook = await self._hook("receive")
        answers = await self._answers(plan, since)
        return judge_receiving(hook, timeout, plan, answers)

    async def _deliver(self) -> Plan:
        """Through the hub: one valid document; straight into the inbox, as a hub that crashed
        or was taken over could: its repeated copy, a tampered one, one signed by another organ."""
        system, peer = self.profile.system_id, self.profile.peer_organ
        before = await inbox_depth(self.channel, system)
        valid = self._document("VALID")
        signed = self.peer.sign(valid)
        consignment = await self.peer.send(signed)
        receipt = await self.peer.wait_receipt(consignment, timeout=30)
        if receipt.receipt.event != "accepted":
            raise RuntimeError(f"the kit's own document was refused: {receipt.receipt.error_code}")
        await wait_depth(self.channel, system, before + 1, timeout=10)
        tampered = self._document("TAMPERED")
        altered = self.peer.sign(tampered).replace(MARKER, MARKER.replace(b"ORIGINAL", b"ALTERED!"))
        wrong = self._document("WRONG-SIGNER")
        forged = sign_package(build_package(wrong), self.forger)
        copies = ((valid, signed, consignment), (tampered, altered, str(uuid.uuid4())),
                  (wrong, forged, str(uuid.uuid4())))  # fmt: skip
        for document, body, cid in copies:
            wire = delivery_message(body=body, kind=EDOC_KEY, sender_system=peer, sender_organ=peer,
                                    recipient_organs=(system,), document_id=document.document_id,
                                    consignment=cid, status_code=None)  # fmt: skip
            await publish_delivery(self.channel, wire, system)
            self.expected_taken.add(wire.message_id or "")
        self.progress(f"delivered to {system}: {valid.document_id} through the hub; its repeated "
                      "copy, a tampered and a wrongly signed document straight into the inbox")
        return Plan(valid.document_id, tampered.document_id, wrong.document_id)

    def _document(self, label: str) -> DocumentPackage:
        peer, system = self.profile.peer_organ, self.profile.system_id
        today, number = datetime.now(UTC).date(), 10000 + secrets.randbelow(90000)
        return document_from_metadata({
            "from": {"organ_id": peer, "organ_name": PEER_NAME},
            "to": [{"organ_id": system, "organ_name": self.profile.organ_name}],
            "document_id": f"{peer},{today:%Y/%m/%d},{number}/KIT-{label}",
            "code": {"number": str(number), "notation": f"KIT-{label}"},
            "promulgation_date": today.isoformat(), "type_name": "Công văn",
            "subject": f"Axis conformance check {label} {MARKER.decode()}", "priority": 2,
        }, [attachment_from_bytes("kiem-tra.txt", f"Conformance {label}\n".encode())])  # fmt: skip

    async def _answers(self, plan: Plan, since: int) -> Answers:
        peer, timeout = self.profile.peer_organ, self.profile.hook_timeout
        about_valid = plan.valid.encode()

        def from_system(seen: Seen) -> bool:
            return seen.kind == STATUS_KEY and seen.user_id != peer

        await self.spy.wait_for(lambda s: from_system(s) and about_valid in s.body,
                                min(timeout, 10.0), since)  # fmt: skip
        await asyncio.sleep(SETTLE_SECONDS)
        answers = Answers(statuses=[s for s in self.spy.seen[since:] if from_system(s)])
        for seen in answers.statuses:
            if seen.user_id and seen.message_id:
                record = await self._record(seen.user_id, seen.message_id, 5.0)
                if record is not None:
                    answers.records[seen.message_id] = record
        left = await drain_inbox(self.channel, self.profile.system_id)
        answers.inbox_left = sum(message_id in self.expected_taken for message_id in left)
        return answers

