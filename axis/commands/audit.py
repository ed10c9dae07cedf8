"""``axis audit``: check the hub's evidence offline: what a bundle proves, and that the
hub's log only ever grew between two signed tree heads (docs/evidence.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from axis.commands.common import (
    EXIT_REFUSED,
    JsonOption,
    emit,
    load_certificate_file,
    read_file,
    reporting,
    utc_now,
    write_file,
)
from axis.evidence.audit import AuditReport, audit_archive
from axis.evidence.consistency import head_data, verify_consistency_files
from axis.evidence.errors import ProofInvalid
from axis.evidence.heads import unverified_head
from signing.verify import VerifyPolicy

app = typer.Typer(
    help="Audit the hub's evidence offline: evidence bundles, and consistency between "
    "signed tree heads.",
    no_args_is_help=True,
)

TrustOption = Annotated[Path, typer.Option(
    "--trust", help="CA certificate(s) (PEM): the hub's certificate must chain to one.")]
ProfileOpt = Annotated[Path | None, typer.Option(
    "--profile", "-p", help="Ask the hub as this agency (default: $AXIS_PROFILE).")]
HomeOpt = Annotated[Path | None, typer.Option(
    "--home", help="Operators: read the hub home's store.")]
_HEX64 = re.compile(r"[0-9a-f]{64}")


@app.command("verify")
def verify_command(
    bundle_file: Annotated[Path, typer.Argument(
        metavar="FILE.zip", help="The evidence bundle (from `axis evidence export`).")],
    trust: TrustOption,
    tsa_trust: Annotated[Path | None, typer.Option(
        "--tsa-trust", help="CA certificate(s) (PEM) of the time-stamp authority: its "
        "certificate must chain to one. Without it only the token's own signature is "
        "checked.")] = None,
    package: Annotated[Path | None, typer.Option(
        "--package", help="The package: its SHA-256 must be the one the accepted receipt "
        "names.")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Check an evidence bundle offline: the head, its time-stamp, every inclusion proof,
    every receipt, and that the sender's certificate was registered before acceptance.

    Needs no hub and no network. Prints each check (✓ or ✗ with its error code), then
    what the bundle proves. Exits 0 if every check passed, 1 if any failed; with --json
    prints the report as one object either way (with "error" for the first failure).

    Example:

        axis audit verify evidence-7816.zip --trust ca.pem --tsa-trust tsa-ca.pem
    """
    with reporting(as_json):
        policy = _policy(trust)
        roots = (load_certificate_file(tsa_trust, "TSA trust anchor file")
                 if tsa_trust is not None else None)  # fmt: skip
        data = read_file(bundle_file, "evidence bundle")
        package_bytes = read_file(package, "package") if package is not None else None
        report = audit_archive(data, policy, tsa_roots=roots, package=package_bytes)
    if as_json:
        result = report.to_dict()
        result = {"ok": result.pop("ok"), "file": str(bundle_file), **result}
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        for line in report_lines(report, str(bundle_file)):
            typer.echo(line)
        if (error := report.error) is not None:
            typer.echo(f"error: {error.code}: {error.detail}", err=True)
    if not report.ok:
        raise typer.Exit(EXIT_REFUSED)


def report_lines(report: AuditReport, name: str) -> list[str]:
    """The report in words: a verdict, each check, then what was proven."""
    failed = sum(not check.ok for check in report.checks)
    verdict = "verified" if report.ok else f"NOT verified ({failed} checks failed)"
    width = max(len(check.check) for check in report.checks)
    lines = [f"evidence bundle {name}: {verdict}"]
    for check in report.checks:
        mark = "✓" if check.ok else "✗"
        code = f"{check.code}: " if check.code else ""
        lines.append(f"  {mark} {check.check:<{width}}  {code}{check.detail}")
    if report.facts:
        lines.append("what the bundle proves:")
        lines += [f"  - {fact}" for fact in report.facts]
    return lines


@app.command("consistency")
def consistency_command(
    old_head: Annotated[Path, typer.Argument(
        metavar="OLD_HEAD", help="The older signed tree head (XML, from `axis log head -o`).")],
    trust: TrustOption,
    new_head: Annotated[Path | None, typer.Argument(
        metavar="[NEW_HEAD]", help="The newer signed tree head (XML); default: the hub's "
        "newest (with --profile or --home).")] = None,
    proof: Annotated[Path | None, typer.Option(
        "--proof", help='A consistency proof saved before: {"old_size", "new_size", '
        '"path"} (JSON); without it the proof is asked of the hub (--profile/--home).')] = None,
    profile: ProfileOpt = None,
    home: HomeOpt = None,
    as_json: bool = JsonOption,
) -> None:
    """Check that the new head extends the old one: the hub's log only grew between them.

    Verifies both heads' hub signatures, then the consistency proof between their sizes
    against both roots. Fails with audit.inconsistent if the proof fails, if two heads
    of one size have different roots, or if the old head is the bigger one. The proof
    (and, if NEW_HEAD is not given, the newest head) comes from --proof offline, or
    from the hub (--profile) or its store (--home).

    Examples:

        axis audit consistency old.xml new.xml --proof proof.json --trust ca.pem
        axis audit consistency head-2026-11.xml --profile g22.toml --trust ca.pem
    """
    with reporting(as_json):
        policy = _policy(trust)
        old_raw = read_file(old_head, "old tree head")
        if new_head is not None:
            new_raw = read_file(new_head, "new tree head")
        else:
            new_raw = _hub_head_now(profile, home)
        if proof is not None:
            old_size, new_size, path = read_consistency_proof(read_file(proof, "consistency "
                                                                        "proof"))  # fmt: skip
            data = check_consistency(old_raw, new_raw, path, policy, sizes=(old_size, new_size))
        else:
            path = _hub_proof(profile, home, old_raw, new_raw)
            data = check_consistency(old_raw, new_raw, path, policy)
    emit(as_json, data, _consistency_lines(data))


@app.command("monitor")
def monitor_command(
    state: Annotated[Path, typer.Option(
        "--state", help="The witness's folder: the heads it has seen (head-<size>.xml).")],
    trust: TrustOption,
    profile: ProfileOpt = None,
    home: HomeOpt = None,
    as_json: bool = JsonOption,
) -> None:
    """Be a witness: check the hub's newest head against the heads seen before, keep it.

    Fetches the newest signed head, verifies it, proves it consistent with the newest
    head kept in --state and keeps it there. Exits 1 with audit.inconsistent, loudly,
    if the hub ever shows a head that does not extend what it showed before (an entry
    changed or removed, a fork, a rollback). Run it from cron; keep --state safe.

    Example:

        axis audit monitor --state /var/lib/axis-witness --profile g22.toml --trust ca.pem
    """
    with reporting(as_json):
        policy = _policy(trust)
        new_raw = _hub_head_now(profile, home)
        kept = _newest_kept(state)
        if kept is None:
            data = check_consistency(new_raw, new_raw, [], policy)
            data["statement"] = "first head seen: kept as the witness's starting point"
        else:
            path = _hub_proof(profile, home, kept, new_raw)
            data = check_consistency(kept, new_raw, path, policy)
        size = data["new"]["tree_size"]
        state.mkdir(parents=True, exist_ok=True)
        if not (state / f"head-{size}.xml").exists():
            write_file(state / f"head-{size}.xml", new_raw)
        data["kept"] = str(state / f"head-{size}.xml")
    emit(as_json, data, _consistency_lines(data))


def _consistency_lines(data: dict[str, Any]) -> list[str]:
    return [data["statement"]] + [
        f"  {which} head: size {data[which]['tree_size']}, root {data[which]['root_hash']}, "
        f"signed at {data[which]['timestamp']} by {data[which]['signer']['subject']}"
        for which in ("old", "new")]  # fmt: skip


def _hub_head_now(profile: Path | None, home: Path | None) -> bytes:
    from axis.commands.evidence_cmd import ask_hub

    data = ask_hub(profile, home, lambda c: c.log_head(), lambda e: e.head_data(checked=True))
    return str(data["head"]).encode("utf-8")


def _hub_proof(profile: Path | None, home: Path | None, old_raw: bytes,
               new_raw: bytes) -> tuple[bytes, ...]:  # fmt: skip
    """The consistency proof between two heads' sizes, from the hub or its store."""
    from axis.commands.evidence_cmd import ask_hub

    old_size, new_size = unverified_head(old_raw).tree_size, unverified_head(new_raw).tree_size
    if old_size >= new_size:  # nothing to prove: the checks compare the heads themselves
        return ()
    data = ask_hub(profile, home, lambda c: c.log_consistency(old_size, new_size),
                   lambda e: e.consistency(old_size, new_size, checked=True))  # fmt: skip
    return tuple(bytes.fromhex(h) for h in data["path"])


def _newest_kept(state: Path) -> bytes | None:
    kept = [(int(m.group(1)), path) for path in state.glob("head-*.xml")
            if (m := re.fullmatch(r"head-(\d+)\.xml", path.name))]  # fmt: skip
    return read_file(max(kept)[1], "kept tree head") if kept else None


def check_consistency(
    old_raw: bytes,
    new_raw: bytes,
    proof_path_hashes: Sequence[bytes],
    policy: VerifyPolicy,
    *,
    sizes: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Verify two signed heads and the consistency proof between them; the result as
    data (``consistent``, ``old``, ``new``, ``proof``, ``statement``).

    ``sizes`` are the sizes the proof states (from a proof file): they must be the
    heads' sizes (``audit.proof_invalid`` otherwise, before any verdict on the log).
    Raises ``audit.head_invalid`` or ``audit.inconsistent`` as
    :func:`~axis.evidence.consistency.verify_consistency_files`.
    """
    if sizes is not None:
        stated = (unverified_head(old_raw).tree_size, unverified_head(new_raw).tree_size)
        if sizes != stated:
            raise ProofInvalid(f"the proof is from size {sizes[0]} to {sizes[1]}, the heads "
                               f"are of sizes {stated[0]} and {stated[1]}")  # fmt: skip
    old, new = verify_consistency_files(old_raw, new_raw, proof_path_hashes, policy)
    a, b = old.head, new.head
    statement = (
        f"consistent: both heads are of size {a.tree_size}, with the same root"
        if a.tree_size == b.tree_size else
        f"consistent: the head of size {b.tree_size} extends the head of size {a.tree_size} "
        "(the hub's log only grew between them)"
    )  # fmt: skip
    return {
        "consistent": True,
        "statement": statement,
        "old": head_data(old),
        "new": head_data(new),
        "proof": {"old_size": a.tree_size, "new_size": b.tree_size,
                  "path": [h.hex() for h in proof_path_hashes]},
    }  # fmt: skip


def read_consistency_proof(data: bytes) -> tuple[int, int, tuple[bytes, ...]]:
    """``(old_size, new_size, path)`` of a proof file ``{"old_size", "new_size", "path"}``;
    anything else raises ``audit.proof_invalid``."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProofInvalid("the consistency proof is not JSON (UTF-8)") from None
    fields = value if isinstance(value, dict) else {}
    old_size, new_size, path = fields.get("old_size"), fields.get("new_size"), fields.get("path")
    if not (
        _size(old_size) and _size(new_size) and isinstance(path, list)
        and all(isinstance(h, str) and _HEX64.fullmatch(h) for h in path)
    ):  # fmt: skip
        raise ProofInvalid('the consistency proof is not {"old_size", "new_size", "path"} with '
                           "sizes and hashes (64 lowercase hex digits)")  # fmt: skip
    assert isinstance(old_size, int) and isinstance(new_size, int)
    return old_size, new_size, tuple(bytes.fromhex(h) for h in path)


def _size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _policy(trust: Path) -> VerifyPolicy:
    anchors = load_certificate_file(trust, "trust anchor file")
    return VerifyPolicy(at=utc_now(), trust_anchors=anchors)
