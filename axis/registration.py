"""Registering an agency system: broker account, inbox, certificate, served organs.

The broker side (management HTTP API) is provisioned first and rolled back if
the store refuses, so a failed registration leaves neither half behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from axis.errors import AgencyExists
from axis.provision import Management, generate_password
from axis.registry import check_organ_id
from axis.settings import Settings
from axis.store import Store
from routing.contract import inbox_queue_name
from signing.errors import InvalidKeyMaterial
from signing.keys import load_certificate, organ_id_of


def check_certificate_organ(organ_id: str, cert_pem: bytes) -> None:
    """Refuse a certificate that names (as its subject's UID) an organ other than ``organ_id``."""
    carried = organ_id_of(load_certificate(cert_pem))
    if carried is not None and carried != organ_id:
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
    return {
        "system_id": organ_id,
        "name": name,
        "amqp_user": organ_id,
        "amqp_password": password,
        "inbox": inbox_queue_name(organ_id),
        "vhost": settings.vhost,
    }
