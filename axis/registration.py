"""Registering an agency system: broker account, inbox, certificate, served organs.

The broker side (management HTTP API) is provisioned first and rolled back if
the store refuses, so a failed registration leaves neither half behind. A
registered system's broker password can be rotated later (:func:`rotate_password`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from axis.errors import (
    AgencyExists,
    BrokerUnreachable,
    InvalidSettings,
    ManagementApiError,
    UnknownAgency,
)
from axis.provision import Management, generate_password
from axis.registry import check_organ_id
from axis.settings import Settings
from axis.store import Store
from routing.contract import inbox_queue_name
from signing.errors import InvalidKeyMaterial
from signing.keys import load_certificate, organ_id_of


def check_certificate_organ(organ_id: str, cert_pem: bytes) -> None:
    """Refuse a certificate that does not name ``organ_id`` as its subject's UID: recipients
    accept a package only from a certificate naming its sending system (docs/signing.md)."""
    carried = organ_id_of(load_certificate(cert_pem))
    if carried is None:
        raise InvalidKeyMaterial(
            f"the certificate names no organ (no subject UID): recipients would refuse every "
            f"package it signs; issue one for {organ_id} (axis pki issue DIR --organ-id "
            f"{organ_id} …)")  # fmt: skip
    if carried != organ_id:
        raise InvalidKeyMaterial(
            f"the certificate names organ {carried!r}, not {organ_id!r}: issue one for "
            f"{organ_id} (axis pki issue DIR --organ-id {organ_id} …)"
        )


def register_system(
    settings: Settings, organ_id: str, name: str, cert_pem: bytes, serves: Sequence[str] = ()
) -> dict[str, Any]:
    """Create the system; returns ``{"system_id", "amqp_user", "amqp_password", "inbox", ...}``."""
    organ_id = check_organ_id(organ_id)
    for served in serves:
        check_organ_id(served)
    check_certificate_organ(organ_id, cert_pem)
    store = Store(settings.db_url)
    try:
        store.create_all()
        if store.get_system(organ_id) is not None:
            raise AgencyExists(f"system {organ_id} is already registered")
        password = generate_password()
        management = Management(settings.management_url)
        if management.user_exists(organ_id):
            # Broker users span every vhost: never reset an account another hub relies on.
            raise AgencyExists(
                f"the broker already has a user {organ_id!r}; delete it first if it is stale"
            )
        management.declare_topology(settings.vhost, settings.queue_type)
        management.create_system_account(settings.vhost, organ_id, password)
        management.declare_inbox(settings.vhost, organ_id, settings.queue_type)
        try:
            store.add_system(organ_id, name, serves)
            store.add_certificate(organ_id, cert_pem)
        except Exception:
            management.delete_user(organ_id)
            raise
    finally:
        store.dispose()
    return handover(settings, organ_id, name, password)


def handover(settings: Settings, system_id: str, name: str, password: str) -> dict[str, Any]:
    """What the operator gives the agency: the fields `axis profile create` reads."""
    return {
        "system_id": system_id,
        "name": name,
        "amqp_user": system_id,
        "amqp_password": password,
        "inbox": inbox_queue_name(system_id),
        "vhost": settings.vhost,
    }


ROTATED_REASON = "Axis: the operator rotated this system's password; reconnect with the new one"
MIN_PASSWORD_CHARS = 16
MAX_PASSWORD_CHARS = 1024


def rotate_password(
    settings: Settings,
    system_id: str,
    password: str | None = None,
    *,
    close_connections: bool = True,
) -> dict[str, Any]:
    """Give a registered system's broker account a new password (generated unless given).

    RabbitMQ lets connections opened with the old password live on, so by default
    the account's open connections (every virtual host) are closed once the password
    is changed. Returns :func:`handover`'s fields (for `axis profile create`) and
    ``connections_closed``, ``connections_kept`` and ``connections_error`` (why closing
    failed, else None: the new password is returned even then).
    """
    name = registered_name(settings, system_id)
    management = Management(settings.management_url)
    if not management.user_exists(system_id):
        raise UnknownAgency(
            f"system {system_id} is registered but the broker has no user {system_id!r} "
            "(deleted by hand?): there is no account whose password could be rotated",
            system_id=system_id,
        )
    password = check_password(password) if password is not None else generate_password()
    management.set_user_password(system_id, password)
    closed, kept, error = _close_connections(management, system_id, close_connections)
    return {
        **handover(settings, system_id, name, password),
        "connections_closed": closed,
        "connections_kept": kept,
        "connections_error": error,
    }


def registered_name(settings: Settings, system_id: str) -> str:
    """The name of a system registered in the hub's store (``registry.unknown_agency`` if none)."""
    store = Store(settings.db_url)
    try:
        store.create_all()
        system = store.get_system(system_id)
    finally:
        store.dispose()
    if system is None:
        raise UnknownAgency(f"no system {system_id!r} is registered")
    return str(system.name)


def check_password(password: str) -> str:
    """A password an operator chose: one line of 16-1024 printable characters."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise InvalidSettings(
            f"the password must have {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters, "
            f"not {len(password)}"
        )
    if not password.isprintable() or password != password.strip():
        raise InvalidSettings(
            "the password must be one line of printable characters, without leading or "
            "trailing spaces"
        )
    return password


def _close_connections(
    management: Management, user: str, close: bool
) -> tuple[int, int, str | None]:
    """Close (or, with ``close`` false, count) the user's connections: (closed, kept, error)."""
    closed = 0
    try:
        names = management.user_connections(user)
        if not close:
            return 0, len(names), None
        for name in names:
            if management.close_connection(name, ROTATED_REASON):
                closed += 1
    except (ManagementApiError, BrokerUnreachable) as error:
        return closed, 0, error.reason
    return closed, 0, None
