"""The pure registry snapshot: organ → serving system, certificates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.registry import (
    CertInfo,
    OrganRow,
    RegistrySnapshot,
    SystemInfo,
    build_snapshot,
    check_organ_id,
    normalize_fingerprint,
    resolve_serving,
)
from envelopes.errors import InvalidOrganId

T = datetime(2025, 1, 1, tzinfo=UTC)
FP = "ab" * 32


def system(system_id: str, active: bool = True, certs: tuple[str, ...] = ()) -> SystemInfo:
    return SystemInfo(system_id, f"system {system_id}", active,
                      {fp: CertInfo(fp, b"PEM", T, T, False) for fp in certs})  # fmt: skip


# A province (P) with a department 3 levels down, a sub-unit with its own system (S),
# an explicitly served organ under S (X, served by P), and an unserved root (R).
TREE = [
    OrganRow("P", "province"),
    OrganRow("P.1", "department", "P"),
    OrganRow("P.1.1", "office", "P.1"),
    OrganRow("P.1.1.1", "team", "P.1.1"),
    OrganRow("S", "sub-unit with a system", "P.1"),
    OrganRow("S.1", "its department", "S"),
    OrganRow("X", "explicitly served by P", "S"),
    OrganRow("X.1", "child of X", "X"),
    OrganRow("R", "unserved root"),
    OrganRow("R.1", "child of unserved", "R"),
    OrganRow("ORPHAN", "parent not in directory", "MISSING"),
]


@pytest.mark.parametrize(
    ("organ", "expected"),
    [
        ("P", "P"),
        ("P.1", "P"),
        ("P.1.1.1", "P"),  # three levels below the province
        ("S", "S"),  # a sub-unit with its own system is served by it
        ("S.1", "S"),  # nearest system wins
        ("X", "P"),  # explicit --serves beats the nearer ancestor's system
        ("X.1", "P"),
        ("R", None),
        ("R.1", None),
        ("ORPHAN", None),
        ("NOT.IN.DIRECTORY", None),
    ],
)
def test_serving_system(organ: str, expected: str | None) -> None:
    snapshot = build_snapshot([system("P"), system("S")], TREE, {"X": "P"})
    assert snapshot.serving_system(organ) == expected
    assert snapshot.serves(expected, organ) if expected else True


def test_assignment_to_unknown_system_is_ignored() -> None:
    snapshot = build_snapshot([system("P")], TREE, {"R": "GONE"})
    assert snapshot.serving_system("R") is None


def test_cycles_terminate_and_serve_nothing() -> None:
    rows = [OrganRow("A", "a", "B"), OrganRow("B", "b", "A"), OrganRow("C", "c", "A"),
            OrganRow("D", "d", "E"), OrganRow("E", "e", "D")]  # fmt: skip
    snapshot = build_snapshot([system("E")], rows, {})
    assert [snapshot.serving_system(o) for o in "ABCDE"] == [None, None, None, "E", "E"]


def test_lookups() -> None:
    snapshot = build_snapshot([system("P", certs=(FP,)), system("S", active=False)], TREE, {})
    assert snapshot.system("P") is not None and snapshot.system("NONE") is None
    info = snapshot.system("S")
    assert info is not None and not info.active
    assert snapshot.certificate("P", FP.upper()) is not None
    spaced = ":".join(FP[i:i + 2] for i in range(0, 64, 2))
    assert snapshot.certificate("P", spaced) is not None
    assert snapshot.certificate("S", FP) is None
    assert snapshot.certificate("NONE", FP) is None
    assert snapshot.organ_known("R") and not snapshot.organ_known("MISSING")
    assert snapshot.organ_names["P.1"] == "department"


def test_snapshot_is_read_only() -> None:
    snapshot = build_snapshot([system("P")], TREE, {})
    with pytest.raises(TypeError):
        snapshot.organ_system["R"] = "P"  # type: ignore[index]
    empty = RegistrySnapshot.empty()
    assert empty.serving_system("P") is None and empty.system("P") is None


@pytest.mark.parametrize("value", ["000.00.00.G22", "H29", "A.B.C", "X" * 35])
def test_check_organ_id_accepts(value: str) -> None:
    assert check_organ_id(value) == value


@pytest.mark.parametrize("value", ["", "g22", "A..B", ".A", "A.", "X" * 36, "A B", "A/B"])
def test_check_organ_id_refuses(value: str) -> None:
    with pytest.raises(InvalidOrganId):
        check_organ_id(value)


def test_normalize_fingerprint() -> None:
    assert normalize_fingerprint("AB:CD ef") == "abcdef"


# -- property: the O(n) walk equals the definition ------------------------------------


def naive(parents: dict[str, str | None], explicit: dict[str, str], organ: str) -> str | None:
    seen: set[str] = set()
    node: str | None = organ
    while node is not None and node not in seen:
        if node in explicit:
            return explicit[node]
        if node not in parents:
            return None
        seen.add(node)
        node = parents[node]
    return None


names = st.sampled_from([f"O{i}" for i in range(25)])


@given(
    st.dictionaries(names, st.none() | names, max_size=25),
    st.dictionaries(names, st.sampled_from(["S1", "S2", "S3"]), max_size=6),
)
def test_resolution_matches_nearest_ancestor_definition(
    parents: dict[str, str | None], explicit: dict[str, str]
) -> None:
    resolved = resolve_serving(parents, explicit)
    for organ in set(parents) | set(explicit):
        assert resolved.get(organ) == naive(parents, explicit, organ), organ
