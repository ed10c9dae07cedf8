"""The short fault-injection run (``make faults`` is the full one): on a private RabbitMQ
node of its own, a hub SIGKILLed three times and a recipient SIGKILLed without acking
lose nothing and leave no submission without its receipt."""

from __future__ import annotations

import argparse

import pytest

from bench.faults import run_suite, table
from bench.rabbit_nodes import RABBIT_BIN

pytestmark = pytest.mark.rabbitmq


@pytest.mark.skipif(not (RABBIT_BIN / "rabbitmq-server").exists(),
                    reason="no RabbitMQ server binaries to start a private node")  # fmt: skip
async def test_killed_hubs_and_a_killed_recipient_lose_nothing() -> None:
    options = argparse.Namespace(documents=300, kills=3, outage=5.0, workdir=None,
                                 scenario=["hub-kill", "recipient-kill"])  # fmt: skip
    rows = await run_suite(options, lambda text: None)
    shown = "\n".join(table(rows))
    assert [row["scenario"] for row in rows] == ["hub-kill", "recipient-kill"], shown
    for row in rows:
        assert row["confirmed"] == row["sent"] == 300, shown
        assert (row["lost"], row["receipts_missing"], row["dead_lettered"]) == (0, 0, 0), shown
        assert row["delivered_unique"] == row["accepted"] == 300, shown
        assert row["unverified_receipts"] == 0 and row["recovery_seconds"] is not None, shown
