"""Both organ-code forms (QCVN 102:2016 and QĐ 20/2020) and old codes: reading them from
CSV and JSON Lines, resolving every code to one organ, routing by either form on the real
broker, and ``axis directory lookup``."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from axis.directory import parse_directory, read_directory
from axis.errors import DirectoryImportError, OrganAlreadyServed
from axis.registry import D20_FORM, QCVN_FORM, OrganRow, SystemInfo, build_snapshot
from axis.settings import write_default_config
from axis.store import Store
from bench.bench_directory import write_files
from cli import app
from envelopes.builder import response_for_document, status_package
from envelopes.model import DocumentPackage, Organization, StatusPackage
from envelopes.status_codes import StatusCode
from tests.clikit import organ
from tests.hubkit import HubKit, document, take

H29, H29_D20, H29_OLD = "000.00.00.H29", "H29", "000.00.09.H29"
NOIVU, NOIVU_D20 = "000.00.01.H29", "H29.01"
TAICHINH, TAICHINH_QCVN = "H29.02", "000.00.02.H29"
COLUMNS = ("organ_id", "name", "parent_id", "qcvn_code", "d20_code", "replaces")


def as_csv(rows: list[dict[str, Any]]) -> str:
    lines = [",".join(COLUMNS)]
    for row in rows:
        values = [row.get(c) or "" for c in COLUMNS]
        lines.append(",".join(";".join(v) if isinstance(v, list) else v for v in values))
    return "\n".join(lines) + "\n"


def as_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


GOOD: list[dict[str, Any]] = [
    {"organ_id": H29, "name": "UBND tỉnh Hòa Bình", "d20_code": H29_D20},
    {"organ_id": NOIVU, "name": "Sở Nội vụ", "parent_id": H29_D20, "d20_code": NOIVU_D20,
     "replaces": [H29_OLD, "000.00.08.H29"]},
    {"organ_id": TAICHINH, "name": "Sở Tài chính", "parent_id": H29,
     "qcvn_code": TAICHINH_QCVN},
]  # fmt: skip
EXPECTED = [
    OrganRow(H29, "UBND tỉnh Hòa Bình", None, None, H29_D20),
    OrganRow(NOIVU, "Sở Nội vụ", H29_D20, None, NOIVU_D20, (H29_OLD, "000.00.08.H29")),
    OrganRow(TAICHINH, "Sở Tài chính", H29, TAICHINH_QCVN, None),
]
RENDER = {"csv": (as_csv, 2), "jsonl": (as_jsonl, 1)}  # format → (writer, line of row 0)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_reads_both_forms_and_old_codes(fmt: str) -> None:
    render, _ = RENDER[fmt]
    assert parse_directory(render(GOOD).encode(), fmt=fmt) == EXPECTED


def test_the_one_form_csv_still_reads_and_old_codes_may_be_one_text() -> None:
    text = "name,organ_id\nVăn phòng Chính phủ,000.00.00.G22\n"
    assert parse_directory(text.encode()) == [OrganRow("000.00.00.G22", "Văn phòng Chính phủ")]
    jsonl = '{"organ_id": "A.1", "name": "x", "replaces": "B.1; B.2", "parent_id": null}\n'
    assert parse_directory(jsonl.encode(), fmt="jsonl") == [
        OrganRow("A.1", "x", replaces=("B.1", "B.2"))]


def problems(data: bytes, fmt: str) -> list[tuple[int, str]]:
    with pytest.raises(DirectoryImportError) as caught:
        parse_directory(data, "d", fmt=fmt)
    assert caught.value.code == "registry.import_failed"
    found: list[tuple[int, str]] = caught.value.detail["problems"]
    return found


# (rows, index of the bad row, what the problem says): checked in both formats.
BAD_ROWS: list[tuple[list[dict[str, Any]], int, str]] = [
    ([{"organ_id": "G22", "name": "x", "qcvn_code": "G22.1"}], 0, "not in the QCVN 102 form"),
    ([{"organ_id": "000.00.00.G22", "name": "x", "d20_code": "000.00.01.G22"}], 0,
     "has the QCVN 102 form: give it as qcvn_code"),
    ([{"organ_id": "000.00.00.G22", "name": "x", "qcvn_code": "000.00.01.G22"}], 0,
     "two codes of one form"),
    ([{"organ_id": "G22", "name": "x", "d20_code": "G23"}], 0, "two codes of one form"),
    ([{"organ_id": "000.00.00.G22", "name": "x", "d20_code": "G22", "replaces": ["G22"]}], 0,
     "replaces names the organ's own code G22"),
    ([{"organ_id": "G22", "name": "x", "replaces": ["a..b"]}], 0, "replaces 'a..b'"),
    ([{"organ_id": "", "name": "x"}], 0, "organ_id is empty"),
    ([{"organ_id": "G22", "name": " "}], 0, "name is empty"),
    ([{"organ_id": "000.00.00.G22", "name": "x", "d20_code": "G22", "parent_id": "G22"}], 0,
     "its own parent"),
    ([{"organ_id": "000.00.00.G22", "name": "x", "d20_code": "G22"},
      {"organ_id": "G22", "name": "y"}], 1, "code G22 is already a code of organ 000.00.00.G22"),
    ([{"organ_id": "A.1", "name": "x"}, {"organ_id": "B.1", "name": "y", "replaces": ["A.1"]}],
     1, "code A.1 is already a code of organ A.1"),
    ([{"organ_id": "A.1", "name": "x"}, {"organ_id": "A.1", "name": "y"}], 1,
     "listed again (first on line"),
    # A cycle through the other form: A's parent is B's QĐ 20 code and back.
    ([{"organ_id": "000.00.00.A01", "name": "a", "d20_code": "A01", "parent_id": "B01"},
      {"organ_id": "000.00.00.B01", "name": "b", "d20_code": "B01", "parent_id": "A01"}], 0,
     "parent cycle"),
]  # fmt: skip


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize(("rows", "index", "fragment"), BAD_ROWS)
def test_bad_rows_are_reported_with_their_line_in_both_formats(
    fmt: str, rows: list[dict[str, Any]], index: int, fragment: str
) -> None:
    render, first = RENDER[fmt]
    found = problems(render([*GOOD, *rows]).encode(), fmt)
    line = first + len(GOOD) + index
    assert any(n == line and fragment in message for n, message in found), found


@pytest.mark.parametrize(
    ("data", "line", "fragment"),
    [
        (b'{"organ_id": "A",\n', 1, "not JSON"),
        (b'"A"\n', 1, "expected a JSON object"),
        (b'{"organ_id": "A", "name": "x", "parent": "B"}\n', 1, "unknown field(s) parent"),
        (b'{"organ_id": "A", "name": 1}\n', 1, "name must be a string"),
        (b'{"organ_id": "A", "name": "x", "replaces": [1]}\n', 1,
         "replaces must be a string or a list of strings"),
        (b'\n\n{"organ_id": "A"}\n', 3, "name is empty"),
        (b'[\n{"organ_id": "A", "name": "x"}\n]\n', 1, "JSON array"),
        (b'{"organ_id": "A", "name": "x"}\n{"organ_id": "B", "name": "\xff"}\n', 2,
         "not UTF-8 text"),
    ],
)  # fmt: skip
def test_bad_json_lines(data: bytes, line: int, fragment: str) -> None:
    found = problems(data, "jsonl")
    assert any(n == line and fragment in message for n, message in found), found


def test_every_bad_json_line_is_reported_and_an_unknown_csv_column_refused() -> None:
    lines = [json.dumps({"organ_id": f"OK{i}" if i % 3 else f"bad {i}", "name": "x"})
             for i in range(30)]  # fmt: skip
    found = problems(("\n".join(lines) + "\n").encode(), "jsonl")
    assert [n for n, _ in found] == [i + 1 for i in range(30) if i % 3 == 0]
    assert problems(b"organ_id,name,d20\n", "csv") == [(1, "bad header: unknown column(s) d20")]


@pytest.mark.parametrize(("name", "fmt"), [("d.csv", "csv"), ("d.jsonl", "jsonl"),
                                           ("d.ndjson", "jsonl"), ("d.txt", "csv")])  # fmt: skip
def test_files_are_read_streaming_in_the_format_their_name_says(
    tmp_path: Path, name: str, fmt: str
) -> None:
    path = tmp_path / name
    path.write_text(RENDER[fmt][0](GOOD))
    assert list(read_directory(path)) == EXPECTED
    other = "jsonl" if fmt == "csv" else "csv"
    with pytest.raises(DirectoryImportError):
        read_directory(path, other)  # --format overrides the name


def test_a_file_changed_between_the_check_and_the_import_imports_nothing(
    tmp_path: Path, store: Store
) -> None:
    path = tmp_path / "d.csv"
    path.write_text(as_csv(GOOD))
    rows = read_directory(path)  # checked: clean
    path.write_text(as_csv([*GOOD, {"organ_id": "000.00.05.H29", "name": "new"}]))
    with pytest.raises(DirectoryImportError, match="changed during the import"):
        store.import_directory(rows)
    assert not store.load_snapshot().organ_known(H29)


# -- one organ, every code: the snapshot ----------------------------------------------


def system(system_id: str) -> SystemInfo:
    return SystemInfo(system_id, f"system {system_id}", True, {})


def test_every_code_of_an_organ_resolves_to_its_serving_system() -> None:
    organs = [OrganRow(H29, "province"), OrganRow(NOIVU, "dept", H29_D20),
              OrganRow(TAICHINH, "own system", H29)]  # fmt: skip
    aliases = {H29_D20: H29, NOIVU_D20: NOIVU, H29_OLD: NOIVU, TAICHINH_QCVN: TAICHINH}
    # The province's system was registered by its QĐ 20 code, Tài chính's by its QCVN one.
    snapshot = build_snapshot([system(H29_D20), system(TAICHINH_QCVN)], organs, {}, aliases)
    expected = {H29: H29_D20, H29_D20: H29_D20, NOIVU: H29_D20, NOIVU_D20: H29_D20,
                H29_OLD: H29_D20, TAICHINH: TAICHINH_QCVN, TAICHINH_QCVN: TAICHINH_QCVN,
                "000.00.00.Z99": None}  # fmt: skip
    assert {code: snapshot.serving_system(code) for code in expected} == expected
    assert snapshot.serves(H29_D20, H29) and snapshot.serves(H29_D20, NOIVU_D20)
    assert not snapshot.serves(H29_D20, TAICHINH_QCVN)
    assert snapshot.organ_known(H29_OLD) and snapshot.canonical_organ(H29_OLD) == NOIVU
    without = build_snapshot([system(H29_D20)], organs, {})
    assert without.serving_system(NOIVU_D20) is None  # the aliases are what routes it


# -- the store: importing, merging, registering by either form -------------------------


def test_either_form_and_old_codes_route_to_one_system(store: Store) -> None:
    store.import_directory(EXPECTED)
    store.add_system(H29_D20, "Hòa Bình")  # registered by the other form of its organ
    store.add_system("000.00.00.T01", "another", serves=[TAICHINH_QCVN])
    snapshot = store.load_snapshot()
    for code in (H29, H29_D20, NOIVU, NOIVU_D20, H29_OLD, "000.00.08.H29"):
        assert snapshot.serving_system(code) == H29_D20, code
    assert snapshot.serving_system(TAICHINH) == snapshot.serving_system(TAICHINH_QCVN)
    assert store.get_system("000.00.00.T01").organs[1] == TAICHINH  # type: ignore[union-attr]
    assert len(snapshot.organ_names) == 4  # the placeholder H29 organ was no new organ
    with pytest.raises(OrganAlreadyServed):  # the same organ by its other form
        store.add_system(H29, "Hòa Bình again")


def test_reimporting_with_the_other_form_as_organ_id_keeps_routing(store: Store) -> None:
    store.add_system(H29, "Hòa Bình")
    store.import_directory(EXPECTED)
    counts = store.import_directory([OrganRow(H29_D20, "UBND tỉnh Hòa Bình", None, H29)])
    assert counts.merged == [(H29, H29_D20)] and counts.moved == [(H29, H29_D20, H29)]
    snapshot = store.load_snapshot()
    assert H29 not in snapshot.organ_names and snapshot.canonical_organ(H29) == H29_D20
    for code in (H29, H29_D20, NOIVU_D20, H29_OLD):
        assert snapshot.serving_system(code) == H29, code
    entry = store.organ_chain(H29)[0]
    assert (entry.organ_id, entry.code(QCVN_FORM), entry.code(D20_FORM)) == (H29_D20, H29,
                                                                             H29_D20)
    logged = json.loads(store.log_entries_about()[-1].payload)
    assert logged["change"] == "directory_imported" and logged["merged"] == 1
    assert logged["assignments_moved"] == [{"organ": H29, "into": H29_D20, "system_id": H29}]


def test_a_new_code_replacing_a_served_organ_keeps_its_system(store: Store) -> None:
    old, new = "000.00.05.H29", "000.00.07.H29"
    store.import_directory([OrganRow(old, "Sở cũ")])
    store.add_system("000.00.00.T02", "served the old organ", serves=[old])
    store.import_directory([OrganRow(new, "Sở mới", d20_code="H29.07", replaces=(old,))])
    snapshot = store.load_snapshot()
    assert {snapshot.serving_system(c) for c in (old, new, "H29.07")} == {"000.00.00.T02"}
    chain = store.organ_chain(old)
    assert [e.organ_id for e in chain] == [new] and chain[0].old_codes == (old,)


def test_a_merge_of_two_served_organs_is_refused_and_changes_nothing(store: Store) -> None:
    store.add_system("000.00.00.T03", "one")
    store.add_system("000.00.00.T04", "other")
    version = store.registry_version()
    with pytest.raises(OrganAlreadyServed):
        store.import_directory([OrganRow("000.00.00.T03", "x", replaces=("000.00.00.T04",))])
    assert store.registry_version() == version
    assert store.load_snapshot().serving_system("000.00.00.T04") == "000.00.00.T04"


@pytest.mark.parametrize(
    "rows",
    [
        # A row listing another organ of the same import as one of its codes.
        [OrganRow("000.00.00.K01", "a"),
         OrganRow("000.00.01.K01", "b", replaces=("000.00.00.K01",))],
        # K01 (stored as an alias of 000.00.00.K01) becomes an organ, merging it; then the
        # merged organ is listed as an organ of its own.
        [OrganRow("K01", "renamed"), OrganRow("000.00.00.K01", "again")],
    ],
)  # fmt: skip
def test_rows_that_would_make_two_organs_of_one_import_one_are_refused(
    store: Store, rows: list[OrganRow]
) -> None:
    store.import_directory([OrganRow("000.00.00.K01", "stored", d20_code="K01")])
    with pytest.raises(DirectoryImportError, match="an organ of this import of its own"):
        store.import_directory(rows)
    assert store.organ_chain("K01")[0].organ_id == "000.00.00.K01"


def test_five_thousand_organs_import_from_both_formats_quickly(
    tmp_path: Path, store: Store
) -> None:
    files = write_files(tmp_path, 5000)
    started = time.perf_counter()
    for fmt, path in files.items():
        counts = store.import_directory(read_directory(path, fmt))
        assert counts.rows == 5000 and counts.aliases > 5000
    assert time.perf_counter() - started < 20  # about 1 s on SQLite, 2 s on PostgreSQL
    store.add_system("000.00.00.H01", "Province 1")
    snapshot = store.load_snapshot()
    assert len(snapshot.organ_names) == 5000
    chain = store.organ_chain("H01.01.001")
    assert [e.organ_id for e in chain] == ["001.00.01.H01", "000.00.01.H01", "000.00.00.H01"]
    assert snapshot.serving_system("H01.01.001") == "000.00.00.H01"


# -- the hub on the real broker ---------------------------------------------------------


def qcvn_code() -> str:
    n = uuid.uuid4().int
    return f"{n % 1000:03d}.{n // 10**3 % 100:02d}.{n // 10**5 % 100:02d}.Q{n // 10**7 % 100:02d}"


@pytest.mark.rabbitmq
async def test_documents_route_by_either_form_on_the_real_hub(kit: HubKit) -> None:
    a_qcvn, a_d20, b_qcvn, b_d20 = qcvn_code(), organ("A"), qcvn_code(), organ("B")
    sender = await kit.agency(a_d20)  # registered by its QĐ 20 code
    recipient = await kit.agency(b_qcvn)  # registered by its QCVN 102 code
    kit.store.import_directory([OrganRow(a_qcvn, "Cơ quan A", d20_code=a_d20),
                                OrganRow(b_qcvn, "Cơ quan B", d20_code=b_d20)])  # fmt: skip
    assert kit.hub is not None and await kit.hub.refresh_registry()
    # From/OrganId is the sender's other form; To/OrganId the recipient's other form.
    package = document(a_qcvn, [b_d20])
    consignment = await sender.client.send(sender.client.sign(package))
    receipt = await sender.client.wait_receipt(consignment, 15)
    assert receipt.receipt.event == "accepted", receipt.receipt
    [item] = await take(recipient.client, 1, accept=lambda i: i.kind == "edoc")
    assert item.recipient_organs == (b_d20,) and item.sender_system == a_d20
    assert item.package is not None and item.package.sender.organ_id == a_qcvn
    # A status naming the document's sender organ by its other code is about that document.
    assert isinstance(item.package, DocumentPackage)
    about = replace(response_for_document(item.package), organ_id=a_d20)
    status = status_package(Organization(b_qcvn), about, StatusCode.ACCEPTED, "vào sổ",
                            datetime.now(UTC))  # fmt: skip
    answer = await recipient.client.send(recipient.client.sign(status), kind="status")
    answered = await recipient.client.wait_receipt(answer, 15)
    assert answered.receipt.event == "accepted", answered.receipt
    taken = await take(sender.client, 2, accept=lambda i: i.kind == "status")
    statuses = [i.package for i in taken]
    assert {(p.status_code, p.response_for.organ_id) for p in statuses
            if isinstance(p, StatusPackage)} == {(StatusCode.ARRIVED, a_qcvn),
                                                 (StatusCode.ACCEPTED, a_d20)}  # fmt: skip


# -- axis directory lookup ------------------------------------------------------------------


def test_directory_lookup_shows_both_forms_parents_and_the_serving_system(
    tmp_path: Path, db_url: str
) -> None:
    home, runner, env = tmp_path / "hub", CliRunner(), {"AXIS_DB_URL": db_url}
    write_default_config(home)
    path = tmp_path / "organs.jsonl"
    path.write_text(as_jsonl(GOOD))

    def axis(*args: str) -> Any:
        return runner.invoke(app, [*args, "--home", str(home)], env=env)

    imported = axis("directory", "import", str(path), "--json")
    assert json.loads(imported.stdout)["imported"] == 3, imported.output
    store = Store(db_url)
    store.add_system(H29_D20, "UBND tỉnh Hòa Bình")
    store.dispose()
    found = axis("directory", "lookup", H29_OLD, "--json")
    assert found.exit_code == 0, found.output
    info = json.loads(found.stdout)
    assert {k: info[k] for k in ("organ_id", "name", "qcvn_code", "d20_code", "old_codes")} == {
        "organ_id": NOIVU, "name": "Sở Nội vụ", "qcvn_code": NOIVU, "d20_code": NOIVU_D20,
        "old_codes": ["000.00.08.H29", H29_OLD]}  # fmt: skip
    assert info["parents"] == [{"organ_id": H29, "name": "UBND tỉnh Hòa Bình"}]
    assert info["serving_system"] == {"system_id": H29_D20, "name": "UBND tỉnh Hòa Bình",
                                      "active": True}  # fmt: skip
    text = axis("directory", "lookup", TAICHINH_QCVN).stdout
    assert f"QCVN 102   {TAICHINH_QCVN}" in text and f"served by  {H29_D20}" in text
    for code, error in (("000.00.00.Z99", "registry.unknown_organ"),
                        ("bad id", "registry.invalid_organ_id")):  # fmt: skip
        refused = axis("directory", "lookup", code, "--json")
        assert refused.exit_code == 1 and json.loads(refused.stdout)["error"]["code"] == error
