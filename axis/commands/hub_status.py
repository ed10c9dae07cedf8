"""``axis hub status``: one overview of a hub for its operator.

Read from three places, each failing with its own code: the database (registry, evidence
log, latest rejections: ``store.unavailable``), the RabbitMQ management API
(queue depths and consumers: ``transport.unreachable``, ``transport.management_api``,
``transport.hub_not_ready``) and, for the newest dead letters, the broker itself (as
``axis dead list`` reads them: taken and all put back).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from axis.commands.common import HomeOption, JsonOption, emit, open_store, reporting, shown_db_url
from axis.settings import Settings, load_settings
from routing.contract import DEAD_QUEUE, INBOX_PREFIX, QUERY_QUEUE, SUBMIT_QUEUE
from routing.contract_attachments import ATTACHMENT_QUEUE
from routing.retry import RETRY_DELAYS, retry_queue_name

if TYPE_CHECKING:
    from axis.dead_letters import DeadLetter
    from axis.queues import QueueStat
    from axis.registry import RegistrySnapshot
    from axis.store import Store

# At most this many dead letters are read to find the newest (as `axis dead list` by
# default): the queue is first in, first out, and every letter read is carried over AMQP.
DEAD_SCAN = 100


def status(
    home: Path | None = HomeOption,
    letters: int = typer.Option(
        5, "--letters", min=0, max=DEAD_SCAN,
        help="Show the newest N dead letters (0: only count them; axis.dead is not touched).",
    ),
    rejections: int = typer.Option(
        5, "--rejections", min=0, max=100, help="Show the newest N rejected submissions."
    ),
    as_json: bool = JsonOption,
) -> None:  # fmt: skip
    """One overview of the hub: registry, queues, workers, dead letters, evidence log.

    Shows the hub home, virtual host and database; the registry's size (systems
    active and suspended, organs served, certificates active, revoked and
    expiring within 30 days); per system its inbox depth and consumers; the
    depth of axis.submit and how many hub workers consume it, of axis.query and
    of each retry queue; the dead letters in axis.dead (their count, and the
    newest few with their reason: read as `axis dead list` reads them, taken and
    all put back); the evidence log's size and its newest signed tree head; the
    streamed attachments kept and being uploaded, and axis.attachment's depth; the
    newest rejected submissions with their codes.

    Depths and consumers come from the RabbitMQ management API, whose statistics
    may be a few seconds old. A database, broker or management API that cannot
    be reached is a coded error (exit 4).

    Example: axis hub status --home /srv/axis --json
    """
    with reporting(as_json):
        data, newest = gather_status(load_settings(home), letters, rejections)
        emit(as_json, data, lambda: status_lines(data, newest))


def gather_status(
    settings: Settings, letters: int, rejections: int
) -> tuple[dict[str, Any], list[DeadLetter]]:
    """Everything ``axis hub status`` shows, as JSON-ready data, and the newest dead
    letters (newest first)."""
    from axis.provision import Management
    from axis.queues import read_queue_stats

    with open_store(settings) as store:
        stored = _stored_facts(store, rejections)
    queues = read_queue_stats(Management(settings.management_url), settings.vhost)
    snapshot: RegistrySnapshot = stored.pop("snapshot")
    dead, newest = _dead_letters(settings, queues, letters)
    return {
        "home": str(settings.home),
        "vhost": settings.vhost,
        "database": shown_db_url(settings.db_url),
        **stored,
        "hub_workers": _queue(queues, SUBMIT_QUEUE)["consumers"],
        "queues": {
            "submit": _queue(queues, SUBMIT_QUEUE),
            "query": _queue(queues, QUERY_QUEUE),
            "retry": [_queue(queues, retry_queue_name(n)) for n in range(1, len(RETRY_DELAYS) + 1)],
        },
        "dead_letters": dead,
        "attachments": _attachments(settings, queues),
        "systems": _systems(snapshot, queues),
    }, newest


def _attachments(settings: Settings, queues: dict[str, QueueStat]) -> dict[str, Any]:
    """The streamed-attachment queue, and what the attachment folder holds."""
    from axis.attachment_store import attachment_store_for

    return {"queue": _queue(queues, ATTACHMENT_QUEUE), "folder": str(settings.attachments_path),
            **attachment_store_for(settings).usage()}  # fmt: skip




def _stored_facts(store: Store, rejections: int) -> dict[str, Any]:
    """Registry size, evidence log and newest rejections (and the snapshot, for systems)."""
    from axis.hub_overview import latest_rejections, registry_size

    snapshot = store.load_snapshot()
    head = store.latest_head()
    shown_head = None if head is None else {
        "tree_size": head.tree_size, "at": head.at.isoformat(),
        "time_stamped": head.timestamp is not None}  # fmt: skip
    return {
        "snapshot": snapshot,
        "registry": registry_size(snapshot, datetime.now(UTC)).to_json(),
        "log": {"size": store.log_size(), "head": shown_head},
        "rejections": [r.to_json() for r in latest_rejections(store.engine, rejections)],
    }


def _queue(queues: dict[str, QueueStat], name: str) -> dict[str, Any]:
    """A queue's depth and consumers; ``present: false`` when it is not declared."""
    stat = queues.get(name)
    if stat is None:
        return {"queue": name, "present": False, "messages": 0, "consumers": 0}
    return {**stat.to_json(), "present": True}


def _dead_letters(
    settings: Settings, queues: dict[str, QueueStat], letters: int
) -> tuple[dict[str, Any], list[DeadLetter]]:
    """Count of ``axis.dead`` and its newest ``letters`` letters, newest first."""
    from axis.commands.dead import peek_dead_letters

    found = _queue(queues, DEAD_QUEUE)
    if letters == 0 or not found["present"]:
        return {"count": found["messages"], "scanned": 0, "newest": []}, []
    read, queued = asyncio.run(peek_dead_letters(settings, DEAD_SCAN))
    newest = list(reversed(read[-letters:]))
    data = {"count": queued, "scanned": len(read), "newest": [x.to_json() for x in newest]}
    return data, newest


def _systems(snapshot: RegistrySnapshot, queues: dict[str, QueueStat]) -> list[dict[str, Any]]:
    """Each registered system with its inbox: deepest inbox first, then by id."""
    rows = []
    for system in snapshot.systems.values():
        inbox = _queue(queues, INBOX_PREFIX + system.system_id)
        rows.append({"system_id": system.system_id, "name": system.name,
                     "active": system.active, "inbox": inbox})  # fmt: skip
    return sorted(rows, key=lambda r: (-r["inbox"]["messages"], r["system_id"]))


# -- words -------------------------------------------------------------------------------


def status_lines(data: dict[str, Any], newest: list[DeadLetter]) -> list[str]:
    """The overview as text: a few labelled lines, then the systems as a table."""
    queues = data["queues"]
    lines = [
        f"{'hub home':14}{data['home']}",
        f"{'virtual host':14}{data['vhost']}",
        f"{'database':14}{data['database']}",
        f"{'registry':14}{_registry_words(data['registry'])}",
        f"{'hub workers':14}{data['hub_workers']} consuming {SUBMIT_QUEUE}",
        f"{'queues':14}" + ", ".join(_depth(q) for q in (queues["submit"], queues["query"])),
        f"{'retries':14}" + ", ".join(_depth(q) for q in queues["retry"]),
        f"{'evidence log':14}{_log_words(data['log'])}",
        f"{'attachments':14}{_attachment_words(data['attachments'])}",
        *_dead_lines(data["dead_letters"], newest),
        *_rejection_lines(data["rejections"]),
        *_system_lines(data["systems"]),
    ]
    return lines


def _registry_words(size: dict[str, int]) -> str:
    return (f"{size['systems_active']} system(s) active, {size['systems_suspended']} "
            f"suspended; {size['organs_served']} organ(s) served; "
            f"{size['certificates_active']} certificate(s) active, "
            f"{size['certificates_revoked']} revoked, {size['certificates_expiring']} "
            "expired or expiring within 30 days")  # fmt: skip


def _depth(queue: dict[str, Any]) -> str:
    if not queue["present"]:
        return f"{queue['queue']} (not declared)"
    consumers = f" ({queue['consumers']} consumer(s))" if queue["consumers"] else ""
    return f"{queue['queue']} {queue['messages']}{consumers}"


def _log_words(log: dict[str, Any]) -> str:
    head = log["head"]
    if head is None:
        return f"{log['size']} entries; no signed tree head yet"
    stamped = "time-stamped" if head["time_stamped"] else "not time-stamped"
    return (f"{log['size']} entries; newest signed head: {head['tree_size']} entries at "
            f"{head['at']} ({stamped})")  # fmt: skip


def _attachment_words(held: dict[str, Any]) -> str:
    return (f"{held['files']} file(s) kept, {held['file_bytes']} bytes; {held['uploads']} "
            f"upload(s) in progress, {held['upload_bytes']} bytes declared; "
            f"{_depth(held['queue'])}")  # fmt: skip


def _dead_lines(dead: dict[str, Any], newest: list[DeadLetter]) -> list[str]:
    count = dead["count"]
    if not newest:
        return [f"{'dead letters':14}{count} in {DEAD_QUEUE}"]
    of = "" if dead["scanned"] >= count else f" of the oldest {dead['scanned']} read"
    return [f"{'dead letters':14}{count} in {DEAD_QUEUE}; newest first{of}:",
            *(f"  {letter.line()}" for letter in newest)]  # fmt: skip


def _rejection_lines(rejections: list[dict[str, Any]]) -> list[str]:
    if not rejections:
        return [f"{'rejections':14}none stored lately"]
    lines = [f"{'rejections':14}newest first:"]
    lines += [f"  {r['at']}  {r['user_id']}  {r['message_id']}  {r['kind']}  {r['error_code']}"
              for r in rejections]  # fmt: skip
    return lines


def _system_lines(systems: list[dict[str, Any]]) -> list[str]:
    if not systems:
        return [f"{'systems':14}none registered"]
    width = max(len("SYSTEM"), *(len(s["system_id"]) for s in systems))
    lines = [
        f"{'systems':14}deepest inbox first:",
        f"  {'SYSTEM':{width}}  {'STATE':9}  {'INBOX':>7}  {'CONSUMERS':>9}  NAME",
    ]
    for s in systems:
        inbox = s["inbox"]
        depth = str(inbox["messages"]) if inbox["present"] else "-"
        state = "active" if s["active"] else "SUSPENDED"
        lines.append(f"  {s['system_id']:{width}}  {state:9}  {depth:>7}  "
                     f"{inbox['consumers']:>9}  {s['name']}")  # fmt: skip
    return lines
