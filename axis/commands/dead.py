"""``axis dead``: the dead letters in ``axis.dead``, listed in place or replayed into the hub.

Both commands connect with the hub home's settings (``amqp_url``, ``hub_user``) and take
letters with ``basic.get``; whatever they do not remove they return with ``basic.nack``
(requeue) at the end, so it stays in ``axis.dead`` in its order. A replayed letter is
acked only after the broker confirmed its copy on ``axis.submit``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from axis.commands.clerk_io import broker_errors, quiet_amqp_logs
from axis.commands.common import HomeOption, JsonOption, emit, reporting
from axis.dead_letters import DeadLetter, read_dead_letter, replay_message
from axis.errors import DeadLetterNotFound, DeadLetterNotReplayable, HubNotReady
from axis.settings import Settings, load_settings
from routing.contract import DEAD_QUEUE, SUBMIT_EXCHANGE, WireMessage
from routing.errors import AccessRefused

PUT_BACK_SECONDS = 5.0  # how long a command waits for the letters it held to be queued again

if TYPE_CHECKING:
    from aio_pika.abc import (
        AbstractChannel,
        AbstractConnection,
        AbstractExchange,
        AbstractIncomingMessage,
        AbstractQueue,
    )

app = typer.Typer(
    help="Dead letters (queue axis.dead): list them, replay them into the hub.",
    no_args_is_help=True,
)


@app.command("list")
def list_letters(
    home: Path | None = HomeOption,
    limit: int = typer.Option(
        100, "--limit", min=1, max=100000, help="Show at most this many letters."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Show the dead letters in axis.dead, oldest first. Listing does not remove them.

    Each letter: consignment id, submitting system, routing key, reason (the
    hub's axis-dead-reason, else the broker's x-death reason and queue),
    attempts, last error, body size and SHA-256, first death time.

    The letters are taken and then all put back (basic.nack, requeue), so they
    stay in axis.dead in their order; while the command runs, no other reader
    sees them.
    """
    quiet_amqp_logs()
    with reporting(as_json):
        settings = load_settings(home)
        letters, queued = asyncio.run(peek_dead_letters(settings, limit))
        emit(
            as_json,
            {"count": len(letters), "queued": queued, "letters": [x.to_json() for x in letters]},
            lambda: _list_lines(letters, queued),
        )


@app.command("replay")
def replay(
    message_ids: list[str] | None = typer.Argument(
        None, metavar="MESSAGE_ID", help="Consignment ids (message_id) to replay."
    ),
    replay_all: bool = typer.Option(False, "--all", help="Replay every replayable letter."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Put dead letters back into the hub: publish each to axis.submit as the hub.

    The copy keeps the body, routing key (edoc/status), message_id, type and
    content type, names the submitting system in axis-origin-user, starts at
    axis-attempt 0 and is published persistent with a publisher confirm; only
    then is the dead letter removed. Letters not selected stay in axis.dead
    untouched. A letter whose routing key is not edoc/status, or that names no
    consignment id or submitting system, is never replayed. The hub decides the
    submission again and sends the sender a new receipt.

    Give consignment ids or --all, exactly one. A given id not in axis.dead
    (submission.dead_letter_not_found) or not replayable
    (submission.dead_letter_not_replayable) exits 1, after the others are done.

    Example: axis dead replay 6f1c2d3e-41d2-4c1e --home /srv/axis
    """
    quiet_amqp_logs()
    with reporting(as_json):
        wanted = list(dict.fromkeys(message_ids or []))
        if bool(wanted) == replay_all:
            raise typer.BadParameter("give consignment ids or --all (exactly one of them)")
        settings = load_settings(home)
        progress = None if as_json else _progress
        report = asyncio.run(_replay(settings, _selector(wanted), progress))
        data = report.to_json(wanted)
        if not (as_json and (data["not_found"] or report.refused(wanted))):
            emit(as_json, data, lambda: _replay_lines(report, data["not_found"]))
        _raise_for_missing(report, wanted, data["not_found"])


# -- the broker side ---------------------------------------------------------------------


@dataclass
class ReplayReport:
    """What a replay did: letters replayed, selected but refused, and left in place."""

    replayed: list[DeadLetter] = field(default_factory=list)
    skipped: list[DeadLetter] = field(default_factory=list)
    kept: int = 0

    def refused(self, wanted: list[str]) -> list[str]:
        """The requested ids of which no letter was replayed, only refused."""
        done = {x.message_id for x in self.replayed}
        return [i for i in wanted if i in {x.message_id for x in self.skipped} and i not in done]

    def to_json(self, wanted: list[str]) -> dict[str, Any]:
        seen = {x.message_id for x in (*self.replayed, *self.skipped)}
        return {
            "replayed": [x.to_json() for x in self.replayed],
            "skipped": [x.to_json() for x in self.skipped],
            "not_found": [i for i in wanted if i not in seen],
            "kept": self.kept,
        }


async def peek_dead_letters(settings: Settings, limit: int) -> tuple[list[DeadLetter], int]:
    """Up to ``limit`` letters of ``axis.dead``, oldest first, and how many were queued;
    every letter is put back in its order (also used by ``axis hub status``)."""
    letters: list[DeadLetter] = []
    async with _dead_queue(settings, "list the dead letters") as (channel, queue, queued):
        last_tag: int | None = None
        try:
            while len(letters) < limit:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                last_tag = message.delivery_tag
                letters.append(_letter(message, settings.hub_user))
        finally:
            await _put_back(channel, last_tag, back_to=queued)
    return letters, queued


async def _replay(
    settings: Settings,
    selected: Callable[[DeadLetter], bool],
    progress: Callable[[DeadLetter], None] | None,
) -> ReplayReport:
    """Replay the selected letters among those queued now; put every other one back.

    Only the letters queued when it starts are looked at: a replayed submission the hub
    dead-letters again at once (a conflict) is not taken a second time.
    """
    report = ReplayReport()
    async with _dead_queue(settings, "replay dead letters") as (channel, queue, queued):
        submit = await _submit_exchange(channel, settings)
        last_tag: int | None = None
        try:
            for _ in range(queued):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                last_tag = message.delivery_tag
                letter = _letter(message, settings.hub_user)
                chosen = selected(letter)
                if not chosen or letter.refusal is not None:
                    report.kept += 1
                    report.skipped += [letter] if chosen else []
                    continue
                wire = replay_message(bytes(message.body), letter, settings.hub_user)
                await _publish(submit, wire, letter)
                await message.ack()
                report.replayed.append(letter)
                if progress is not None:
                    progress(letter)
        finally:
            await _put_back(channel, last_tag, back_to=queued - len(report.replayed))
    return report


async def _publish(submit: AbstractExchange, wire: WireMessage, letter: DeadLetter) -> None:
    """Publish the replay copy and wait for its confirm (coded errors, see routing.amqp)."""
    import aiormq

    from routing.amqp import publish_confirmed

    try:
        await publish_confirmed(submit, wire, letter.routing_key)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise AccessRefused(
            f"the broker refused to replay {letter.message_id!r} with user_id {wire.user_id!r}:"
            f" {str(exc).splitlines()[0]}; hub_user must be the user amqp_url connects as"
        ) from None


@asynccontextmanager
async def _dead_queue(
    settings: Settings, what: str
) -> AsyncIterator[tuple[AbstractChannel, AbstractQueue, int]]:
    """A confirming channel, queue ``axis.dead`` and how many letters it holds now."""
    import aio_pika

    connection = await _connect(settings)
    try:
        async with broker_errors(what):
            channel = await connection.channel(publisher_confirms=True)
            try:
                queue = await channel.declare_queue(DEAD_QUEUE, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                raise _not_ready(settings, f"queue {DEAD_QUEUE}") from None
            yield channel, queue, int(queue.declaration_result.message_count or 0)
    finally:
        with suppress(Exception):
            await connection.close()


async def _connect(settings: Settings) -> AbstractConnection:
    """The hub's connection; a broker that is down or refuses it is a coded error,
    worded as ``axis serve`` words it."""
    import aio_pika

    from axis.commands.serve_cmd import _start

    class Opener:
        connection: AbstractConnection | None = None

        async def start(self) -> None:
            self.connection = await asyncio.wait_for(aio_pika.connect(settings.amqp_url), 15)

    opener = Opener()
    await _start(opener, settings)
    assert opener.connection is not None
    return opener.connection


async def _submit_exchange(channel: AbstractChannel, settings: Settings) -> AbstractExchange:
    """Exchange ``axis.submit``, checked to exist before any letter is taken."""
    import aio_pika

    try:
        return await channel.get_exchange(SUBMIT_EXCHANGE, ensure=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        raise _not_ready(settings, f"exchange {SUBMIT_EXCHANGE}") from None


async def _put_back(channel: AbstractChannel, last_tag: int | None, *, back_to: int) -> None:
    """Return every letter still held, up to ``last_tag``, to ``axis.dead`` in order, and
    wait (a few seconds at most) until the queue holds ``back_to`` letters again: the
    requeue is asynchronous, and a command that ends before it would leave the next
    ``axis dead list`` or ``replay`` seeing fewer letters than there are.

    ``basic.nack``, not ``basic.reject``: RabbitMQ 4.3 and later count a reject, never a
    nack, towards a quorum queue's delivery limit. When the channel is already closed the
    broker has returned them itself.
    """
    if last_tag is None:
        return
    with suppress(Exception):
        underlay = await channel.get_underlay_channel()
        await underlay.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
        deadline = asyncio.get_running_loop().time() + PUT_BACK_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            queue = await channel.declare_queue(DEAD_QUEUE, passive=True)
            if int(queue.declaration_result.message_count or 0) >= back_to:
                return
            await asyncio.sleep(0.05)


def _letter(message: AbstractIncomingMessage, hub_user: str) -> DeadLetter:
    """What ``message``, taken from ``axis.dead``, says of itself."""
    return read_dead_letter(
        bytes(message.body),
        routing_key=message.routing_key,
        message_id=message.message_id,
        user_id=message.user_id,
        type=message.type,
        content_type=message.content_type,
        headers=message.headers,
        hub_user=hub_user,
    )


def _not_ready(settings: Settings, what: str) -> HubNotReady:
    return HubNotReady(
        f"there is no {what} in virtual host {settings.vhost!r}: the hub has never run "
        f"there (`axis serve` declares it), or amqp_url in {settings.config_path} names "
        "another virtual host"
    )


# -- words -------------------------------------------------------------------------------


def _selector(wanted: list[str]) -> Callable[[DeadLetter], bool]:
    ids = set(wanted)
    return (lambda letter: letter.message_id in ids) if ids else (lambda _letter: True)


def _progress(letter: DeadLetter) -> None:
    typer.echo(
        f"replayed {letter.message_id} from {letter.origin} ({letter.routing_key}, "
        f"{letter.size} B) to {SUBMIT_EXCHANGE}"
    )


def _list_lines(letters: list[DeadLetter], queued: int) -> list[str]:
    lines = [letter.line() for letter in letters]
    more = f" of {queued}" if queued > len(letters) else ""
    lines.append(f"{len(letters)}{more} dead letter(s) in {DEAD_QUEUE} (listed, not removed)")
    return lines


def _replay_lines(report: ReplayReport, not_found: list[str]) -> list[str]:
    lines = [f"skipped {x.message_id or '-'}: {x.refusal}" for x in report.skipped]
    lines += [f"not found in {DEAD_QUEUE}: {i}" for i in not_found]
    lines.append(
        f"{len(report.replayed)} replayed to {SUBMIT_EXCHANGE}, {len(report.skipped)} skipped, "
        f"{len(not_found)} not found; {report.kept} left in {DEAD_QUEUE}"
    )
    return lines


def _raise_for_missing(report: ReplayReport, wanted: list[str], not_found: list[str]) -> None:
    """Exit 1 (coded) when a requested id was not found, or found but not replayable."""
    replayed = " ".join(x.message_id or "" for x in report.replayed)
    if not_found:
        raise DeadLetterNotFound(
            f"not in {DEAD_QUEUE}: {', '.join(not_found)} "
            f"({len(report.replayed)} other letter(s) replayed)",
            not_found=" ".join(not_found),
            replayed=replayed,
        )
    refused = report.refused(wanted)
    if refused:
        reasons = "; ".join(f"{x.message_id}: {x.refusal}" for x in report.skipped)
        raise DeadLetterNotReplayable(
            f"not replayed, left in {DEAD_QUEUE}: {reasons}",
            not_replayable=" ".join(refused),
            replayed=replayed,
        )
