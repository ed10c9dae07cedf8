"""`axis status show`: one row per recipient organ of a document (the `recipients` query).

The row shaping is pure (table-driven below); the rest runs on the real broker: one
document to 40 organs served by four systems, some fetched (status 01), some answered
(03, one 02), some untouched.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from axis.client.profile import profile_toml
from axis.commands.status_show import render_recipients
from cli import app
from envelopes.model import DocumentPackage, Organization
from envelopes.status_codes import StatusCode
from routing.errors import QueryRefused
from routing.recipients import RecipientRow, StatusStep, recipient_rows, recipients_json
from routing.values import DocumentParties, EventKind, TraceEvent
from tests.clikit import organ
from tests.hubkit import Agency, HubKit, document, take

# -- the pure shaping ------------------------------------------------------------------------

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
PARTIES = DocumentParties("G22,2026/11/27,1/TEST", "SENDER", "G22",
                          {"R1": ("O1", "O2"), "R2": ("O3",)}, "doc-msg")  # fmt: skip


def _at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def _ev(event: EventKind, minute: int, system: str, organ_id: str | None = None,
        code: str | None = None, detail: str | None = None, msg: str = "m") -> TraceEvent:
    return TraceEvent(event=event, at=_at(minute), message_id=msg, system_id=system,
                      organ_id=organ_id, status_code=code, detail=detail)  # fmt: skip


PUBLISHED = [_ev("submitted", 0, "SENDER", "G22"), _ev("accepted", 0, "SENDER", "G22"),
             _ev("published", 0, "R1", "O1,O2"), _ev("published", 0, "R2", "O3")]  # fmt: skip
R1_FETCHED = [_ev("status", 1, "R1", "O1", "01", "rc-o1-01", "s1"),
              _ev("published", 1, "SENDER", "G22", "01"),  # the status routed to the sender
              _ev("delivered", 1, "R1", "O1,O2", detail="rd-r1"),
              _ev("status", 2, "R1", "O2", "01", "rc-o2-01", "s2")]  # fmt: skip


def _row(organ_id: str, system: str, *, delivered: int | None = None, receipt: str | None = None,
         steps: tuple[StatusStep, ...] = ()) -> RecipientRow:  # fmt: skip
    return RecipientRow(organ_id, system, _at(0), None if delivered is None else _at(delivered),
                        receipt, steps)  # fmt: skip


def _step(code: str, minute: int, receipt: str, msg: str) -> StatusStep:
    return StatusStep(code, _at(minute), msg, receipt)


ROW_CASES: list[tuple[str, list[TraceEvent], list[RecipientRow]]] = [
    ("published only: no delivery, no status", PUBLISHED,
     [_row("O1", "R1"), _row("O2", "R1"), _row("O3", "R2")]),
    ("one system's status 01 per organ; one delivered receipt for both organs",
     PUBLISHED + R1_FETCHED,
     [_row("O1", "R1", delivered=1, receipt="rd-r1", steps=(_step("01", 1, "rc-o1-01", "s1"),)),
      _row("O2", "R1", delivered=1, receipt="rd-r1", steps=(_step("01", 2, "rc-o2-01", "s2"),)),
      _row("O3", "R2")]),
    ("a later status is the latest; the sender's own 13 and strangers' statuses do not count",
     PUBLISHED + R1_FETCHED + [
         _ev("status", 3, "R1", "O1", "03", "rc-o1-03", "s3"),
         _ev("status", 4, "SENDER", "G22", "13", "rc-13", "s4"),
         _ev("status", 5, "R2", "O1", "02", "rc-wrong", "s5"),  # R2 does not receive for O1
         _ev("status", 6, "R9", "O3", "02", "rc-stranger", "s6"),
         _ev("status", 7, "R2", "O3", "02", "rc-o3-02", "s7")],
     [_row("O1", "R1", delivered=1, receipt="rd-r1",
           steps=(_step("01", 1, "rc-o1-01", "s1"), _step("03", 3, "rc-o1-03", "s3"))),
      _row("O2", "R1", delivered=1, receipt="rd-r1", steps=(_step("01", 2, "rc-o2-01", "s2"),)),
      _row("O3", "R2", steps=(_step("02", 7, "rc-o3-02", "s7"),))]),
    ("only the first delivered event counts (a re-sent 01 changes nothing)",
     PUBLISHED + R1_FETCHED + [_ev("delivered", 9, "R1", "O1,O2", detail="rd-again")],
     [_row("O1", "R1", delivered=1, receipt="rd-r1", steps=(_step("01", 1, "rc-o1-01", "s1"),)),
      _row("O2", "R1", delivered=1, receipt="rd-r1", steps=(_step("01", 2, "rc-o2-01", "s2"),)),
      _row("O3", "R2")]),
]  # fmt: skip


@pytest.mark.parametrize(("events", "expected"), [c[1:] for c in ROW_CASES],
                         ids=[c[0] for c in ROW_CASES])  # fmt: skip
def test_rows_from_the_document_trace(
    events: list[TraceEvent], expected: list[RecipientRow]
) -> None:
    assert recipient_rows(PARTIES, events) == expected


def test_row_json_names_the_latest_status_and_its_receipts() -> None:
    answer = recipients_json(PARTIES, recipient_rows(PARTIES, ROW_CASES[2][1]))
    o1, _, o3 = answer["recipients"]
    assert answer["document_id"] == PARTIES.document_id and answer["message_id"] == "doc-msg"
    assert o1 == {
        "organ_id": "O1", "system_id": "R1", "published_at": "2026-11-27T03:00:00.000000Z",
        "delivered_at": "2026-11-27T03:01:00.000000Z", "delivered_receipt": "rd-r1",
        "status_code": "03", "status_vi": "Đã tiếp nhận", "status_en": "accepted and registered",
        "status_at": "2026-11-27T03:03:00.000000Z", "status_receipt": "rc-o1-03",
        "statuses": [
            {"status_code": "01", "at": "2026-11-27T03:01:00.000000Z", "message_id": "s1",
             "receipt_id": "rc-o1-01"},
            {"status_code": "03", "at": "2026-11-27T03:03:00.000000Z", "message_id": "s3",
             "receipt_id": "rc-o1-03"}],
    }  # fmt: skip
    assert o3["delivered_at"] is None and o3["status_code"] == "02"
    lines = render_recipients(answer)
    assert lines[-1] == "2 of 3 delivered; latest status 01: 1, 02: 1, 03: 1"
    row = next(line for line in lines if line.startswith("O1 "))
    assert "03 Đã tiếp nhận (accepted and registered)" in row
    assert "delivered:rd-r1" in row and "status:rc-o1-03" in row
    assert "not fetched" in next(line for line in lines if line.startswith("O3 "))


# -- through the real hub ------------------------------------------------------------------------

SYSTEMS, ORGANS_EACH = 4, 10
ANSWERED, REFUSED = 5, 1  # of the first system's organs


def _write_profile(agency: Agency) -> Path:
    p = agency.profile
    p.path.write_text(profile_toml({
        "system_id": p.system_id, "organ_name": p.organ_name, "amqp_url": p.amqp_url,
        "password": p.password, "key": p.key, "cert": p.cert, "hub_cert": p.hub_cert,
        "ca": p.ca}), encoding="utf-8")  # fmt: skip
    return p.path


async def _axis(*args: object) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, [str(a) for a in args],
                                   env={"COLUMNS": "250"}, catch_exceptions=False)  # fmt: skip


async def _until(
    ask: Callable[[], Any], done: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer: dict[str, Any] = await ask()
        if done(answer) or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.2)


def _codes(answer: dict[str, Any]) -> dict[str, str | None]:
    return {row["organ_id"]: row["status_code"] for row in answer["recipients"]}


@pytest.mark.rabbitmq
async def test_one_document_to_40_organs_one_row_each(kit: HubKit) -> None:
    sender = await kit.agency(organ("A"))
    served = [[organ(f"S{s}O{o}") for o in range(ORGANS_EACH)] for s in range(SYSTEMS)]
    systems = [await kit.agency(organ(f"R{s}"), serves=tuple(organs))
               for s, organs in enumerate(served)]  # fmt: skip
    stranger = await kit.agency(organ("X"))
    every_organ = [o for organs in served for o in organs]
    package = document(sender.organ_id, every_organ)
    consignment = await sender.client.send(sender.client.sign(package))
    assert (await sender.client.wait_receipt(consignment, 15)).receipt.event == "accepted"

    # Systems 0 and 1 fetch (status 01 for each of their organs); 2 and 3 do nothing.
    fetched = []
    for system in systems[:2]:
        got = await take(system.client, 1, accept=lambda i: i.kind == "edoc")
        assert got and len(got[0].recipient_organs) == ORGANS_EACH
        fetched.append(got[0].package)
    first, received = served[0], fetched[0]
    assert isinstance(received, DocumentPackage)
    for organ_id in first[:ANSWERED]:
        await systems[0].client.send_status(received, StatusCode.ACCEPTED, "vào sổ",
                                            organ=Organization(organ_id))  # fmt: skip
    await systems[0].client.send_status(received, StatusCode.REJECTED, "sai nơi nhận",
                                        organ=Organization(first[ANSWERED]))  # fmt: skip
    expected: dict[str, str | None] = {o: None for o in every_organ}
    expected |= {o: "01" for o in served[0] + served[1]}
    expected |= {o: "03" for o in first[:ANSWERED]} | {first[ANSWERED]: "02"}

    answer = await _until(lambda: sender.client.recipients(package.document_id),
                          lambda a: _codes(a) == expected)  # fmt: skip
    assert _codes(answer) == expected
    rows = {row["organ_id"]: row for row in answer["recipients"]}
    assert len(rows) == 40 and list(rows) == sorted(every_organ)
    for s, organs in enumerate(served):
        for organ_id in organs:
            row = rows[organ_id]
            assert row["system_id"] == systems[s].organ_id and row["published_at"]
            assert bool(row["delivered_at"]) == bool(row["delivered_receipt"]) == (s < 2)
            assert bool(row["status_receipt"]) == (s < 2)
    refused = rows[first[ANSWERED]]
    assert (refused["status_vi"], refused["status_en"]) == ("Từ chối tiếp nhận", "rejected")
    assert [s["status_code"] for s in refused["statuses"]] == ["01", "02"]
    # The delivered receipt id is the one the sender's inbox got.
    delivered = await take(sender.client, 2, accept=lambda i: i.receipt is not None
                           and i.receipt.receipt.event == "delivered")  # fmt: skip
    assert {i.receipt.receipt.receipt_id for i in delivered if i.receipt} == {
        rows[served[0][0]]["delivered_receipt"], rows[served[1][0]]["delivered_receipt"]}

    # The CLI, by DocumentId and by consignment id, in words and in JSON.
    profile = _write_profile(sender)
    shown = await _axis("status", "show", package.document_id, "--profile", profile, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["recipients"] == answer["recipients"]
    table = await _axis("status", "show", consignment, "--profile", profile)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[1].split() == ["ORGAN", "SYSTEM", "DELIVERED", "STATUS", "AT", "RECEIPTS"]
    assert len(lines) == 1 + 1 + 40 + 1
    assert lines[-1] == "20 of 40 delivered; latest status 01: 14, 02: 1, 03: 5, none: 20"
    assert sum("03 Đã tiếp nhận" in line for line in lines) == ANSWERED
    assert sum("not fetched" in line for line in lines) == 20

    # A recipient may ask too (it sees every row, as in the trace).
    assert _codes(await systems[3].client.recipients(package.document_id)) == expected
    # A stranger gets the refusal an unknown id gets.
    reasons = []
    for ident in (package.document_id, consignment, "000.00.00.Z99,2026/01/01,1/NONE"):
        with pytest.raises(QueryRefused) as caught:
            await stranger.client.recipients(ident)
        assert caught.value.detail["remote_code"] == "transport.query_refused"
        reasons.append(caught.value.reason.replace(ident, "<id>"))
    assert len(set(reasons)) == 1, reasons
    stranger_cli = await _axis("status", "show", package.document_id, "--profile",
                               _write_profile(stranger), "--json")  # fmt: skip
    assert stranger_cli.exit_code != 0
    assert json.loads(stranger_cli.output)["error"]["code"] == "transport.query_refused"

