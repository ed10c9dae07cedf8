"""End to end: signed 5 KB packages through the real hub, against a bare aio-pika pass-through.

Run from the repository root: ``.venv/bin/python -m bench.bench_hub`` (``--help``).

Everything lives in a private virtual host and a temporary hub home that the
bench creates and deletes (with the two broker accounts it registers). Three
kinds of process take part, so none steals another's GIL: the hub (``axis
serve`` subprocesses, one per ``--workers``), the pass-through relay
(:mod:`bench.hub_load` ``relay``) and the load process (publisher + recipient
consumer, :mod:`bench.hub_load` ``load``). Packages are signed before any timing.

Latency is from the publish call to the moment the recipient's consumer gets the
delivery. Three figures: *loaded* (``--window`` messages outstanding, the
saturated run that also gives the throughput; by Little's law ≈ window /
throughput), *serial* (one message at a time: the path's own latency) and *half
load* (after the peak runs: the best hub row's worker count, and the pass-through,
each fed one message every 2/peak s on a fixed schedule, ``--half-count`` messages).

Every process runs on the event loop ``--loop`` selects (:mod:`axis.event_loop`:
the hub home's ``event_loop`` setting, the relay's and the load's ``--loop``).
``--json`` prints one JSON object on standard output and the rest on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aio_pika
import aiormq

from axis.event_loop import EVENT_LOOPS, select_loop
from axis.pki_files import load_credential
from axis.settings import Settings
from bench.bench_world import AMQP_URL, ROOT, hub_world, with_vhost
from bench.hub_load import PREFETCH, RELAY_IN, RELAY_OUT, LoadConfig, LoadResult, write_bodies
from bench.hub_profile import report_profile
from bench.hub_report import (
    NO_LOG_LABEL,
    PT_LABEL,
    HalfLoad,
    Row,
    best_hub,
    hub_label,
    median_run,
    print_half_load,
    print_log_cost,
    print_table,
    summary,
)
from envelopes.builder import build_package
from envelopes.metadata import document_from_metadata
from routing.contract import SUBMIT_EXCHANGE, SUBMIT_QUEUE, inbox_queue_name
from signing.sign import sign_package

TARGET_BYTES = 5 * 1024
FILLER = "Nội dung văn bản liên thông. "
DISTINCT_BODIES = 400  # signed once each, then reused under fresh consignment ids


@dataclass
class Bench:
    """The private vhost, hub home and registered systems of one bench run."""

    tmp: Path
    vhost: str
    settings: Settings
    sender: str
    recipient: str
    sender_url: str
    bodies: Path

    @property
    def guest_url(self) -> str:
        return with_vhost(AMQP_URL, self.vhost)


# -- setup and teardown ----------------------------------------------------------------


@contextmanager
def bench_environment(distinct: int) -> Iterator[Bench]:
    """Create the vhost, hub home, PKI, two systems and the signed packages; remove all after."""
    with hub_world("bench", "BENCH") as world:
        sender, recipient = world.sender, world.recipient
        key = load_credential(sender.paths.key, sender.paths.cert)
        empty = len(sign_package(_unsigned(sender.organ_id, recipient.organ_id, 0, 0), key))
        repeats = max(0, (TARGET_BYTES - empty) // len(FILLER.encode()))
        bodies = [sign_package(_unsigned(sender.organ_id, recipient.organ_id, i, repeats), key)
                  for i in range(distinct)]  # fmt: skip
        write_bodies(world.tmp / "bodies.bin", bodies)
        yield Bench(world.tmp, world.vhost, world.settings, sender.organ_id, recipient.organ_id,
                    with_vhost(AMQP_URL, world.vhost, sender.organ_id, sender.password),
                    world.tmp / "bodies.bin")


def _unsigned(sender: str, recipient: str, number: int, repeats: int) -> bytes:
    """An unsigned document whose content is ``repeats`` times :data:`FILLER`."""
    meta = {
        "from": {"organ_id": sender, "organ_name": "Văn phòng Chính phủ"},
        "to": [{"organ_id": recipient, "organ_name": "UBND Tỉnh Nghệ An"}],
        "code": f"{number + 1}/VPCP-TTĐT",
        "promulgation_date": date.today(),
        "place": "Hà Nội",
        "type_name": "Công văn",
        "subject": "V/v kết nối, liên thông phần mềm quản lý văn bản",
        "content": FILLER * repeats,
    }
    return build_package(document_from_metadata(meta))


# -- processes -------------------------------------------------------------------------


def _spawn(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=sink,
                                stderr=subprocess.STDOUT)


def _stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _consumers(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.consumer_count or 0)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return 0
    finally:
        await connection.close()


def wait_consumers(url: str, queue: str, want: int, procs: Sequence[subprocess.Popen[bytes]],
                   log: Path, timeout: float = 60.0) -> None:
    """Block until ``queue`` has ``want`` consumers; fail if a process died first."""
    deadline = time.monotonic() + timeout
    while asyncio.run(_consumers(url, queue)) < want:
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise SystemExit(f"{queue}: {want} consumer(s) never appeared\n{tail}")
        time.sleep(0.1)


def broker_pids() -> list[int]:
    """The local RabbitMQ VM (its CPU per message is reported beside the hub's)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "beam.smp":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def run_load(bench: Bench, config: LoadConfig, log: Path) -> LoadResult:
    """Run the load process on ``config``; its JSON answer as a :class:`LoadResult`."""
    path = bench.tmp / f"{config.tag}.json"
    path.write_text(json.dumps(asdict(config)))
    done = subprocess.run([sys.executable, "-m", "bench.hub_load", "load", str(path)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise SystemExit(f"load {config.tag} failed: {done.stderr[-2000:]}\n{tail}")
    return LoadResult(**json.loads(done.stdout.strip().splitlines()[-1]))


@dataclass(frozen=True, slots=True)
class Shape:
    """The load every run gets (identical for the hub and the pass-through); ``rate`` > 0
    paces the timed run instead of keeping ``window`` messages outstanding."""

    count: int
    window: int
    warmup: int
    serial: int
    event_loop: str = "auto"
    rate: float = 0.0


def passthrough_run(bench: Bench, shape: Shape, tag: str) -> LoadResult:
    log = bench.tmp / f"{tag}.log"
    relay = _spawn(["-m", "bench.hub_load", "relay", bench.guest_url, "--loop",
                    shape.event_loop], log)  # fmt: skip
    try:
        wait_consumers(bench.guest_url, RELAY_IN, 1, [relay], log)
        return run_load(bench, LoadConfig(
            publish_url=bench.guest_url, consume_url=bench.guest_url, exchange="",
            routing_key=RELAY_IN, deliver_queue=RELAY_OUT, bodies=str(bench.bodies),
            count=shape.count, window=shape.window, warmup=shape.warmup, serial=shape.serial,
            tag=tag, hub_pids=(relay.pid,), broker_pids=tuple(broker_pids()), rate=shape.rate,
            event_loop=shape.event_loop), log)
    finally:
        _stop([relay])


def hub_run(bench: Bench, shape: Shape, workers: int, tag: str,
            profile_dir: Path | None = None, evidence_log: bool = True) -> LoadResult:
    """Start ``workers`` hub processes (or one profiled one), load them, stop them;
    ``evidence_log=False`` runs them without the evidence log (to measure its cost)."""
    log = bench.tmp / f"{tag}.log"
    home = str(bench.settings.home)
    config = bench.settings.config_path
    set_setting(config, "evidence_log", "true" if evidence_log else "false")
    set_setting(config, "event_loop", json.dumps(shape.event_loop))
    if profile_dir is None:
        procs = [_spawn(["-m", "cli", "serve", "--home", home, "--worker-index", str(i),
                         "--log-level", "WARNING"], log) for i in range(workers)]
    else:
        procs = [_spawn(["-m", "bench.hub_worker", home, str(profile_dir)], log)]
    try:
        wait_consumers(bench.guest_url, SUBMIT_QUEUE, len(procs), procs, log)
        return run_load(bench, LoadConfig(
            publish_url=bench.sender_url, consume_url=bench.guest_url, exchange=SUBMIT_EXCHANGE,
            routing_key="edoc", deliver_queue=inbox_queue_name(bench.recipient),
            bodies=str(bench.bodies), count=shape.count, window=shape.window,
            warmup=shape.warmup, serial=shape.serial, tag=tag, user_id=bench.sender,
            receipt_queue=inbox_queue_name(bench.sender), hub_pids=tuple(p.pid for p in procs),
            broker_pids=tuple(broker_pids()), rate=shape.rate, event_loop=shape.event_loop), log)
    finally:
        _stop(procs)


def set_setting(config: Path, key: str, value: str) -> None:
    """Set ``key = value`` (TOML text) in the hub home's ``axis.toml``."""
    lines = [line for line in config.read_text(encoding="utf-8").splitlines()
             if not line.startswith(f"{key} ")]  # fmt: skip
    config.write_text("\n".join([*lines, f"{key} = {value}"]) + "\n", encoding="utf-8")


# -- main ------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="messages in the timed run")
    parser.add_argument("--window", type=int, default=128, help="messages outstanding at once")
    parser.add_argument("--warmup", type=int, default=100, help="untimed messages first")
    parser.add_argument("--serial", type=int, default=100, help="one-at-a-time latency probes")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="hub process counts to measure (default: 1 2)")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                        help="also profile one hub process under the same load (cProfile)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the pass-through and hub runs, interleaved; report medians")
    parser.add_argument("--log-cost", action=argparse.BooleanOptionalAction, default=True,
                        help="also run 1 hub worker without the evidence log (its cost)")
    parser.add_argument("--half-count", type=int, default=2000,
                        help="messages paced at half the best hub row's peak, through the hub "
                             "and the pass-through (latency at half load; 0: skip)")
    parser.add_argument("--loop", choices=EVENT_LOOPS, default="auto",
                        help="event loop of the hub, the relay and the load (default: auto, "
                             "uvloop where installed)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout (the tables go to stderr)")
    parser.add_argument("--quick", action="store_true", help="500 messages, no profile")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.warmup, args.serial, args.profile = min(args.count, 500), 50, 30, False
        args.half_count = min(args.half_count, 500)
    return args


def _peak_rows(bench: Bench, shape: Shape, args: argparse.Namespace) -> list[Row]:
    """The pass-through and every hub row, ``--rounds`` times interleaved; their medians."""
    runs: dict[str, list[LoadResult]] = {}
    workers_of = {PT_LABEL: 0, NO_LOG_LABEL: 1}
    for round_no in range(1, args.rounds + 1):  # interleaved, so noise hits every kind
        runs.setdefault(PT_LABEL, []).append(passthrough_run(bench, shape, f"pt{round_no}"))
        for workers in args.workers:
            workers_of[hub_label(workers)] = workers
            runs.setdefault(hub_label(workers), []).append(
                hub_run(bench, shape, workers, f"hub{workers}r{round_no}"))
        if args.log_cost:
            runs.setdefault(NO_LOG_LABEL, []).append(
                hub_run(bench, shape, 1, f"nolog{round_no}", evidence_log=False))
    return [Row(label, workers_of[label], median_run(results),
                tuple(r.per_second for r in results)) for label, results in runs.items()]


def _half_load(bench: Bench, shape: Shape, best: Row, count: int) -> HalfLoad:
    """The hub at ``best``'s worker count, then the pass-through, paced at half its peak."""
    peak = best.median.per_second
    paced = replace(shape, count=count, rate=peak / 2)
    return HalfLoad(best.workers, paced.rate, peak, count,
                    hub=hub_run(bench, paced, best.workers, "half-hub"),
                    passthrough=passthrough_run(bench, paced, "half-pt"))


def main(argv: Sequence[str] | None = None) -> None:
    """Set up, run the pass-through and the hub runs, the half-load pair, print the table
    (and the profile); with ``--json`` one JSON object on stdout, the rest on stderr."""
    args = _parse(argv)
    out = sys.stderr if args.json else sys.stdout
    event_loop, _ = select_loop(args.loop)  # "uvloop" where it is missing fails here
    shape = Shape(args.count, args.window, args.warmup, args.serial, args.loop)
    print(f"hub end to end: {shape.count} signed ~5 KB edoc packages, 1 recipient, "
          f"window {shape.window}, prefetch {PREFETCH}, quorum queues, SQLite store; "
          f"event loop {event_loop} (--loop {args.loop}) in the hub, relay and load", file=out)
    distinct = min(DISTINCT_BODIES, max(shape.count, args.half_count))
    with bench_environment(distinct) as bench:
        size = (bench.bodies.stat().st_size // distinct) - 4
        print(f"package size ≈ {size} bytes; vhost {bench.vhost}\n", file=out)
        rows = _peak_rows(bench, shape, args)
        if args.rounds > 1:
            print(f"median of {args.rounds} interleaved rounds (by msg/s)", file=out)
        print_table(rows, out)
        best = best_hub(rows)
        half = None
        if best is not None and args.half_count > 0:
            half = _half_load(bench, shape, best, args.half_count)
            print_half_load(half, out)
        print_log_cost(rows, out)
        profiled = None
        if args.profile:
            profile_dir = bench.tmp / "profile"
            profiled = hub_run(bench, shape, 1, "prof", profile_dir).per_second
            print(f"\nprofiled hub (1 process, cProfile in every thread): "
                  f"{profiled:.0f} msg/s under the profiler", file=out)
            report_profile(profile_dir, out)
    if args.json:
        params = {"count": shape.count, "window": shape.window, "warmup": shape.warmup,
                  "serial": shape.serial, "workers": args.workers, "rounds": args.rounds,
                  "half_count": args.half_count, "loop": args.loop, "prefetch": PREFETCH,
                  "package_bytes": size, "queues": "quorum", "store": "sqlite",
                  "log_cost": args.log_cost, "quick": args.quick,
                  "profiled_msgs_per_s": profiled}  # fmt: skip
        print(json.dumps(summary(rows, half, event_loop, params), allow_nan=False))


if __name__ == "__main__":
    main()
