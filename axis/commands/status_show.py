"""``axis status``: send a status about a document (the default command, ``send``), or show
where a document stands at each of its recipient organs (``show``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from axis.client.profile import load_profile
from axis.commands import clerk
from axis.commands.clerk import ProfileOption, SenderOrganOption
from axis.commands.clerk_io import broker_errors, quiet_amqp_logs
from axis.commands.common import JsonOption, emit, reporting

RECEIPT_ID_CHARS = 8  # enough to tell receipts apart in a table; --json has them whole


class StatusGroup(TyperGroup):
    """A group whose first token, unless it names a command or asks for help, is the
    argument of its default command: ``axis status DOC --code 03`` is
    ``axis status send DOC --code 03``. Its help ends with the default command's."""

    default_command = "send"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        command = self.commands[self.default_command]
        with command.make_context(self.default_command, [], parent=ctx,
                                  resilient_parsing=True) as sub:  # fmt: skip
            command.format_help(sub, formatter)


status_app = typer.Typer(
    cls=StatusGroup,
    no_args_is_help=True,
    help="Send a status about a document (`axis status DOCUMENT --code 03` is short for "
    "`axis status send …`), or show where a sent document stands at each recipient "
    "(`axis status show DOCUMENT`). The options of `send` follow.",
)
status_app.command("send")(clerk.status)


@status_app.command("show")
def show(
    ident: str = typer.Argument(
        ..., metavar="DOCUMENT", help="The DocumentId, or a consignment id `axis send` printed."
    ),
    organ: str | None = SenderOrganOption,
    profile: Path | None = ProfileOption,
    as_json: bool = JsonOption,
) -> None:
    """Where a document stands at each recipient organ: delivered, latest status, receipts.

    One row per recipient organ: the system serving it, when the hub delivered the
    document there (the system's first status 01), the organ's latest status and when,
    and the ids of the hub's signed receipts that prove them (whole in --json).

    The hub answers only the document's sender and its recipients; an unknown id and
    someone else's document get the same refusal (transport.query_refused).

    Example: axis status show 000.00.00.G22,2026/11/27,12/VPCP
    """
    quiet_amqp_logs()
    with reporting(as_json):
        answer = asyncio.run(_recipients_from_hub(profile, ident, organ))
        emit(as_json, answer, lambda: render_recipients(answer))


async def _recipients_from_hub(
    profile: Path | None, ident: str, organ: str | None
) -> dict[str, Any]:
    from axis.client.agency import AgencyClient

    prof = load_profile(profile)
    async with broker_errors("ask the hub"), AgencyClient(prof.client_config()) as client:
        answer = await client.recipients(ident, organ)
    answer.pop("ok", None)
    return answer


HEADERS = ("ORGAN", "SYSTEM", "DELIVERED", "STATUS", "AT", "RECEIPTS")


def render_recipients(answer: dict[str, Any]) -> list[str]:
    """The table: a title, one line per recipient organ, a count of where they stand."""
    rows = answer.get("recipients", [])
    title = (
        f"Document {answer.get('document_id')} from {answer.get('sender_organ')} "
        f"(consignment {answer.get('message_id')}): {len(rows)} recipient organ(s)"
    )
    cells = [HEADERS, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]
    table = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in cells]  # fmt: skip
    return [title, *table, _summary(rows)]


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    code = row.get("status_code")
    status = f"{code} {row.get('status_vi') or ''} ({row.get('status_en') or '?'})" if code else "-"
    receipts = [f"{what}:{str(rid)[:RECEIPT_ID_CHARS]}"
                for what, rid in (("delivered", row.get("delivered_receipt")),
                                  ("status", row.get("status_receipt"))) if rid]  # fmt: skip
    return (
        str(row.get("organ_id")),
        str(row.get("system_id")),
        _when(row.get("delivered_at")) if row.get("delivered_at") else "not fetched",
        status,
        _when(row.get("status_at")),
        " ".join(receipts) or "-",
    )


def _summary(rows: list[dict[str, Any]]) -> str:
    delivered = sum(1 for row in rows if row.get("delivered_at"))
    latest = Counter(row.get("status_code") or "none" for row in rows)
    counts = ", ".join(f"{code}: {n}" for code, n in sorted(latest.items()))
    return f"{delivered} of {len(rows)} delivered; latest status {counts or '-'}"


def _when(text: Any) -> str:
    """``2026-11-27T03:13:32.027716Z`` as ``2026-11-27 03:13:32Z``; ``-`` for none."""
    return f"{str(text)[:10]} {str(text)[11:19]}Z" if text else "-"


__all__ = ["StatusGroup", "render_recipients", "show", "status_app"]
