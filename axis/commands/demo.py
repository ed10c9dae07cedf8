"""``axis demo``: the whole system, end to end, on the local RabbitMQ, in under a minute.

A fresh hub home in a temporary folder (SQLite, test PKI), a real hub in a
vhost of its own, two agencies (Văn phòng Chính phủ → UBND tỉnh Nghệ An), a
signed document with an attachment, fetched by the recipient, answered with
status 03, traced, its receipts and its evidence bundle verified offline.
Everything it created is removed at the end; nothing is left running.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

from axis.commands.common import reporting

SENDER = ("000.00.00.G22", "Văn phòng Chính phủ")
RECIPIENT = ("000.00.00.H41", "UBND tỉnh Nghệ An")
_t0 = time.monotonic()


def _step(text: str) -> None:
    typer.echo(f"[{time.monotonic() - _t0:5.1f}s] {text}")


def demo(
    amqp_url: str = typer.Option(
        "amqp://guest:guest@127.0.0.1:5672/",
        "--amqp-url",
        envvar="AXIS_AMQP_URL",
        help="The local broker (admin account).",
    ),
    management_url: str = typer.Option(
        "http://guest:guest@127.0.0.1:15672/", "--management-url", envvar="AXIS_MANAGEMENT_URL"
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary hub home for a look."),
) -> None:
    """Run a real hub and two agencies end to end, print what happens, clean up."""
    global _t0
    _t0 = time.monotonic()
    with reporting(False), tempfile.TemporaryDirectory(prefix="axis-demo-") as tmp:
        asyncio.run(_demo(Path(tmp), amqp_url, management_url))
        if keep:
            kept = Path(tempfile.mkdtemp(prefix="axis-demo-kept-")) / "home"
            shutil.copytree(tmp, kept)
            config = kept / "hub" / "axis.toml"  # its db_url named the folder just removed
            config.write_text(config.read_text(encoding="utf-8").replace(tmp, str(kept)),
                              encoding="utf-8")  # fmt: skip
            _step(f"hub home kept in {kept}")
    _step("demo finished: hub stopped, vhost deleted, nothing left running")


async def _demo(tmp: Path, amqp_url: str, management_url: str) -> None:
    from axis.client.agency import AgencyClient
    from axis.local_hub import local_hub, refuse_existing_users
    from axis.pki_files import issue_agency_files
    from axis.provision import Management

    refuse_existing_users(Management(management_url), (SENDER[0], RECIPIENT[0]), "the demo")
    async with local_hub(tmp / "hub", amqp_url, management_url, prefix="axis-demo") as local:
        _step(f"hub home {tmp / 'hub'}: SQLite store, test CA and hub key (ECDSA P-256)")
        _step(f"hub running on RabbitMQ vhost {local.settings.vhost!r} (quorum queues, "
              "publisher confirms)")  # fmt: skip
        clients = {}
        for organ_id, name in (SENDER, RECIPIENT):
            paths = issue_agency_files(local.settings.pki_dir, organ_id, name, datetime.now(UTC))
            reg = local.register(organ_id, name, paths.cert.read_bytes())
            _step(f"registered {organ_id} {name}: account, inbox {reg['inbox']}, certificate")
            profile = local.profile(reg, paths.key, paths.cert, tmp / f"{organ_id}.toml")
            clients[organ_id] = AgencyClient(profile.client_config())
        await local.hub.refresh_registry()
        try:
            await _exchange(
                tmp, clients[SENDER[0]], clients[RECIPIENT[0]], local.store,
                local.pki.hub_cert, local.pki.ca_cert,
            )  # fmt: skip
        finally:
            for client in clients.values():
                await client.close()
    _step("hub stopped gracefully")


async def _exchange(
    tmp: Path, sender: object, recipient: object, store: object, hub_cert: Path, ca_cert: Path
) -> None:
    from axis.client.agency import AgencyClient
    from axis.receipts import describe, verify_receipt
    from axis.trace import render_timeline
    from envelopes.builder import attachment_from_bytes, document_from_metadata
    from envelopes.model import DocumentPackage
    from envelopes.status_codes import StatusCode
    from routing.contract import receipt_request
    from signing.keys import load_certificate
    from signing.verify import VerifyPolicy

    assert isinstance(sender, AgencyClient) and isinstance(recipient, AgencyClient)
    await sender.connect()
    await recipient.connect()
    attachment = (
        "Kính gửi UBND tỉnh Nghệ An.\nCông văn về việc kết nối, liên thông "
        "phần mềm quản lý văn bản.\n"
    ).encode() * 200
    today = datetime.now(UTC).date()
    package = document_from_metadata(
        {
            "from": {"organ_id": SENDER[0], "organ_name": SENDER[1]},
            "to": [{"organ_id": RECIPIENT[0], "organ_name": RECIPIENT[1]}],
            "document_id": f"{SENDER[0]},{today:%Y/%m/%d},7816/VPCP-TTĐT",
            "code": {"number": "7816", "notation": "VPCP-TTĐT"},
            "promulgation_date": today.isoformat(),
            "type_name": "Công văn",
            "subject": "V/v kết nối, liên thông phần mềm quản lý văn bản",
            "priority": 2,
        },
        [attachment_from_bytes("cong-van-7816.txt", attachment)],
    )
    signed = sender.sign(package)
    consignment = await sender.send(signed)
    _step(
        f"{SENDER[0]} sent document {package.document_id} ({len(signed)} bytes, signed "
        f"RSA-SHA256) as consignment {consignment}"
    )
    accepted = await sender.wait_receipt(consignment, timeout=20)
    _step(f"receipt: {describe(accepted.receipt)}")
    received = None
    for _ in range(100):
        async for item in recipient.fetch():
            await item.ack()
            if isinstance(item.package, DocumentPackage):
                received = item
        if received:
            break
        await asyncio.sleep(0.1)
    if received is None or not isinstance(received.package, DocumentPackage):
        raise RuntimeError("the recipient received nothing")
    same = received.package.attachments[0].data == attachment
    _step(
        f"{RECIPIENT[0]} fetched it: signature verified, attachment "
        f"{'byte-identical' if same else 'DIFFERENT'}; status 01 (đã đến) sent automatically"
    )
    await recipient.send_status(
        received.package, StatusCode.ACCEPTED, "Văn thư: tiếp nhận văn bản, vào sổ văn bản đến"
    )
    _step(f"{RECIPIENT[0]} answered with status 03 (đã tiếp nhận / accepted and registered)")
    delivered = None
    for _ in range(100):
        answer = await sender.query(receipt_request(consignment))
        if answer["delivered"]:
            delivered = answer["delivered"][0].encode()
            break
        await asyncio.sleep(0.1)
    statuses = 0
    for _ in range(100):
        async for item in sender.fetch():
            await item.ack()
            statuses += item.kind == "status"
        if statuses:
            break
        await asyncio.sleep(0.1)
    _step(f"{SENDER[0]} received status 03 in its inbox")
    timeline = await sender.trace(package.document_id)
    typer.echo("\n".join(render_timeline(timeline)))
    policy = VerifyPolicy(
        at=datetime.now(UTC), trust_anchors=(load_certificate(ca_cert.read_bytes()),)
    )
    for name, raw in (("accepted", accepted.raw), ("delivered", delivered)):
        if raw is None:
            raise RuntimeError(f"no {name} receipt")
        (tmp / f"{name}.receipt.xml").write_bytes(raw)
        checked = verify_receipt(raw, policy, package=signed)
        _step(
            f"offline check of the {name} receipt against the CA: valid, signed by "
            f"{checked.signer_subject}; package SHA-256 matches"
        )
    await _evidence(tmp, sender, consignment, policy)


async def _evidence(tmp: Path, sender: object, consignment: str, policy: object) -> None:
    """The sender exports the document's evidence bundle; it is checked offline."""
    from axis.client.agency import AgencyClient
    from axis.commands.evidence_cmd import bundle_of
    from axis.evidence.audit import verify_bundle
    from axis.evidence.bundle import write_bundle
    from signing.verify import VerifyPolicy

    assert isinstance(sender, AgencyClient) and isinstance(policy, VerifyPolicy)
    bundle = bundle_of(await sender.evidence(consignment), with_package=True)
    (tmp / "evidence.zip").write_bytes(write_bundle(bundle))
    report = verify_bundle(bundle, policy)
    if not report.ok:
        raise RuntimeError(f"the evidence bundle does not verify: {report.error}")
    receipts = sorted({r.receipt.event for r in report.receipts})
    assert report.head is not None
    _step(
        f"evidence bundle (evidence.zip): {len(report.receipts)} receipts ({', '.join(receipts)}) "
        f"and the sender's registration, proven against the hub's signed tree head of size "
        f"{report.head.head.tree_size}: verified offline (axis audit verify)"
    )
