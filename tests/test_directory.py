"""Reading the organ directory CSV."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.directory import parse_directory, read_directory_csv
from axis.errors import DirectoryImportError
from axis.registry import OrganRow

GOOD = (
    "organ_id,name,parent_id\n"
    "000.00.00.H29,UBND tỉnh Hòa Bình,\n"
    '000.00.01.H29,"Sở Nội vụ, tỉnh Hòa Bình",000.00.00.H29\n'
    "\n"
    " 000.00.02.H29 , Sở Tài chính ,000.00.00.H29\n"
)
EXPECTED = [
    OrganRow("000.00.00.H29", "UBND tỉnh Hòa Bình", None),
    OrganRow("000.00.01.H29", "Sở Nội vụ, tỉnh Hòa Bình", "000.00.00.H29"),
    OrganRow("000.00.02.H29", "Sở Tài chính", "000.00.00.H29"),
]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_reads_a_good_file(tmp_path: Path, bom: bytes) -> None:
    path = tmp_path / "directory.csv"
    path.write_bytes(bom + GOOD.encode())
    assert list(read_directory_csv(path)) == EXPECTED


def test_parent_column_is_optional_and_columns_may_be_reordered() -> None:
    rows = parse_directory("name,organ_id\nVăn phòng Chính phủ,000.00.00.G22\n".encode())
    assert rows == [OrganRow("000.00.00.G22", "Văn phòng Chính phủ")]


def problems(text: str | bytes) -> list[tuple[int, str]]:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(DirectoryImportError) as caught:
        parse_directory(data, "d.csv")
    assert caught.value.code == "registry.import_failed"
    found: list[tuple[int, str]] = caught.value.detail["problems"]
    assert caught.value.detail["count"] == len(found)
    return found


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "empty"),
        ("id,name\n", 1, "missing column(s) organ_id"),
        ("organ_id,name,parent\n", 1, "unknown column(s) parent"),
        ("organ_id,name,name\n", 1, "repeated column(s) name"),
        ("organ_id,name\nbad id,x\n", 2, "organ_id 'bad id'"),
        ("organ_id,name\nA.B,\n", 2, "name is empty"),
        ("organ_id,name,parent_id\nA.B,x,a..b\n", 2, "parent_id 'a..b'"),
        ("organ_id,name,parent_id\nA.B,x,A.B\n", 2, "its own parent"),
        ("organ_id,name\nA.B,x,extra\n", 2, "expected 2 fields, found 3"),
        ("organ_id,name\nA.B,x\nC,y\nA.B,z\n", 4, "listed again (first on line 2)"),
        ("organ_id,name,parent_id\nA,a,B\nB,b,C\nC,c,A\n", 2, "parent cycle"),
        ('organ_id,name\nA,"unterminated\n', 2, "unreadable CSV"),
    ],
)
def test_bad_rows_are_reported_with_line_numbers(text: str, line: int, fragment: str) -> None:
    found = problems(text)
    assert any(n == line and fragment in message for n, message in found), found


def test_every_bad_row_is_reported() -> None:
    lines = ["organ_id,name"] + [f"bad{i},x" if i % 3 == 0 else f"OK{i},x" for i in range(72)]
    found = problems("\n".join(lines) + "\n")
    assert [n for n, _ in found] == [i + 2 for i in range(72) if i % 3 == 0]
    with pytest.raises(DirectoryImportError, match=r"24 bad line\(s\) .* and 4 more"):
        parse_directory(("\n".join(lines) + "\n").encode())


def test_non_utf8_reports_the_line() -> None:
    found = problems(b"organ_id,name\nA,ok\nB,\xff\xfe\n")
    assert found == [(3, "not UTF-8 text")]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DirectoryImportError):
        read_directory_csv(tmp_path / "missing.csv")


ids = st.from_regex(r"[A-Z0-9]{1,5}(\.[A-Z0-9]{1,5}){0,3}", fullmatch=True)
names = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                max_size=20).map(str.strip).filter(bool)  # fmt: skip


@given(st.dictionaries(ids, names, min_size=1, max_size=20))
def test_round_trip_through_csv(organs: dict[str, str]) -> None:
    import csv
    import io

    keys = list(organs)
    rows = [OrganRow(k, organs[k], keys[i - 1] if i else None) for i, k in enumerate(keys)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["organ_id", "name", "parent_id"])
    writer.writerows([r.organ_id, r.name, r.parent_id or ""] for r in rows)
    assert parse_directory(buffer.getvalue().encode()) == rows
