"""``axis pki``: a small certificate authority for tests, pilots and demos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from axis.commands.common import JsonOption, emit, reporting, utc_now
from axis.errors import PkiError
from axis.pki_files import init_pki, issue_agency_files
from envelopes.ids import validate_organ_id
from signing.keys import fingerprint, load_certificate

app = typer.Typer(
    help="Create a test/pilot PKI: a CA, the hub's certificate, one certificate per agency.",
    no_args_is_help=True,
)


@app.command("init")
def init_command(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Directory for the PKI.")],
    as_json: bool = JsonOption,
) -> None:
    """Create a CA and the hub's signing certificate in DIR.

    Writes ca.pem/ca.key (the CA) and hub.pem/hub.key (the hub, which signs
    receipts). Private keys are created with mode 0600. Refuses to overwrite an
    existing PKI (error pki.exists).

    Example:

        axis pki init ./pki
    """
    with reporting(as_json):
        paths = init_pki(directory, utc_now())
        hub_fp = fingerprint(load_certificate(paths.hub_cert.read_bytes()))
    files = {
        "ca_cert": str(paths.ca_cert),
        "ca_key": str(paths.ca_key),
        "hub_cert": str(paths.hub_cert),
        "hub_key": str(paths.hub_key),
    }
    emit(as_json, {"directory": str(directory), "files": files, "hub_fingerprint": hub_fp}, [
        f"created a PKI in {directory}",
        f"  CA certificate:   {paths.ca_cert}  (give it to verifiers: --trust)",
        f"  CA private key:   {paths.ca_key}  (keep secret: it issues certificates)",
        f"  hub certificate:  {paths.hub_cert}  (fingerprint {hub_fp})",
        f"  hub private key:  {paths.hub_key}",
        f"next: axis pki issue {directory} --organ-id ORGAN.ID --name 'Agency name'",
    ])


@app.command("issue")
def issue_command(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Made by `axis pki init`.")],
    organ_id: Annotated[str, typer.Option("--organ-id", help="OrganId, e.g. 000.00.00.G22.")],
    name: Annotated[str, typer.Option("--name", help="The agency's name (common name).")],
    as_json: bool = JsonOption,
) -> None:
    """Issue an agency signing certificate with DIR's CA.

    Writes DIR/<organ-id>.pem and DIR/<organ-id>.key (mode 0600); the
    certificate's subject carries the OrganId (UID) and the name (CN). A
    malformed organ id is refused (registry.invalid_organ_id); an existing
    certificate is never overwritten (pki.exists).

    Example:

        axis pki issue ./pki --organ-id 000.00.00.G22 --name "Văn phòng Chính phủ"
    """
    with reporting(as_json):
        validate_organ_id(organ_id)
        if not (directory / "ca.key").is_file() or not (directory / "ca.pem").is_file():
            raise PkiError(
                f"{directory} holds no CA (ca.pem, ca.key): run `axis pki init {directory}` first",
                path=str(directory),
            )
        paths = issue_agency_files(directory, organ_id, name, utc_now())
        cert_fp = fingerprint(load_certificate(paths.cert.read_bytes()))
    data = {
        "organ_id": organ_id,
        "name": name,
        "cert": str(paths.cert),
        "key": str(paths.key),
        "fingerprint": cert_fp,
    }
    emit(as_json, data, [
        f"issued a certificate for {organ_id} ({name})",
        f"  certificate:  {paths.cert}",
        f"  private key:  {paths.key}",
        f"  fingerprint:  {cert_fp}",
        f"sign with: axis envelope sign FILE --key {paths.key} --cert {paths.cert} -o OUT",
    ])
