"""``axis profile``: a clerk's client profile, from the output of ``axis agency register``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from axis.client.profile import load_profile, profile_toml
from axis.commands.clerk_io import client_amqp_url
from axis.commands.common import JsonOption, emit, read_file, reporting, write_file
from envelopes.errors import InvalidMetadata

profile_app = typer.Typer(
    help="Client profiles: the broker account, keys and certificates of one agency system.",
    no_args_is_help=True,
)


@profile_app.command("create")
def profile_create(
    registration: Path = typer.Argument(..., help="JSON printed by `axis agency register --json`."),
    key: Path = typer.Option(..., "--key", help="The system's signing key (PEM)."),
    cert: Path = typer.Option(..., "--cert", help="The system's registered certificate (PEM)."),
    hub_cert: Path = typer.Option(..., "--hub-cert", help="The hub's certificate (pki/hub.pem)."),
    ca: Path = typer.Option(
        ..., "--ca", help="The CA that issues agency certificates (pki/ca.pem)."
    ),
    amqp_url: str | None = typer.Option(
        None,
        "--amqp-url",
        help="Broker address with the virtual host, e.g. amqp://hub.example:5672/axis "
        "(default: $AXIS_AMQP_URL without its credentials, else amqp://127.0.0.1:5672/). "
        "The credentials come from the registration.",
    ),
    organ_name: str = typer.Option("", "--organ-name", help="The agency's name, for packages."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the profile."),
    as_json: bool = JsonOption,
) -> None:
    """Write a client profile from the output of `axis agency register --json`.

    The key must match the certificate; the file is written with mode 0600.

    Example: axis profile create reg.json --key g22.key --cert g22.pem --hub-cert hub.pem
    --ca ca.pem -o g22.toml
    """
    with reporting(as_json):
        try:
            reg = json.loads(read_file(registration, "registration file"))
            system_id, password = str(reg["system_id"]), str(reg["amqp_password"])
        except (ValueError, KeyError, TypeError):
            raise InvalidMetadata(
                f"{registration} is not the JSON of `axis agency register --json`"
            ) from None
        values = {
            "system_id": system_id,
            "organ_name": organ_name or str(reg.get("name", "")),
            "amqp_url": amqp_url or client_amqp_url(),
            "password": password,
            "key": str(key.resolve()),
            "cert": str(cert.resolve()),
            "hub_cert": str(hub_cert.resolve()),
            "ca": str(ca.resolve()),
        }
        for path, what in (
            (key, "key"),
            (cert, "certificate"),
            (hub_cert, "hub certificate"),
            (ca, "CA certificate"),
        ):
            read_file(path, what)
        text = profile_toml(values)
        write_file(out, text.encode())
        out.chmod(0o600)
        load_profile(out).client_config()  # the key, certificates and URL must all load
        emit(
            as_json,
            {"profile": str(out), "system_id": system_id, "amqp_url": values["amqp_url"]},
            [
                f"profile for {system_id} written to {out} (broker {values['amqp_url']})",
                f"next: axis send --profile {out} --to ORGAN-ID --subject … --code …",
            ],
        )
