"""The service's errors (receipts, registry, configuration, PKI files, broker access)
and the catalogue of every Axis error code.

The tree's base and the lower floors' errors are defined where they are raised
(:mod:`envelopes.errors`, :mod:`signing.errors`, :mod:`routing.errors`); this
module imports them so that :func:`all_error_classes` sees the whole tree.
"""

from __future__ import annotations

import envelopes.errors
import routing.errors
import signing.errors
from envelopes.errors import AxisError
from routing.errors import TransportError

# The lower floors' error modules, loaded here so the catalogue below is complete.
ERROR_MODULES = (envelopes.errors, signing.errors, routing.errors)


# -- receipts ------------------------------------------------------------------------------


class ReceiptError(AxisError):
    code = "receipt.error"


class ReceiptMalformed(ReceiptError):
    code = "receipt.malformed"


class ReceiptPackageMismatch(ReceiptError):
    """The package's SHA-256 differs from the one the receipt names."""

    code = "receipt.package_mismatch"


# -- registry, store, configuration, PKI files ---------------------------------------------


class RegistryError(AxisError):
    code = "registry.error"


class UnknownAgency(RegistryError):
    code = "registry.unknown_agency"


class AgencyExists(RegistryError):
    code = "registry.agency_exists"


class DirectoryImportError(RegistryError):
    code = "registry.import_failed"


class OrganAlreadyServed(RegistryError):
    """The organ is already explicitly assigned to another system."""

    code = "registry.organ_already_served"


class CertificateInUse(RegistryError):
    """The certificate is already registered to another system."""

    code = "registry.certificate_in_use"


class ConfigError(AxisError):
    code = "config.error"


class HubHomeMissing(ConfigError):
    code = "config.home_missing"


class ProfileNotFound(ConfigError):
    code = "config.profile_not_found"


class InvalidSettings(ConfigError):
    code = "config.invalid"


class PkiError(AxisError):
    code = "pki.error"


class PkiExists(PkiError):
    code = "pki.exists"


# -- transport: connecting and talking to the broker ---------------------------------------


class BrokerUnreachable(TransportError):
    code = "transport.unreachable"


class AuthenticationFailed(TransportError):
    code = "transport.authentication_failed"


class ReceiptTimeout(TransportError):
    code = "transport.receipt_timeout"


class ManagementApiError(TransportError):
    code = "transport.management_api"


class HubNotReady(TransportError):
    """No ``axis.submit``/``axis.query`` exchange or inbox queue in the virtual host: the
    hub has never run there, or the profile names the wrong virtual host."""

    code = "transport.hub_not_ready"


def all_error_classes() -> list[type[AxisError]]:
    """Every concrete error class, for docs and the pinning test."""
    seen: list[type[AxisError]] = []
    stack: list[type[AxisError]] = [AxisError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(reversed(cls.__subclasses__()))
    return seen


def error_codes() -> list[str]:
    """Every error code, sorted."""
    return sorted({cls.code for cls in all_error_classes()})


def error_for_code(code: str) -> type[AxisError]:
    """The class that owns ``code`` (``AxisError`` for an unknown one)."""
    for cls in all_error_classes():
        if cls.code == code:
            return cls
    return AxisError
