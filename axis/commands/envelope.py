"""``axis envelope``: build, inspect, validate, sign and verify edXML packages, offline."""

from __future__ import annotations

import base64
import binascii
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509
from lxml import etree

from axis.commands.common import (
    JsonOption,
    emit,
    exit_code_for,
    read_file,
    reporting,
    stderr,
    trust_policy,
    write_file,
)
from axis.pki_files import load_credential
from envelopes.builder import attachment_from_bytes, build_package, document_from_metadata
from envelopes.errors import AxisError, InvalidMetadata, SchemaViolation
from envelopes.model import Attachment, DocumentPackage, Organization, Package
from envelopes.parser import parse_package
from envelopes.schema import explain
from envelopes.xmlsafe import parse_tree
from signing.errors import InvalidKeyMaterial
from signing.keys import fingerprint, load_certificate, organ_id_of
from signing.sign import sign_package
from signing.verify import verify

# Attachments above this size get a progress line: base64-encoding them takes a moment.
PROGRESS_BYTES = 5 * 1024 * 1024

app = typer.Typer(
    help="Build, inspect, validate, sign and verify edXML (QCVN 102:2016) packages, offline.",
    no_args_is_help=True,
)


@app.command("new")
def new_command(
    metadata: Annotated[Path, typer.Argument(
        metavar="METADATA", help="Document metadata, a .toml or .json file (see docs/edxml.md).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the package.")],
    attach: Annotated[list[Path] | None, typer.Option(
        "--attach", "-a", metavar="FILE", help="A file to attach (repeatable).")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Build an unsigned document package from a metadata file and attachments.

    Example:

        axis envelope new letter.toml --attach letter.pdf -o letter.edxml
    """
    with reporting(as_json):
        meta = _read_metadata(metadata)
        attachments = [_read_attachment(path) for path in attach or []]
        big = sum(a.size for a in attachments)
        if big > PROGRESS_BYTES:
            stderr(f"building the package ({_megabytes(big)} of attachments)…")
        package = document_from_metadata(meta, attachments)
        raw = build_package(package)
        write_file(out, raw)
    summary = package_data(package)
    emit(as_json, {"file": str(out), "size": len(raw), **summary}, [
        f"wrote {out} ({len(raw)} bytes, unsigned)",
        *package_lines(package),
        f"next: axis envelope sign {out} --key KEY.pem --cert CERT.pem -o SIGNED.edxml",
    ])


@app.command("show")
def show_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="An edXML package.")],
    as_json: bool = JsonOption,
) -> None:
    """Summarize a package: parties, subject, attachments, status, signer.

    The signer is shown as the package states it, NOT verified: use
    `axis envelope verify` to check the signature.

    Example:

        axis envelope show letter.edxml
    """
    with reporting(as_json):
        raw = read_file(file, "package")
        package = parse_package(raw)
        signer = signer_info(parse_tree(raw))
    data = {"file": str(file), **package_data(package), "signature": signer}
    emit(as_json, data, lambda: [
        f"{file}",
        *package_lines(package),
        *signer_lines(signer),
    ])


@app.command("validate")
def validate_command(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Packages to check.")],
    as_json: bool = JsonOption,
) -> None:
    """Check packages against QCVN 102:2016 (schema, structure, attachments).

    Prints ok or the error (code, reason, element path) for each file; exits 0
    only if every file is valid. With --json, prints a list of results.

    Example:

        axis envelope validate inbox/*.edxml
    """
    results = [_validate_one(path) for path in files]
    valid = all(result["ok"] for result in results)
    if as_json:
        typer.echo(json.dumps({"ok": valid, "results": results}, ensure_ascii=False, indent=2))
    else:
        for result in results:
            for line in _result_lines(result):
                typer.echo(line)
        failed = [result for result in results if not result["ok"]]
        typer.echo(f"{len(results) - len(failed)} valid, {len(failed)} invalid")
        if failed:
            typer.echo(f"error: {failed[0]['error']['code']}: {len(failed)} of {len(results)} "
                       "files are invalid", err=True)
    if not valid:
        raise typer.Exit(max(int(r["exit_code"]) for r in results if not r["ok"]))


@app.command("sign")
def sign_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="An unsigned edXML package.")],
    key: Annotated[Path, typer.Option("--key", help="The agency's private key (PEM).")],
    cert: Annotated[Path, typer.Option("--cert", help="The agency's certificate (PEM).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the signed package.")],
    as_json: bool = JsonOption,
) -> None:
    """Sign a package: one enveloped XMLDSig signature over the whole package.

    The package is validated first; an invalid one is not signed.

    Example:

        axis envelope sign letter.edxml --key pki/000.00.00.G22.key \\
            --cert pki/000.00.00.G22.pem -o letter.signed.edxml
    """
    with reporting(as_json):
        raw = read_file(file, "package")
        package = parse_package(raw)
        signing_key = load_credential(key, cert)
        signed = sign_package(raw, signing_key)
        write_file(out, signed)
    signer = certificate_info(signing_key.certificate, _short(str(signing_key.algorithm.value)))
    warning = _sender_mismatch(package, signer)
    if warning:
        stderr(f"warning: {warning}")
    emit(as_json, {"file": str(out), "size": len(signed), "document_id": package.document_id,
                   "signer": signer, "warning": warning}, [
        f"wrote {out} ({len(signed)} bytes), signed by {signer['subject']}",
        f"  fingerprint: {signer['fingerprint']}",
        f"  algorithm:   {signer['algorithm']}",
    ])


@app.command("verify")
def verify_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A signed edXML package.")],
    cert: Annotated[Path | None, typer.Option(
        "--cert", help="The signer's certificate (PEM): the package must be signed by it.")] = None,
    trust: Annotated[Path | None, typer.Option(
        "--trust", help="CA certificate(s) (PEM): the signer's must chain to one.")] = None,
    allow_sha1: Annotated[bool, typer.Option(
        "--allow-sha1", help="Accept legacy RSA-SHA1 / SHA-1 signatures.")] = False,
    as_json: bool = JsonOption,
) -> None:
    """Verify a package's signature and signer certificate, at the current time.

    Give exactly one of --cert (pin the signer) or --trust (any certificate
    issued by that CA). Checks that the whole package is signed, unaltered,
    with an accepted algorithm, by a certificate valid now.

    Example:

        axis envelope verify letter.signed.edxml --trust pki/ca.pem
    """
    with reporting(as_json):
        policy, against = trust_policy(cert, trust, allow_sha1=allow_sha1)
        raw = read_file(file, "package")
        verified = verify(raw, policy)
        package = parse_package(verified.signed_bytes)
        signer = certificate_info(verified.signer, _algorithm(raw))
    warning = _sender_mismatch(package, signer)
    checked = policy.at.isoformat(timespec="seconds")
    data = {"file": str(file), "verified": True, "checked_at": checked,
            "checked_against": against, "signer": signer, "warning": warning,
            **package_data(package)}
    emit(as_json, data, lambda: [
        f"signature valid: {file} is unaltered since it was signed",
        f"  signed by:   {signer['subject']}",
        f"  organ id:    {signer['organ_id'] or '(none in the certificate)'}",
        f"  fingerprint: {signer['fingerprint']}",
        f"  algorithm:   {signer['algorithm']}",
        f"  trust:       {against}, valid at {checked}",
        *([f"  warning:     {warning}"] if warning else []),
        *package_lines(package),
    ])


def _read_metadata(path: Path) -> Mapping[str, Any]:
    raw = read_file(path, "metadata file")
    try:
        text = raw.decode("utf-8-sig")
        if path.suffix.lower() == ".json":
            meta = json.loads(text)
        elif path.suffix.lower() == ".toml":
            meta = tomllib.loads(text)
        else:
            raise InvalidMetadata(f"metadata file {str(path)!r} must end in .toml or .json")
    except UnicodeDecodeError:
        raise InvalidMetadata(f"metadata file {str(path)!r} is not UTF-8") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidMetadata(f"metadata file {str(path)!r} does not parse: {exc}") from None
    if not isinstance(meta, dict):
        raise InvalidMetadata(f"metadata file {str(path)!r} must hold a table/object")
    return meta


def _read_attachment(path: Path) -> Attachment:
    size = path.stat().st_size if path.is_file() else 0
    if size > PROGRESS_BYTES:
        stderr(f"reading attachment {path.name} ({_megabytes(size)})…")
    return attachment_from_bytes(path.name, read_file(path, "attachment"))


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _validate_one(path: Path) -> dict[str, Any]:
    try:
        raw = read_file(path, "package")
        package = parse_package(raw)
    except AxisError as error:
        result: dict[str, Any] = {"file": str(path), "ok": False, "error": error.to_dict(),
                                  "exit_code": exit_code_for(error)}
        if isinstance(error, SchemaViolation):
            result["details"] = _explain(raw)
        return result
    return {"file": str(path), "ok": True, "kind": package.kind,
            "document_id": package.document_id}


def _explain(raw: bytes) -> list[str]:
    try:
        return explain(parse_tree(raw))
    except Exception:  # the details are a bonus: the coded error is already reported
        return []


def _result_lines(result: Mapping[str, Any]) -> list[str]:
    if result["ok"]:
        return [f"ok       {result['file']}  ({result['kind']}, document {result['document_id']})"]
    error = result["error"]
    where = f" (at {error['path']})" if error.get("path") else ""
    lines = [f"invalid  {result['file']}: {error['code']}: {error['reason']}{where}"]
    lines.extend(f"           - {detail}" for detail in result.get("details", []))
    return lines


def _sender_mismatch(package: Package, signer: Mapping[str, Any]) -> str | None:
    organ = signer.get("organ_id")
    if organ and organ != package.sender.organ_id:
        return (f"the certificate belongs to {organ}, but the package is from "
                f"{package.sender.organ_id}; the hub will refuse it")
    return None


def _algorithm(raw: bytes) -> str:
    info = signer_info(parse_tree(raw))
    return str(info["algorithm"]) if info else ""



# -- describing packages and signers (shared by new, show, sign and verify) ---------


def package_data(package: Package) -> dict[str, Any]:
    """The package's facts as JSON-ready data."""
    data: dict[str, Any] = {"kind": package.kind, "document_id": package.document_id,
                            "from": _party(package.sender)}
    if isinstance(package, DocumentPackage):
        info = package.promulgation_info
        data.update({
            "to": [_party(r) for r in package.recipients],
            "subject": package.subject,
            "code": _code(package),
            "type": {"type": package.document_type.type, "name": package.document_type.type_name,
                     "detail": package.document_type.type_detail},
            "promulgation": {"date": info.promulgation_date.isoformat(), "place": info.place},
            "due_date": package.due_date.isoformat() if package.due_date else None,
            "priority": package.priority,
            "business": _business(package),
            "attachments": [{"name": a.attachment_name, "content_type": a.content_type,
                             "size": a.size, "sha256": a.sha256} for a in package.attachments],
        })
        return data
    code = package.status_code
    data.update({
        "status_code": {"code": code.value, "vi": code.vi, "en": code.en},
        "timestamp": package.timestamp.isoformat(),
        "description": package.description,
        "response_for": {"organ_id": package.response_for.organ_id,
                         "code": package.response_for.code},
    })
    return data


def package_lines(package: Package) -> list[str]:
    """The package's facts in words, one per line."""
    sender = _named(package.sender)
    if not isinstance(package, DocumentPackage):
        code = package.status_code
        return [
            "  kind:         status (a report on a document)",
            f"  document id:  {package.document_id or '(none)'}",
            f"  from:         {sender} → document of {package.response_for.organ_id or '?'}",
            f"  status:       {code.value} {code.vi} ({code.en})",
            f"  at:           {package.timestamp.isoformat(sep=' ')}",
            *([f"  description:  {package.description}"] if package.description else []),
        ]
    kind = package.document_type
    info = package.promulgation_info
    business = _business(package)
    lines = [
        f"  kind:         edoc (a document, {business})",
        f"  document id:  {package.document_id}",
        f"  parties:      {sender} → {'; '.join(_named(r) for r in package.recipients)}",
        f"  subject:      {package.subject}",
        f"  code:         {_code(package)}",
        f"  type:         {kind.type} {kind.type_name}".rstrip(),
        f"  promulgated:  {info.promulgation_date.isoformat()} {info.place}".rstrip(),
        *([f"  due date:     {package.due_date.isoformat()}"] if package.due_date else []),
        f"  priority:     {package.priority} (0 normal … 4 most urgent)",
        f"  attachments:  {len(package.attachments)}",
    ]
    lines.extend(f"    - {a.attachment_name} ({a.content_type}, {a.size} bytes) sha256 {a.sha256}"
                 for a in package.attachments)
    return lines


def signer_info(root: etree._Element) -> dict[str, Any] | None:
    """What the package's signature claims (signer, algorithm), without verifying anything."""
    signatures = list(root.iter("{*}Signature"))
    if not signatures:
        return None
    method = next(signatures[0].iter("{*}SignatureMethod"), None)
    algorithm = _short(method.get("Algorithm", "")) if method is not None else ""
    element = next(signatures[0].iter("{*}X509Certificate"), None)
    try:
        der = base64.b64decode("".join((element.text or "").split()) if element is not None
                               else "", validate=True)
        info = certificate_info(load_certificate(der), algorithm)
    except (binascii.Error, ValueError, InvalidKeyMaterial):
        info = {"subject": None, "organ_id": None, "fingerprint": None, "algorithm": algorithm}
    return {**info, "signatures": len(signatures), "verified": False}


def signer_lines(signer: Mapping[str, Any] | None) -> list[str]:
    """The claimed signer in words, with the reminder that nothing was verified."""
    if signer is None:
        return ["  signature:    none (unsigned)"]
    subject = signer["subject"] or "(no readable certificate)"
    return [
        f"  signer:       {subject} (not verified, use `axis envelope verify`)",
        f"    organ id:     {signer['organ_id'] or '(none)'}",
        f"    fingerprint:  {signer['fingerprint'] or '(none)'}",
        f"    algorithm:    {signer['algorithm'] or '(unknown)'}",
    ]


def certificate_info(cert: x509.Certificate, algorithm: str) -> dict[str, Any]:
    """A certificate's subject, organ id, fingerprint and validity, and the algorithm used."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "organ_id": organ_id_of(cert),
        "fingerprint": fingerprint(cert),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "algorithm": algorithm,
    }


def _party(organ: Organization) -> dict[str, str]:
    return {"organ_id": organ.organ_id, "organ_name": organ.organ_name}


def _named(organ: Organization) -> str:
    return f"{organ.organ_id} {organ.organ_name}".strip()


def _business(package: DocumentPackage) -> str:
    return package.business.doc_type.name.lower() if package.business else "new"


def _code(package: DocumentPackage) -> str:
    code = package.code
    return f"{code.code_number}/{code.code_notation}" if code.code_notation else code.code_number


def _short(algorithm_uri: str) -> str:
    """``rsa-sha256`` for ``http://www.w3.org/2001/04/xmldsig-more#rsa-sha256``."""
    return algorithm_uri.rsplit("#", 1)[-1]
