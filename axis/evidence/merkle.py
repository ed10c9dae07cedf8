"""RFC 9162 Merkle tree hashing, proofs and their verification (pure).

Leaf hash ``SHA-256(0x00 ‖ entry)``, node hash ``SHA-256(0x01 ‖ left ‖ right)``; the tree
of ``n`` leaves splits at the largest power of two below ``n`` (RFC 9162 §2.1.1). Proofs
are made from a *subtree hash provider* ``hash_of(start, end)`` (the Merkle tree hash of
leaves ``start``…``end - 1``), so the log's storage decides how it finds those hashes.
Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 to the letter and never raises:
it answers True or False.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
SubtreeHash = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 ‖ entry)``."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def empty_root() -> bytes:
    """The root of the empty tree: ``SHA-256()``."""
    return hashlib.sha256(b"").digest()


def split_point(size: int) -> int:
    """The largest power of two strictly below ``size`` (``size`` ≥ 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of a sequence of leaf hashes."""
    if not leaf_hashes:
        return empty_root()
    level = list(leaf_hashes)
    # Bottom-up pairing gives the same tree as RFC 9162's split at the largest power
    # of two: an odd node at the right edge is carried up unchanged.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(index: int, size: int, hash_of: SubtreeHash) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append(hash_of(start + k, end))
            end = start + k
        else:
            path.append(hash_of(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, hash_of: SubtreeHash) -> list[bytes]:
    """The proof that the tree of ``old_size`` leaves is a prefix of the tree of
    ``new_size`` (RFC 9162 §2.1.4.1); empty when the sizes are equal or ``old_size`` is 0."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end, whole = 0, new_size, True
    m = old_size  # the old tree's size within the subtree start…end
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            proof.append(hash_of(start + k, end))
            end = start + k
        else:
            proof.append(hash_of(start, start + k))
            start += k
            m -= k
            whole = False
    if not whole:
        proof.append(hash_of(start, end))
    proof.reverse()
    return proof


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree of ``size``
    leaves whose root is ``root`` (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size or any(len(h) != HASH_SIZE for h in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows the tree (``old_size``, ``old_root``) is a prefix of the
    tree (``new_size``, ``new_root``) (RFC 9162 §2.1.4.2)."""
    if not 0 <= old_size <= new_size or any(len(h) != HASH_SIZE for h in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class RootBuilder:
    """The root of a tree fed one leaf hash at a time, in O(log n) memory (for
    recomputing a whole log's root without holding its leaves)."""

    def __init__(self, on_subtree: Callable[[int, int, bytes], None] | None = None) -> None:
        self._stack: list[tuple[bytes, int]] = []  # (hash, leaves) of complete subtrees
        self.size = 0
        self._on_subtree = on_subtree

    def add(self, leaf: bytes) -> None:
        """Append the next leaf hash; each perfect subtree it completes is reported to
        ``on_subtree(start, end, hash)``."""
        node, width = leaf, 1
        while self._stack and self._stack[-1][1] == width:
            left, _ = self._stack.pop()
            node, width = node_hash(left, node), width * 2
            if self._on_subtree is not None:
                self._on_subtree(self.size + 1 - width, self.size + 1, node)
        self._stack.append((node, width))
        self.size += 1

    def root(self) -> bytes:
        """The Merkle tree hash of the leaves added so far."""
        if not self._stack:
            return empty_root()
        node = self._stack[-1][0]
        for left, _ in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node
