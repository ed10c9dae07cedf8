"""Operator commands: create a hub home, run the hub, register agencies, import the directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from axis.commands.common import (
    HomeOption,
    JsonOption,
    emit,
    hub_store,
    read_file,
    reporting,
    utc_now,
)
from axis.commands.directory_cmd import directory_app
from axis.commands.hub_setup import init_broker, init_broker_lines
from axis.commands.serve_cmd import serve
from axis.errors import (
    InvalidSettings,
    PkiExists,
    UnknownAgency,
)
from axis.expiry import expires_soon
from axis.settings import load_settings, write_default_config

agency_app = typer.Typer(help="Register and manage agency systems.", no_args_is_help=True)


def init(
    home: Path = typer.Argument(
        None, help="Folder for the hub home (default: $AXIS_HOME or ./.axis)."
    ),
    no_broker: bool = typer.Option(
        False, "--no-broker", help="Do not set the broker up (offline); run `axis hub setup` later."
    ),
    hub_user: str | None = typer.Option(
        None, "--hub-user", help="Also create the hub's own least-privilege broker user."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a hub home: axis.toml, the PKI (CA, hub key pair) and the SQLite database,
    then set the broker up as `axis hub setup` does (unless --no-broker).

    Example: axis init /srv/axis --hub-user axis-hub
    """
    import os

    from axis.pki_files import init_pki
    from axis.store import Store

    with reporting(as_json):
        home = home or Path(os.environ.get("AXIS_HOME", ".axis"))
        if (home / "axis.toml").exists():
            raise PkiExists(f"{home} is already a hub home (axis.toml exists)")
        home.mkdir(parents=True, exist_ok=True)
        config = write_default_config(home)
        settings = load_settings(home)
        paths = init_pki(settings.pki_dir, datetime.now(UTC))
        store = Store(settings.db_url)
        store.create_all()
        store.dispose()
        broker = init_broker(home, hub_user, enabled=not no_broker)
        emit(
            as_json,
            {
                "home": str(home),
                "config": str(config),
                "ca": str(paths.ca_cert),
                "hub_cert": str(paths.hub_cert),
                "db_url": settings.db_url,
                "broker": broker,
            },
            [
                f"hub home created in {home}",
                f"  config   {config}",
                f"  CA       {paths.ca_cert}",
                f"  hub cert {paths.hub_cert}",
                f"  database {settings.db_url}",
                *init_broker_lines(broker),
                "next: axis agency register ORGAN-ID --name NAME --cert CERT.pem",
            ],
        )


@agency_app.command("register")
def agency_register(
    organ_id: str = typer.Argument(..., help="The system's own organ id, e.g. 000.00.00.G22."),
    name: str = typer.Option(..., "--name", help="The organ's name."),
    cert: Path = typer.Option(..., "--cert", help="The system's signing certificate (PEM)."),
    serves: list[str] = typer.Option([], "--serves", help="Another organ this system serves."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Register a system: its broker account, inbox, certificate and the organs it serves.

    The generated broker password is printed once. Example:
    axis agency register 000.00.00.G22 --name "Văn phòng Chính phủ" --cert g22.pem --json
    """
    from axis.registration import register_system

    with reporting(as_json):
        result = register_system(
            load_settings(home), organ_id, name, read_file(cert, "certificate"), serves
        )
        emit(
            as_json,
            result,
            [
                f"registered system {result['system_id']} ({name})",
                f"  inbox        {result['inbox']}",
                f"  amqp user    {result['amqp_user']}",
                f"  amqp password {result['amqp_password']}   (shown once; keep it safe)",
            ],
        )


@agency_app.command("list")
def agency_list(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """List the registered systems, flagging certificates that expire within 30 days.

    Each unrevoked certificate that has expired, or will within 30 days, gets a line
    under its system (`expiring_soon: true` and `expired` in --json): bind the
    successor with `axis agency add-cert` before the old one runs out.
    """
    with reporting(as_json), hub_store(home) as store:
        snapshot = store.load_snapshot()
        systems = [_system_json(store, s.system_id, snapshot) for s in store.list_systems()]
        emit(
            as_json,
            {"systems": systems},
            lambda: [line for s in systems for line in _list_lines(s)]
            or ["(no systems registered)"],
        )


@agency_app.command("show")
def agency_show(organ_id: str, home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Show one system: state, served organs, certificates."""
    with reporting(as_json), hub_store(home) as store:
        info = _system_json(store, organ_id, store.load_snapshot())
        emit(as_json, info, lambda: _show_lines(info))


@agency_app.command("suspend")
def agency_suspend(
    organ_id: str, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """Suspend a system: its submissions and documents addressed to it are rejected."""
    _set_active(organ_id, home, as_json, False)


@agency_app.command("resume")
def agency_resume(
    organ_id: str, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """Resume a suspended system."""
    _set_active(organ_id, home, as_json, True)


@agency_app.command("add-cert")
def agency_add_cert(
    organ_id: str,
    cert: Path = typer.Option(..., "--cert"),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Bind another signing certificate to a system (e.g. before the old one expires).

    A certificate that names another organ (its UID) is refused.
    """
    from axis.registration import check_certificate_organ

    with reporting(as_json), hub_store(home) as store:
        _require_system(store, organ_id)
        pem = read_file(cert, "certificate")
        check_certificate_organ(organ_id, pem)
        record = store.add_certificate(organ_id, pem)
        emit(
            as_json,
            {"system_id": organ_id, "fingerprint": record.fingerprint},
            [f"certificate {record.fingerprint} bound to {organ_id}"],
        )


@agency_app.command("revoke-cert")
def agency_revoke_cert(
    organ_id: str,
    fingerprint: str = typer.Argument(
        ..., help="SHA-256 hex (as `agency show` prints it), or a unique prefix of 8+ digits."
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Revoke one of a system's certificates: packages signed with it are rejected."""
    with reporting(as_json), hub_store(home) as store:
        _require_system(store, organ_id)
        fingerprint = _full_fingerprint(store, organ_id, fingerprint)
        store.revoke_certificate(organ_id, fingerprint)
        emit(
            as_json,
            {"system_id": organ_id, "fingerprint": fingerprint, "revoked": True},
            [f"certificate {fingerprint} of {organ_id} revoked"],
        )


@agency_app.command("rotate-password")
def agency_rotate_password(
    system_id: str = typer.Argument(..., help="The registered system, e.g. 000.00.00.G22."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="Take the new password from this file (one line, 16+ printable characters) "
        "instead of generating a random one.",
    ),
    keep_connections: bool = typer.Option(
        False,
        "--keep-connections",
        help="Leave the system's open broker connections open: they keep working on the old "
        "password until they reconnect.",
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Give a system's broker account a new password, and close its open connections.

    The system must be registered and have its broker user. The new password
    (random, unless --password-file) is printed once, with the fields that
    `axis agency register --json` prints: `axis profile create` takes the --json output.

    RabbitMQ keeps connections opened with the old password: they are closed
    (clients must reconnect with the new password) unless --keep-connections.

    Example: axis agency rotate-password 000.00.00.G22 --json > g22.reg.json
    """
    from axis.registration import rotate_password

    with reporting(as_json):
        password = _password_from(password_file) if password_file is not None else None
        result = rotate_password(
            load_settings(home), system_id, password, close_connections=not keep_connections
        )
        emit(as_json, result, lambda: _rotated_lines(result))


def _password_from(path: Path) -> str:
    """The password in ``path``: its text without the final line break."""
    try:
        text = read_file(path, "password file").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSettings(f"password file {str(path)!r} is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")


def _rotated_lines(result: dict[str, Any]) -> list[str]:
    system_id = result["system_id"]
    lines = [
        f"rotated the broker password of system {system_id} ({result['name']})",
        f"  amqp user     {result['amqp_user']}",
        f"  amqp password {result['amqp_password']}   (shown once; keep it safe)",
    ]
    if result["connections_error"]:
        lines.append(
            f"  could not close its open connections: {result['connections_error']}; they keep "
            "working on the old password until they reconnect: close them in the management UI"
        )
    elif result["connections_kept"]:
        lines.append(
            f"  kept {result['connections_kept']} open connection(s) (--keep-connections): they "
            "keep working on the old password until they reconnect"
        )
    else:
        lines.append(
            f"  closed {result['connections_closed']} open connection(s): the agency's clients "
            "must reconnect with the new password"
        )
    return [
        *lines,
        "next: give the agency the new password; it replaces the `password` line of its "
        "profile, or re-runs `axis profile create` with the --json output of this command",
    ]


def _set_active(organ_id: str, home: Path | None, as_json: bool, active: bool) -> None:
    with reporting(as_json), hub_store(home) as store:
        _require_system(store, organ_id)
        store.set_system_active(organ_id, active)
        emit(
            as_json,
            {"system_id": organ_id, "active": active},
            [f"system {organ_id} {'resumed' if active else 'suspended'}"],
        )


def _require_system(store: Any, organ_id: str) -> Any:
    system = store.get_system(organ_id)
    if system is None:
        raise UnknownAgency(f"no system {organ_id!r} is registered")
    return system


def _system_json(store: Any, organ_id: str, snapshot: Any) -> dict[str, Any]:
    system = _require_system(store, organ_id)
    now = utc_now()
    served = sorted(o for o, s in snapshot.organ_system.items() if s == organ_id)
    return {
        "system_id": system.system_id,
        "name": system.name,
        "active": system.active,
        "inbox": f"axis.inbox.{system.system_id}",
        "serves": served[:50],
        "serves_count": len(served),
        "certificates": [
            _certificate_json(c, now) for c in store.list_certificates(organ_id)
        ],
    }


def _certificate_json(cert: Any, now: datetime) -> dict[str, Any]:
    """A certificate, flagged when unrevoked and expired or expiring within 30 days."""
    return {
        "fingerprint": cert.fingerprint,
        "subject": cert.subject,
        "not_after": cert.not_after.isoformat(),
        "revoked": cert.revoked,
        "expired": cert.not_after <= now,
        "expiring_soon": not cert.revoked and expires_soon(cert.not_after, now),
    }


def _live_certs(info: dict[str, Any]) -> int:
    return sum(not c["revoked"] for c in info["certificates"])


def _list_lines(info: dict[str, Any]) -> list[str]:
    """A system's line in `axis agency list`, and one per certificate to renew."""
    lines = [f"{info['system_id']:20} {'active' if info['active'] else 'SUSPENDED':9} "
             f"{info['serves_count']:3} organ(s)  {_live_certs(info)} cert(s)  {info['name']}"]
    for c in info["certificates"]:
        if c["expiring_soon"]:
            state = "EXPIRED" if c["expired"] else "expires"
            lines.append(f"{'':20} certificate {c['fingerprint'][:16]} {state} "
                         f"{c['not_after'][:10]}")  # fmt: skip
    return lines


def _show_lines(info: dict[str, Any]) -> list[str]:
    more = info["serves_count"] - len(info["serves"])
    lines = [
        f"system   {info['system_id']}  ({info['name']})",
        f"state    {'active' if info['active'] else 'SUSPENDED'}",
        f"inbox    {info['inbox']}",
        f"serves   {', '.join(info['serves']) or '-'}" + (f" … and {more} more" if more else ""),
        "certificates:",
    ]
    for c in info["certificates"]:
        state = "REVOKED" if c["revoked"] else f"valid until {c['not_after'][:10]}"
        if c["expiring_soon"]:
            state = f"EXPIRED {c['not_after'][:10]}" if c["expired"] else f"{state} (soon)"
        lines.append(f"  {c['fingerprint']}  {state}  {c['subject']}")
    return lines


def _full_fingerprint(store: Any, organ_id: str, given: str) -> str:
    """The one certificate fingerprint of ``organ_id`` that ``given`` names (colons allowed)."""
    wanted = given.replace(":", "").strip().lower()
    known = [str(c.fingerprint) for c in store.list_certificates(organ_id)]
    if wanted in known:
        return wanted
    matches = [f for f in known if len(wanted) >= 8 and f.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    reason = "matches several" if matches else "matches none"
    raise UnknownAgency(
        f"fingerprint {given!r} {reason} of the certificates of {organ_id} "
        f"(`axis agency show {organ_id}` lists them)"
    )


__all__ = ["agency_app", "directory_app", "init", "serve"]
