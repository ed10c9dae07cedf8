"""``axis inbox watch``: stay connected and store each delivery as the broker hands it over."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import typer

from axis.client.agency import InboxItem
from axis.client.inbox_store import InboxStore
from axis.client.profile import Profile, load_profile
from axis.commands.clerk import ProfileOption
from axis.commands.clerk_io import broker_errors, quiet_amqp_logs
from axis.commands.common import exit_code_for, reporting
from envelopes.errors import AxisError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def inbox_watch(
    to: Path = typer.Option(Path("inbox"), "--to", help="Folder to store items in."),
    prefetch: int = typer.Option(
        16, "--prefetch", min=1, help="Most deliveries the broker hands over un-acked at once."
    ),
    profile: Path | None = ProfileOption,
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object per line (JSON Lines) instead of text."
    ),
) -> None:
    """Stay connected and store each delivery as it arrives, until Ctrl-C or SIGTERM.

    Like `axis inbox fetch`, without polling: the broker pushes each delivery, which is
    verified, stored under --to, acknowledged only once stored, and answered with status
    01 (documents); a copy already stored is skipped. One line per stored item; with
    --json one JSON object per line: the item's meta.json plus "ok": true (a failure is
    a last line {"ok": false, "error": {...}}). Ctrl-C or SIGTERM stops it after the item
    in hand (exit 0); what was not stored stays in the inbox. A summary goes to stderr.
    A lost broker connection is re-established and the watch resumes.

    Example: axis inbox watch --to inbox --json >> deliveries.jsonl
    """
    quiet_amqp_logs()
    with reporting(as_json):
        try:
            prof = load_profile(profile)
            stored = asyncio.run(_watch(prof, InboxStore(to, prof.system_id), prefetch, as_json))
        except AxisError as error:
            if not as_json:
                raise
            _line({"ok": False, "error": error.to_dict()})  # one line, so JSON Lines parse
            raise typer.Exit(exit_code_for(error)) from None
        typer.echo(f"stopped: {stored} item(s) stored in {to}", err=True)


async def _watch(prof: Profile, store: InboxStore, prefetch: int, as_json: bool) -> int:
    from axis.client.agency import AgencyClient

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    stored = 0
    async with broker_errors("watch the inbox"), AgencyClient(
            prof.client_config(), download_dir=store.download_dir) as client:  # fmt: skip
        client.remember(store.known_ids())
        typer.echo(f"watching the inbox of {prof.system_id}, storing into {store.folder} "
                   "(Ctrl-C to stop)", err=True)  # fmt: skip
        async with aclosing(client.watch(prefetch=prefetch)) as items:
            while (item := await _next_unless_stopped(items, stop)) is not None:
                entry = store.save(item)
                if not await item.ack():
                    typer.echo(f"stored {entry['id']}; the connection was lost before its "
                               "ack: it comes again", err=True)  # fmt: skip
                    continue
                stored += 1
                if as_json:
                    _line({"ok": True, **entry})
                else:
                    typer.echo(f"{entry['kind']:8} {entry['id']}  {entry['summary']}")
    return stored


async def _next_unless_stopped(
    items: AsyncIterator[InboxItem], stop: asyncio.Event
) -> InboxItem | None:
    """The next item, or None once ``stop`` is set first (the wait for an item is cancelled)."""
    if stop.is_set():
        return None
    delivery = asyncio.ensure_future(anext(items))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((delivery, stopping), return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not delivery.done():
        delivery.cancel()
        await asyncio.gather(delivery, return_exceptions=True)
        return None
    try:
        return delivery.result()
    except StopAsyncIteration:
        return None


def _line(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


__all__ = ["inbox_watch"]
