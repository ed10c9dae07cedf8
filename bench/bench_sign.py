"""Receipt signing: signxml (``sign_document``) against the fixed-shape signer, same run.

``python -m bench sign [--seconds S] [--json]``. Single-threaded, one process. For an
RSA-2048 key and an ECDSA P-256 key (the hub's kind), the same unsigned receipt (an
accepted one, as ``axis.receipts.receipt_xml`` writes it, about 840 bytes) is signed by
``signing.sign.sign_document`` (signxml's ``XMLSigner``) and by
``signing.fixed_sign.sign_enveloped``, which ``axis.receipts.sign_receipt`` uses. The
two are measured in alternating rounds and each rate is the median of its rounds, so a
slow moment of a shared machine weighs on both. The floor is the private-key operation
alone, over bytes the size of a canonical ``SignedInfo``: what no signer can go below.
Before measuring, both signers' outputs are verified, and with RSA checked equal.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from axis.receipts import receipt_xml
from bench.timing import repeat_for
from routing.values import Receipt
from signing.fixed_sign import sign_enveloped
from signing.keys import SigningKey
from signing.pki import issue_agency, issue_hub, new_ca
from signing.sign import sign_document
from signing.verify import VerifyPolicy, verify

NOW = datetime(2025, 6, 1, tzinfo=UTC)
ROUNDS = 5
SIGNED_INFO_BYTES = 700  # a canonical SignedInfo of this profile is about 700 bytes

RECEIPT = Receipt(
    receipt_id="0193a1c2-7d4e-7c3b-9f2a-3b5c8d1e6f70", event="accepted",
    message_id="0193a1c2-7d4e-7c3b-9f2a-3b5c8d1e6f71", package_sha256="5e" * 32,
    hub_time=NOW, sender_system="000.00.00.G22", sender_organ="000.00.00.G22",
    document_id="000.00.00.G22,2025/06/01,7816/VPCP-TTĐT", recipients=("000.00.00.H41",),
    signer_fingerprint="ab" * 32,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Row:
    """One key's figures: receipts signed per second by each signer, and the floor."""

    key: str
    receipt_bytes: int
    signxml_per_s: float
    fixed_per_s: float
    ratio: float
    floor_per_s: float


def _rate(action: Callable[[], object], seconds: float) -> float:
    """Operations per second over about ``seconds``."""
    count, elapsed = repeat_for(action, seconds)
    return count / elapsed


def _floor(key: SigningKey) -> Callable[[], object]:
    message = b"x" * SIGNED_INFO_BYTES
    private_key = key.private_key
    if isinstance(private_key, rsa.RSAPrivateKey):
        return lambda: private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return lambda: private_key.sign(message, ec.ECDSA(hashes.SHA256()))


def _check(unsigned: bytes, key: SigningKey, anchors: VerifyPolicy) -> None:
    """Both signers' receipts verify; with RSA (deterministic) they are the same bytes."""
    theirs, ours = sign_document(unsigned, key), sign_enveloped(unsigned, key)
    for signed in (theirs, ours):
        verify(signed, anchors)
    if isinstance(key.private_key, rsa.RSAPrivateKey) and theirs != ours:
        raise SystemExit("the fixed-shape signer's RSA output differs from signxml's")


def measure(label: str, key: SigningKey, anchors: VerifyPolicy, seconds: float) -> Row:
    """Alternating rounds of each signer over the same receipt; medians of the rounds."""
    unsigned = receipt_xml(RECEIPT)
    _check(unsigned, key, anchors)
    actions = {"signxml": lambda: sign_document(unsigned, key),
               "fixed": lambda: sign_enveloped(unsigned, key), "floor": _floor(key)}  # fmt: skip
    for action in actions.values():  # warm-up
        for _ in range(20):
            action()
    rates: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(ROUNDS):
        for name, action in actions.items():
            rates[name].append(_rate(action, seconds / ROUNDS))
    signxml, fixed, floor = (statistics.median(rates[n]) for n in ("signxml", "fixed", "floor"))
    return Row(label, len(unsigned), signxml, fixed, fixed / signxml, floor)


def main(argv: Sequence[str] | None = None) -> None:
    """Measure both keys and print the table (or one JSON object)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="time per signer and key, split into rounds (default 3)")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args(argv)
    ca = new_ca("Bench CA", NOW)
    anchors = VerifyPolicy(at=NOW + timedelta(days=1), trust_anchors=(ca.certificate,))
    keys = [("RSA-2048", issue_agency(ca, "000.00.00.G22", "Văn phòng Chính phủ", NOW)),
            ("EC P-256", issue_hub(ca, NOW))]  # fmt: skip
    rows = [measure(label, credential.signing_key(), anchors, args.seconds)
            for label, credential in keys]  # fmt: skip
    if args.json:
        print(json.dumps({"seconds": args.seconds, "rounds": ROUNDS,
                          "rows": [asdict(row) for row in rows]}))  # fmt: skip
        return
    print(f"{'key':<9} {'receipt B':>9} {'signxml /s':>11} {'fixed /s':>9} {'fixed/signxml':>14} "
          f"{'key op alone /s':>16}")
    for row in rows:
        print(f"{row.key:<9} {row.receipt_bytes:>9} {row.signxml_per_s:>11,.0f} "
              f"{row.fixed_per_s:>9,.0f} {row.ratio:>13.2f}x {row.floor_per_s:>16,.0f}")


if __name__ == "__main__":
    main()
