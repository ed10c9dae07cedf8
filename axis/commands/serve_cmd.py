"""``axis serve``: run the hub in the foreground, one process or several competing workers."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

from axis.commands.common import reporting
from axis.errors import AuthenticationFailed, BrokerUnreachable, InvalidSettings
from axis.event_loop import loop_name
from axis.event_loop import run as run_on_loop
from axis.settings import Settings, load_settings

if TYPE_CHECKING:
    from axis.metrics import HubMetrics
    from routing.hub_config import HubConfig

HomeOption = typer.Option(
    None, "--home", envvar="AXIS_HOME", help="Hub home (default: $AXIS_HOME, else ./.axis)."
)


def serve(
    home: Path | None = HomeOption,
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Hub processes competing on axis.submit."
    ),
    worker_index: int = typer.Option(0, "--worker-index", hidden=True),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Run the hub in the foreground until Ctrl-C / SIGTERM; serves /metrics."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with reporting(False):
        settings = load_settings(home)
        if workers > 1:
            raise typer.Exit(_supervise(settings, workers, log_level))
        run_on_loop(_serve_one(settings, worker_index), settings.event_loop)


async def _serve_one(settings: Settings, index: int) -> None:
    from axis.attachment_store import attachment_store_for
    from axis.evidence.service import EvidenceService
    from axis.pki_files import load_credential
    from axis.receipts import HubReceiptSigner
    from axis.revocation import service_for
    from axis.store import Store
    from routing.hub import Hub

    store = Store(settings.db_url, evidence_log=settings.evidence_log,
                  pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    store.create_all()
    try:
        metrics = serve_metrics(settings, index)
    except InvalidSettings:
        store.dispose()
        raise
    hub_key = load_credential(settings.hub_key_path, settings.hub_cert_path)
    evidence = None
    if settings.evidence_log:
        evidence = EvidenceService(store, hub_key, tsa_url=settings.log_tsa_url,
                                   on_unstamped=metrics.head_unstamped)  # fmt: skip
    revocation = service_for(settings, on_warning=metrics.revocation_warning,
                             on_fetch_failure=metrics.revocation_fetch_failed)  # fmt: skip
    hub = Hub(hub_config(settings), store, HubReceiptSigner(hub_key), metrics,
              evidence=evidence, revocation=revocation,
              attachments=attachment_store_for(settings))  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await _start(hub, settings)
        logging.getLogger("axis.hub").info("hub worker %d ready (event loop %s)", index,
                                           loop_name(loop))
        await stop.wait()
        logging.getLogger("axis.hub").info("stopping: finishing in-flight work")
    finally:
        await hub.stop()
        store.dispose()


def serve_metrics(settings: Settings, index: int) -> HubMetrics:
    """Worker ``index``'s metrics, served on ``metrics_port + index`` (not at all when
    ``metrics_port`` is 0). Worker 0 alone also exports the depth of Axis's queues, read
    through the management API when scraped: one reading per hub, not one per worker."""
    from axis.metrics import HubMetrics
    from axis.queues import queue_reader

    metrics = HubMetrics()
    if not settings.metrics_port:
        return metrics
    if index == 0:
        metrics.watch_queues(queue_reader(settings.management_url, settings.vhost))
    try:
        metrics.serve(settings.metrics_port + index)
    except OSError as exc:
        raise InvalidSettings(
            f"cannot serve /metrics on port {settings.metrics_port + index}: {exc.strerror}; "
            f"set metrics_port in {settings.config_path} (0 turns it off)"
        ) from None
    return metrics


async def _start(hub: Any, settings: Settings) -> None:
    """Start consuming; a broker that is down or refuses the hub is a coded error."""
    import aio_pika
    import aiormq

    try:
        await hub.start()
    except aiormq.exceptions.ProbableAuthenticationError as exc:
        raise AuthenticationFailed(f"the broker refused the hub's credentials: {exc}") from None
    except (OSError, aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException) as exc:
        where = urlsplit(settings.amqp_url)
        raise BrokerUnreachable(
            f"the hub cannot use the broker at {where.hostname}:{where.port or 5672} "
            f"(vhost {settings.vhost!r}): {str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from None


def _supervise(settings: Settings, workers: int, log_level: str) -> int:
    """Run N worker processes; forward SIGINT/SIGTERM; exit with the worst status.

    A worker that dies on its own stops the others too: a half-running hub would
    hide the failure from whoever watches the supervisor.
    """
    home = str(settings.home.resolve())  # the workers run from the code's folder
    cmd = [sys.executable, "-m", "cli", "serve", "--home", home, "--log-level", log_level]
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([*cmd, "--worker-index", str(i)], cwd=root) for i in range(workers)]
    stopping = False

    def stop_all(_signum: int = 0, _frame: Any = None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    while any(proc.poll() is None for proc in procs):
        failed = [p for p in procs if p.returncode not in (None, 0)]
        if failed and not stopping:
            logging.getLogger("axis.hub").error(
                "worker pid %d exited with %d; stopping the others",
                failed[0].pid,
                failed[0].returncode,
            )
            stop_all()
        time.sleep(0.1)
    return max(abs(int(proc.returncode or 0)) for proc in procs)


def hub_config(settings: Settings) -> HubConfig:
    """The :class:`~routing.hub.HubConfig` of a hub home's settings."""
    from routing.hub_config import HubConfig

    return HubConfig(
        amqp_url=settings.amqp_url,
        amqp_failover=settings.amqp_failover,
        prefetch=settings.prefetch,
        max_submission_bytes=settings.max_submission_bytes,
        queue_type=settings.queue_type,
        hub_user=settings.hub_user,
        max_attempts=settings.max_attempts,
        rate_per_second=float(settings.rate_per_second),
        rate_burst=settings.rate_burst,
        log_head_seconds=float(settings.log_head_seconds),
        revocation_refresh_seconds=float(settings.revocation_refresh_seconds),
    )
