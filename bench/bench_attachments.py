"""A large streamed attachment A → B through a real ``axis serve``, with every process's memory.

``python -m bench attachments [--size-mb 1024] [--json]``. In a private virtual host
and a temporary hub home (deleted afterwards, with the two broker accounts):

1. *baseline*: the broker's own chunk throughput in the same run: one aio-pika process
   publishes the same number of 1 MiB persistent messages, with publisher confirms and
   8 outstanding (the SDK's window), to a quorum queue, and consumes them back;
2. ``axis serve`` (one worker, as operators run it);
3. ``axis send --attach FILE`` as the sender (a subprocess: upload, then the package and
   its receipt);
4. ``axis inbox fetch`` as the recipient (download, SHA-256 check, store).

Peak resident memory is the kernel's ``VmHWM`` of ``/proc/<pid>/status``: the sender and
the recipient write their own at exit (``wait4``'s ``ru_maxrss`` would include this
forking parent's), the hub's is read before it stops. The file is made of random bytes,
written in 1 MiB blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aio_pika

from axis.client.profile import profile_toml, without_credentials
from axis.client.upload import DEFAULT_WINDOW
from axis.files import file_sha256
from axis.settings import Settings
from bench.bench_world import AMQP_URL, ROOT, hub_world, with_vhost
from bench.peak_rss import peak_rss_bytes
from envelopes.attachment_refs import CHUNK_BYTES
from routing.topology import queue_arguments


@dataclass
class Result:
    """One run's figures (times in seconds, memory in MiB)."""

    size_mb: int
    baseline_s: float
    baseline_mb_per_s: float
    upload_s: float
    upload_mb_per_s: float
    download_s: float
    download_mb_per_s: float
    end_to_end_mb_per_s: float
    upload_vs_baseline: float
    download_vs_baseline: float
    hub_peak_rss_mb: float
    hub_ready_rss_mb: float
    sender_peak_rss_mb: float
    recipient_peak_rss_mb: float
    same_sha256: bool


@dataclass
class World:
    tmp: Path
    vhost: str
    settings: Settings
    sender: Path
    recipient: Path
    recipient_id: str


@contextmanager
def world() -> Iterator[World]:
    """The vhost, hub home, PKI and two registered systems with their profiles."""
    with hub_world("bench-att", "BENCHA") as hub:
        pki = hub.settings.pki_dir
        profiles = []
        for role, system in (("S", hub.sender), ("R", hub.recipient)):
            profile = hub.tmp / f"{role}.toml"
            profile.write_text(profile_toml({
                "system_id": system.organ_id, "organ_name": f"Bench {system.organ_id}",
                "amqp_url": without_credentials(with_vhost(AMQP_URL, hub.vhost)),
                "password": system.password, "key": str(system.paths.key),
                "cert": str(system.paths.cert), "hub_cert": str(pki / "hub.pem"),
                "ca": str(pki / "ca.pem")}), encoding="utf-8")  # fmt: skip
            profiles.append(profile)
        yield World(hub.tmp, hub.vhost, hub.settings, profiles[0], profiles[1],
                    hub.recipient.organ_id)


def write_file(path: Path, size: int) -> str:
    """``size`` random bytes at ``path``; their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(CHUNK_BYTES, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


# -- the baseline ----------------------------------------------------------------------------


async def broker_chunks(url: str, count: int) -> float:
    """Seconds to publish ``count`` 1 MiB persistent messages (confirms, the SDK's
    ``DEFAULT_WINDOW`` in flight) to a quorum queue and consume them back."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            f"bench.chunks.{uuid.uuid4().hex[:8]}", durable=True,
            arguments=queue_arguments("quorum", dead_letter=False))  # fmt: skip
        body = os.urandom(CHUNK_BYTES)
        done = asyncio.get_running_loop().create_future()
        received = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received == count and not done.done():
                done.set_result(None)

        reader = await connection.channel()
        await reader.set_qos(prefetch_count=DEFAULT_WINDOW)
        started = time.perf_counter()
        source = await reader.get_queue(queue.name)
        tag = await source.consume(on_message)
        slots = asyncio.Semaphore(DEFAULT_WINDOW)

        async def one() -> None:
            async with slots:
                await channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue.name)

        await asyncio.gather(*(one() for _ in range(count)))
        await done
        elapsed = time.perf_counter() - started
        await source.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        return elapsed
    finally:
        await connection.close()


# -- the processes ---------------------------------------------------------------------------


# ``axis ARGS`` in this interpreter, writing its own peak resident memory (kB) at exit.
WITH_PEAK = """
import atexit, runpy, sys
def peak(path):
    with open("/proc/self/status") as status, open(path, "w") as out:
        out.write(next(l for l in status if l.startswith("VmHWM")).split()[1])
atexit.register(peak, sys.argv[1])
sys.argv = ["cli", *sys.argv[2:]]
runpy.run_module("cli", run_name="__main__")
"""


def _axis(args: Sequence[str], log: Path, peak: Path | None = None) -> subprocess.Popen[bytes]:
    command = ["-c", WITH_PEAK, str(peak)] if peak is not None else ["-m", "cli"]
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, *command, *args], cwd=ROOT, stdout=sink,
                                stderr=subprocess.STDOUT)  # fmt: skip


def _measured(args: Sequence[str], what: str, log: Path) -> tuple[float, float]:
    """Run ``axis ARGS``; (seconds, its peak RSS in MiB). Raises if it failed."""
    peak = log.with_name(f"peak-{uuid.uuid4().hex[:6]}")
    started = time.perf_counter()
    proc = _axis(args, log, peak)
    if proc.wait() != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}); see {log}:\n"
                           + log.read_text(errors="replace")[-2000:])  # fmt: skip
    return time.perf_counter() - started, int(peak.read_text()) / 1024


def _wait_hub_ready(log: Path, hub: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise RuntimeError("axis serve ended:\n" + log.read_text(errors="replace")[-2000:])
        if "ready" in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError("axis serve did not become ready within 60 s")


def run(size_mb: int) -> Result:
    """One run: baseline, then the file through the hub."""
    size = size_mb * CHUNK_BYTES
    with world() as w:
        source = w.tmp / "dossier.bin"
        sha = write_file(source, size)
        baseline = asyncio.run(broker_chunks(with_vhost(AMQP_URL, w.vhost), size_mb))
        log = w.tmp / "run.log"
        hub = _axis(["serve", "--home", str(w.settings.home), "--log-level", "INFO"], log)
        try:
            _wait_hub_ready(log, hub)
            hub_ready_rss = peak_rss_bytes(hub.pid) / 2**20
            upload_s, sender_rss = _measured(
                ["send", "--profile", str(w.sender), "--to", w.recipient_id,
                 "--subject", "Hồ sơ quét", "--code", "1/BENCH", "--attach", str(source),
                 "--no-progress", "--json", "--out-dir", str(w.tmp / "sent")],
                "axis send", log)  # fmt: skip
            inbox = w.tmp / "inbox"
            download_s, recipient_rss = _measured(
                ["inbox", "fetch", "--profile", str(w.recipient), "--to", str(inbox),
                 "--no-progress", "--json"], "axis inbox fetch", log)  # fmt: skip
            hub_rss = peak_rss_bytes(hub.pid) / 2**20
        finally:
            hub.terminate()
            hub.wait(30)
        received = [p for p in inbox.rglob("*") if p.is_file() and p.stat().st_size == size]
        same = any(file_sha256(p) == sha for p in received)
    return Result(
        size_mb=size_mb, baseline_s=round(baseline, 2),
        baseline_mb_per_s=round(size_mb / baseline, 1),
        upload_s=round(upload_s, 2), upload_mb_per_s=round(size_mb / upload_s, 1),
        download_s=round(download_s, 2), download_mb_per_s=round(size_mb / download_s, 1),
        end_to_end_mb_per_s=round(size_mb / (upload_s + download_s), 1),
        upload_vs_baseline=round(baseline / upload_s, 2),
        download_vs_baseline=round(baseline / download_s, 2),
        hub_peak_rss_mb=round(hub_rss, 1), hub_ready_rss_mb=round(hub_ready_rss, 1),
        sender_peak_rss_mb=round(sender_rss, 1),
        recipient_peak_rss_mb=round(recipient_rss, 1), same_sha256=same,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, run, print a table (or ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m bench attachments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MiB (1024)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.size_mb)
    if args.json:
        print(json.dumps(asdict(result)))
        return
    print(f"{args.size_mb} MiB file, 1 MiB chunks, window {DEFAULT_WINDOW}")
    print(f"  broker alone (publish+consume 1 MiB messages): {result.baseline_s:7.2f} s "
          f"{result.baseline_mb_per_s:7.1f} MB/s   base")
    print(f"  axis send --attach (upload + package + receipt):{result.upload_s:7.2f} s "
          f"{result.upload_mb_per_s:7.1f} MB/s   {result.upload_vs_baseline:.2f}x base")
    print(f"  axis inbox fetch (download + check + store):    {result.download_s:7.2f} s "
          f"{result.download_mb_per_s:7.1f} MB/s   {result.download_vs_baseline:.2f}x base")
    print(f"  peak RSS: hub {result.hub_peak_rss_mb} MB (once ready: "
          f"{result.hub_ready_rss_mb} MB), sender {result.sender_peak_rss_mb} MB, "
          f"recipient {result.recipient_peak_rss_mb} MB; same SHA-256: {result.same_sha256}")


if __name__ == "__main__":
    main()
