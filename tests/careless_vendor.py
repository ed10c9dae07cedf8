"""A careless agency connector for the conformance kit's tests, written against the documented
contract with aio-pika alone (no SDK): it publishes without persistence or content type, and
answers every delivered document with status 01 without verifying it or de-duplicating.

Usage (as a profile hook): python careless_vendor.py send|receive KEY CERT
It reads the broker address, system id and peer organ from $AXIS_CONFORMANCE_*.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika

from axis.pki_files import load_credential
from envelopes.builder import build_package, status_package
from envelopes.metadata import document_from_metadata
from envelopes.model import DocumentPackage, Organization
from envelopes.parser import parse_package
from envelopes.status_codes import StatusCode
from signing.sign import sign_package


async def main(mode: str, key: Path, cert: Path) -> None:
    env = os.environ
    system, peer = env["AXIS_CONFORMANCE_SYSTEM_ID"], env["AXIS_CONFORMANCE_PEER_ORGAN"]
    signing_key = load_credential(key, cert)
    connection = await aio_pika.connect(env["AXIS_CONFORMANCE_AMQP_URL"])
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        submit = await channel.get_exchange("axis.submit", ensure=False)

        async def publish(body: bytes, key: str) -> None:
            message = aio_pika.Message(body, message_id=str(uuid.uuid4()), user_id=system)
            await submit.publish(message, key)  # transient, no content type: careless

        if mode == "send":
            today = datetime.now(UTC).date()
            document = document_from_metadata({
                "from": {"organ_id": system, "organ_name": "Careless vendor"},
                "to": [{"organ_id": peer, "organ_name": "Peer"}],
                "code": {"number": "1", "notation": "CARELESS"},
                "promulgation_date": today.isoformat(), "subject": "Careless", "priority": 2,
            })
            await publish(sign_package(build_package(document), signing_key), "edoc")
            return
        inbox = await channel.get_queue(f"axis.inbox.{system}", ensure=False)
        while (message := await inbox.get(no_ack=False, fail=False)) is not None:
            if message.type == "edoc":
                package = parse_package(bytes(message.body))  # no signature check: careless
                assert isinstance(package, DocumentPackage)
                status = status_package(Organization(system), package, StatusCode.ARRIVED,
                                        "arrived", datetime.now(UTC))  # fmt: skip
                await publish(sign_package(build_package(status), signing_key), "status")
            await message.ack()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
