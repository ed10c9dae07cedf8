"""``axis receipt``: check, offline, what a hub receipt proves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from axis.commands.common import JsonOption, emit, read_file, reporting, trust_policy
from axis.receipts import VerifiedReceipt, describe, verify_receipt
from routing.contract import utc_text
from routing.values import Receipt, sha256_hex
from signing.errors import UntrustedCertificate
from signing.keys import organ_id_of
from signing.verify import VerifyPolicy, verify

app = typer.Typer(
    help="Check the hub's signed receipts offline: who sent what, when, and what the hub did.",
    no_args_is_help=True,
)


@app.command("verify")
def verify_command(
    receipt_file: Annotated[Path, typer.Argument(metavar="RECEIPT.xml", help="The receipt.")],
    package: Annotated[Path | None, typer.Option(
        "--package", help="The package the receipt is about: its SHA-256 must match.")] = None,
    hub_cert: Annotated[Path | None, typer.Option(
        "--hub-cert", help="The hub's certificate (PEM): it must have signed the receipt.")] = None,
    trust: Annotated[Path | None, typer.Option(
        "--trust", help="CA certificate(s) (PEM): the hub's must chain to one.")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Verify a receipt's hub signature (and, with --package, that it names that package).

    Offline: needs only the receipt, the hub certificate or the CA, and
    optionally the package. Give exactly one of --hub-cert or --trust. With
    --trust, a receipt signed by an agency certificate (one carrying an organ
    id) is refused: only the hub signs receipts.

    Example:

        axis receipt verify receipt.xml --package signed.edxml --hub-cert pki/hub.pem
    """
    with reporting(as_json):
        policy, against = trust_policy(hub_cert, trust, pinned_flag="--hub-cert")
        raw = read_file(receipt_file, "receipt")
        package_bytes = read_file(package, "package") if package is not None else None
        verified = verify_receipt(raw, policy, package_bytes)
        if trust is not None:
            _refuse_agency_signer(raw, policy)
    emit(as_json, _as_data(verified, receipt_file, package, package_bytes, against),
         lambda: _lines(verified, package, against))


def _refuse_agency_signer(raw: bytes, policy: VerifyPolicy) -> None:
    # Under a CA, every agency's certificate chains too; a receipt is only proof if
    # the hub signed it, and agency certificates carry the organ id (UID).
    signer = verify(raw, policy).signer
    organ = organ_id_of(signer)
    if organ is not None:
        raise UntrustedCertificate(
            f"the receipt is signed by the agency certificate of {organ}, not by the hub",
            subject=signer.subject.rfc4514_string(),
        )


def _receipt_data(receipt: Receipt) -> dict[str, Any]:
    data: dict[str, Any] = {
        "receipt_id": receipt.receipt_id,
        "event": receipt.event,
        "kind": receipt.kind,
        "message_id": receipt.message_id,
        "document_id": receipt.document_id,
        "sender_system": receipt.sender_system,
        "sender_organ": receipt.sender_organ,
        "recipients": list(receipt.recipients),
        "recipient_system": receipt.recipient_system,
        "package_sha256": receipt.package_sha256,
        "hub_time": utc_text(receipt.hub_time),
    }
    if receipt.event == "rejected":
        data["error_code"] = receipt.error_code
        data["reason"] = receipt.reason
    return data


def _as_data(
    verified: VerifiedReceipt,
    receipt_file: Path,
    package: Path | None,
    package_bytes: bytes | None,
    against: str,
) -> dict[str, Any]:
    return {
        "file": str(receipt_file),
        "verified": True,
        "statement": describe(verified.receipt),
        "receipt": _receipt_data(verified.receipt),
        "signer": {"subject": verified.signer_subject, "fingerprint": verified.signer_fingerprint},
        "checked_against": against,
        "package": (
            None if package is None or package_bytes is None
            else {"file": str(package), "sha256": sha256_hex(package_bytes), "matches": True}
        ),
    }


def _lines(verified: VerifiedReceipt, package: Path | None, against: str) -> list[str]:
    receipt = verified.receipt
    lines = [
        "receipt verified: the hub's signature is valid and its certificate is trusted",
        f"  {describe(receipt)}",
        f"  receipt id:   {receipt.receipt_id}",
        f"  event:        {receipt.event} ({receipt.kind})",
        f"  package:      sha256 {receipt.package_sha256}",
        f"  signed by:    {verified.signer_subject}",
        f"  fingerprint:  {verified.signer_fingerprint}",
        f"  checked:      {against}",
    ]
    if package is not None:
        lines.append(f"  package file: {package} has exactly this SHA-256")
    else:
        lines.append("  package file: not checked (give --package FILE to check it is this one)")
    return lines
