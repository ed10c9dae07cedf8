"""RFC 9162 hashing and proofs: the published reference roots, a naive reference tree for
every size and position, and proofs that refuse anything altered."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.evidence.merkle import (
    RootBuilder,
    consistency_proof,
    empty_root,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    split_point,
    verify_consistency,
    verify_inclusion,
)

# The RFC 6962 reference leaves and the root of each prefix (Certificate Transparency's
# published test data; RFC 9162 hashes the same way).
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                                     "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def reference_root(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1, written as the definition reads."""
    if not hashes:
        return empty_root()
    if len(hashes) == 1:
        return hashes[0]
    k = split_point(len(hashes))
    return node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


def tree(size: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]


def provider(hashes: Sequence[bytes]):  # type: ignore[no-untyped-def]
    return lambda start, end: reference_root(hashes[start:end])


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_are_the_published_reference_roots(size: int) -> None:
    hashes = [leaf_hash(leaf) for leaf in LEAVES[:size]]
    assert root_of(hashes).hex() == ROOTS[size - 1]
    builder = RootBuilder()
    for leaf in hashes:
        builder.add(leaf)
    assert builder.root().hex() == ROOTS[size - 1]


def test_empty_tree_and_domain_separation() -> None:
    assert empty_root().hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # A leaf can never pass for a node: the prefixes differ.
    assert leaf_hash(b"\x01" + b"a" * 64) != node_hash(b"a" * 32, b"a" * 32)


@pytest.mark.parametrize("size", [*range(1, 40), 63, 64, 65, 100, 127, 128, 129])
def test_every_inclusion_proof_verifies_and_nothing_else_does(size: int) -> None:
    hashes = tree(size)
    root = reference_root(hashes)
    for index in range(size):
        proof = inclusion_proof(index, size, provider(hashes))
        assert verify_inclusion(index, size, hashes[index], proof, root)
        assert not verify_inclusion(index, size, leaf_hash(b"other"), proof, root)
        if size > 1:
            assert not verify_inclusion((index + 1) % size, size, hashes[index], proof, root)
        if proof:
            assert not verify_inclusion(index, size, hashes[index], proof[:-1], root)
            assert not verify_inclusion(index, size, hashes[index], [*proof, proof[0]], root)


@pytest.mark.parametrize("new_size", [*range(1, 34), 64, 65, 100])
def test_every_consistency_proof_verifies_and_a_fork_does_not(new_size: int) -> None:
    hashes = tree(new_size)
    new_root = reference_root(hashes)
    for old_size in range(0, new_size + 1):
        old_root = reference_root(hashes[:old_size])
        proof = consistency_proof(old_size, new_size, provider(hashes))
        assert verify_consistency(old_size, new_size, old_root, new_root, proof)
        if 0 < old_size < new_size:
            forked = [*hashes[: old_size - 1], leaf_hash(b"forged"), *hashes[old_size:]]
            fork_proof = consistency_proof(old_size, new_size, provider(forked))
            assert not verify_consistency(old_size, new_size, old_root,
                                          reference_root(forked), fork_proof)  # fmt: skip
            assert not verify_consistency(old_size, new_size, old_root, new_root, proof[1:])


@given(st.integers(1, 300), st.data())
def test_proofs_for_any_size_and_position(size: int, data: st.DataObject) -> None:
    hashes = tree(size)
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(0, size))
    root = root_of(hashes)
    assert root == reference_root(hashes)
    assert verify_inclusion(index, size, hashes[index],
                            inclusion_proof(index, size, provider(hashes)), root)  # fmt: skip
    assert verify_consistency(old, size, root_of(hashes[:old]), root,
                              consistency_proof(old, size, provider(hashes)))  # fmt: skip


def test_root_builder_reports_the_perfect_subtrees_it_completes() -> None:
    hashes = tree(100)
    seen: dict[tuple[int, int], bytes] = {}
    builder = RootBuilder(lambda start, end, digest: seen.__setitem__((start, end), digest))
    for leaf in hashes:
        builder.add(leaf)
    assert builder.root() == reference_root(hashes)
    assert {(0, 64), (64, 96), (96, 100)} <= set(seen)
    assert all(reference_root(hashes[s:e]) == digest for (s, e), digest in seen.items())


def test_out_of_range_requests_are_refused() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(5, 5, provider(tree(5)))
    with pytest.raises(ValueError):
        consistency_proof(6, 5, provider(tree(5)))
    assert not verify_inclusion(0, 0, leaf_hash(b""), [], empty_root())
    assert not verify_consistency(3, 2, b"", b"", [])
    assert not verify_inclusion(0, 2, leaf_hash(b""), [b"short"], empty_root())
