"""``python -m bench faults`` (``make faults``): measured survival of faults.

Starts its own RabbitMQ node (and, for the last scenario, a 3-node cluster) and its own
PostgreSQL cluster on spare ports under a temporary folder, never the machine's shared
ones; runs real ``axis serve`` hub processes on them and drives signed traffic A → B
through the SDK. Scenarios (docs/faults.md): hub killed with SIGKILL repeatedly; the
broker node stopped and started; PostgreSQL stopped for 20 s; the recipient's consumer
killed without acking; two hub processes on one store, one killed; one node of a 3-node
quorum cluster killed. Prints one row per scenario (``--json``: one object).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.faults_world import SuiteKeys, World, make_world, suite_keys
from bench.rabbit_nodes import RabbitCluster

Fault = Callable[[World], Coroutine[Any, Any, float | None]]
SETTLE_SECONDS = 90.0  # after the last send: how long the counts may still move


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    store: str  # "sqlite" or "postgres"
    hubs: int
    cluster: bool
    fault: Fault


async def _hub_kills(world: World) -> float | None:
    recovery = None
    for k in range(world.kills):
        await world.until_receipts((k + 1) * world.count // (world.kills + 2))
        world.kill_hub(0)
        await asyncio.sleep(0.3)
        world.start_hub(0)
        took = await world.recovery_since(time.monotonic())
        recovery = None if took is None else max(recovery or 0.0, took)
    return recovery


async def _broker_restart(world: World) -> float | None:
    await world.until_receipts(world.count // 3)
    node = world.broker.nodes[0]
    await asyncio.to_thread(node.stop)
    await asyncio.sleep(3)
    await asyncio.to_thread(node.start)
    return await world.recovery_since(time.monotonic())


async def _postgres_outage(world: World) -> float | None:
    await world.until_receipts(world.count // 3)
    assert world.postgres is not None
    await asyncio.to_thread(world.postgres.stop)
    await asyncio.sleep(world.outage_seconds)
    await asyncio.to_thread(world.postgres.start)
    return await world.recovery_since(time.monotonic())


async def _recipient_kill(world: World) -> float | None:
    await world.until_deliveries(world.count // 3)
    world.kill_recipient()
    await asyncio.sleep(1)
    world.start_recipient()
    return await world.recovery_since(time.monotonic())


async def _second_hub_killed(world: World) -> float | None:
    await world.until_receipts(world.count // 2)
    world.kill_hub(1)
    return await world.recovery_since(time.monotonic())


async def _cluster_node_killed(world: World) -> float | None:
    await world.until_receipts(world.count // 3)
    node = world.broker.nodes[0]  # the one every client and the hub connected to first
    await asyncio.to_thread(node.kill)
    killed = time.monotonic()
    recovery = await world.recovery_since(killed)
    await asyncio.sleep(5)
    await asyncio.to_thread(node.start)
    return recovery


SCENARIOS = (
    Scenario("hub-kill", "hub SIGKILLed --kills times during the run", "sqlite", 1, False,
             _hub_kills),
    Scenario("broker-restart", "broker node stopped and started mid-run", "sqlite", 1, False,
             _broker_restart),
    Scenario("postgres-outage", "PostgreSQL stopped for 20 s mid-run", "postgres", 1, False,
             _postgres_outage),
    Scenario("recipient-kill", "recipient consumer SIGKILLed without acking", "sqlite", 1,
             False, _recipient_kill),
    Scenario("two-hubs", "two hub processes on one store, one SIGKILLed", "postgres", 2, False,
             _second_hub_killed),
    Scenario("cluster-node-kill", "one node of a 3-node quorum cluster SIGKILLed", "sqlite", 1,
             True, _cluster_node_killed),
)  # fmt: skip


async def run_scenario(scenario: Scenario, folder: Path, keys: SuiteKeys, options: Any,
                       broker: RabbitCluster) -> dict[str, Any]:  # fmt: skip
    """One scenario on a fresh vhost and store: traffic, the fault, then the counts."""
    started = time.monotonic()
    async with make_world(folder / scenario.name, scenario.name, broker, keys,
                          store=scenario.store, hubs=scenario.hubs, count=options.documents,
                          kills=options.kills, outage_seconds=options.outage) as world:  # fmt: skip
        fault = asyncio.create_task(scenario.fault(world))
        await world.send_all()
        recovery = await fault
        await world.settle(SETTLE_SECONDS)
        row = await world.summary(recovery)
    return {"scenario": scenario.name, "title": scenario.title, **row,
            "seconds": round(time.monotonic() - started, 1)}  # fmt: skip


async def run_suite(options: Any, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """The chosen scenarios in order; each row as it ends goes to ``progress``."""
    chosen = [s for s in SCENARIOS if not options.scenario or s.name in options.scenario]
    rows = []
    with tempfile.TemporaryDirectory(prefix="axis-faults-") as tmp:
        folder = Path(options.workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o711)  # PostgreSQL runs as its own user and must reach its data folder
        keys = await asyncio.to_thread(suite_keys, folder / "pki", options.documents)
        single = RabbitCluster.create(folder / "rabbit", 1)
        cluster = RabbitCluster.create(folder / "cluster", 3)
        try:
            for scenario in chosen:
                broker = cluster if scenario.cluster else single
                if not broker.nodes[0].process:
                    progress(f"starting {len(broker.nodes)} private RabbitMQ node(s)")
                    await asyncio.to_thread(broker.start)
                progress(f"scenario {scenario.name}: {scenario.title}")
                row = await run_scenario(scenario, folder, keys, options, broker)
                progress(_line(row))
                rows.append(row)
        finally:
            single.close()
            cluster.close()
    return rows


COLUMNS = ("sent", "confirmed", "delivered_unique", "duplicate_deliveries", "lost",
           "receipts_missing", "dead_lettered", "recovery_seconds", "seconds")  # fmt: skip
HEADINGS = ("sent", "confirmed", "delivered", "duplicates", "lost", "no receipt", "dead",
            "recovery s", "time s")  # fmt: skip


def _line(row: dict[str, Any]) -> str:
    cells = [f"{'-' if row[c] is None else row[c]!s:>11}" for c in COLUMNS]
    return f"{row['scenario']:18}" + "".join(cells)


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The rows as a fixed-width table, then every dead letter's reason."""
    lines = [f"{'scenario':18}" + "".join(f"{h:>11}" for h in HEADINGS)]
    lines += [_line(row) for row in rows]
    for row in rows:
        for reason, count in row["dead_reasons"].items():
            lines.append(f"  {row['scenario']}: {count} dead letter(s): {reason}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; exit 1 if anything was lost or left without a receipt."""
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=5000, help="documents per scenario")
    parser.add_argument("--kills", type=int, default=20, help="hub kills in scenario hub-kill")
    parser.add_argument("--outage", type=float, default=20.0, help="PostgreSQL outage, seconds")
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS],
                        help="run only this scenario (repeatable)")
    parser.add_argument("--workdir", help="keep the nodes' and hubs' folders and logs here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args(argv)
    for name in ("aio_pika", "aiormq"):  # reconnection attempts are expected here, not news
        logging.getLogger(name).setLevel(logging.CRITICAL)
    rows = asyncio.run(run_suite(options, lambda text: print(text, file=sys.stderr, flush=True)))
    bad = sum(row["lost"] + row["receipts_missing"] for row in rows)
    if options.json:
        print(json.dumps({"ok": bad == 0, "documents": options.documents, "scenarios": rows},
                         indent=2, ensure_ascii=False))  # fmt: skip
    else:
        print("\n".join(table(rows)))
        print("0 lost, 0 missing receipts" if bad == 0 else f"FAILED: {bad} lost or unanswered")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
