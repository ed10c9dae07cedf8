"""Whether two signed tree heads are one log: the newer extends the older (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from axis.evidence.errors import HeadInvalid, Inconsistent
from axis.evidence.heads import VerifiedHead, verify_head
from axis.evidence.merkle import verify_consistency
from routing.contract import utc_text
from signing.keys import organ_id_of
from signing.verify import VerifyPolicy, verify


def head_data(head: VerifiedHead) -> dict[str, Any]:
    """A verified head as JSON-ready data: size, root, time and signer."""
    stated, signer = head.head, {"subject": head.signer_subject,
                                 "fingerprint": head.signer_fingerprint}  # fmt: skip
    return {"tree_size": stated.tree_size, "root_hash": stated.root_hash.hex(),
            "timestamp": utc_text(stated.timestamp), "signer": signer}


def verify_consistency_files(
    old_head: bytes, new_head: bytes, proof: Sequence[bytes], policy: VerifyPolicy
) -> tuple[VerifiedHead, VerifiedHead]:
    """Verify both signed heads and that ``proof`` shows the new one extends the old one.

    Raises ``audit.head_invalid`` for a head that does not verify (or is signed by an
    agency certificate), ``audit.inconsistent`` when the heads are not one log: the old
    head is bigger, two heads of one size differ, or the proof fails.
    """
    old, new = _hub_head(old_head, policy, "old"), _hub_head(new_head, policy, "new")
    a, b = old.head.tree_size, new.head.tree_size
    if a > b:
        raise _inconsistent(f"the old head has {a} entries, more than the new head's {b}: a "
                            "log never shrinks", a, b)  # fmt: skip
    if a == b and old.head.root_hash != new.head.root_hash:
        raise _inconsistent(f"two heads of size {a} have different roots: the log forked", a, b)
    if a < b and not verify_consistency(a, b, old.head.root_hash, new.head.root_hash, proof):
        raise _inconsistent(f"the consistency proof from size {a} to {b} fails: the new head "
                            "does not extend the old one", a, b)  # fmt: skip
    return old, new


def _inconsistent(reason: str, old_size: int, new_size: int) -> Inconsistent:
    return Inconsistent(reason, old_size=old_size, new_size=new_size)


def _hub_head(raw: bytes, policy: VerifyPolicy, which: str) -> VerifiedHead:
    try:
        head = verify_head(raw, policy)
    except HeadInvalid as error:
        raise HeadInvalid(f"the {which} head: {error.reason}", **error.detail) from error
    organ = organ_id_of(verify(raw, policy).signer)
    if organ is not None:
        raise HeadInvalid(f"the {which} head is signed by the agency certificate of {organ}, "
                          "not by the hub")  # fmt: skip
    return head
