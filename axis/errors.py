"""The service's errors (receipts, registry, configuration, PKI files, broker access)
and the catalogue of every Axis error code.

The tree's base and the lower floors' errors are defined where they are raised
(:mod:`envelopes.errors`, :mod:`signing.errors`, :mod:`routing.errors`); this
module imports them so that :func:`all_error_classes` sees the whole tree.
"""

from __future__ import annotations

import axis.evidence.errors
import envelopes.errors
import routing.errors
import signing.errors
from envelopes.errors import AxisError
from routing.errors import SubmissionError, TransportError

# The lower floors' error modules, loaded here so the catalogue below is complete.
ERROR_MODULES = (envelopes.errors, signing.errors, routing.errors, axis.evidence.errors)


# -- receipts ------------------------------------------------------------------------------


class ReceiptError(AxisError):
    code = "receipt.error"


class ReceiptMalformed(ReceiptError):
    code = "receipt.malformed"


class ReceiptPackageMismatch(ReceiptError):
    """The package's SHA-256 differs from the one the receipt names."""

    code = "receipt.package_mismatch"


class ReceiptNotOurs(ReceiptError):
    """A validly signed receipt that is not about this system's own consignments: it names
    another sender system, or a consignment this system did not send."""

    code = "receipt.not_ours"


# -- signature: what the agency SDK checks beyond the CA ----------------------------------


class SenderMismatch(signing.errors.SignatureError):
    """A delivered package, validly signed under the CA, whose signer or sender is not the
    one the hub routed it from: the signing certificate names no organ (subject UID) or
    another organ than the delivery's ``axis-sender-system``, or the verified
    ``From/OrganId`` differs from its ``axis-sender-organ``."""

    code = "signature.sender_mismatch"


# -- statuses: ``axis status`` tells this system's side of a document ---------------------


class StatusSideUnknown(routing.errors.StatusError):
    """``axis status`` finds no record that this system received or sent the document
    (an item ``axis inbox fetch`` stored, a package ``axis send`` recorded)."""

    code = "status.side_unknown"


# -- registry, store, configuration, PKI files ---------------------------------------------


class RegistryError(AxisError):
    code = "registry.error"


class UnknownAgency(RegistryError):
    code = "registry.unknown_agency"


class AgencyExists(RegistryError):
    code = "registry.agency_exists"


class DirectoryImportError(RegistryError):
    code = "registry.import_failed"


class UnknownOrgan(RegistryError):
    """No organ of the directory has this code (in any form)."""

    code = "registry.unknown_organ"


class OrganAlreadyServed(RegistryError):
    """The organ is already explicitly assigned to another system."""

    code = "registry.organ_already_served"


class CertificateInUse(RegistryError):
    """The certificate is already registered to another system."""

    code = "registry.certificate_in_use"


class StoreUnavailable(AxisError):
    """The hub database cannot be reached: its server is down or unreachable, or refuses
    the connection (credentials, ``pg_hba.conf``, no such database)."""

    code = "store.unavailable"


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


# -- dead letters: ``axis dead replay`` ----------------------------------------------------


class DeadLetterNotFound(SubmissionError):
    """A consignment id given to ``axis dead replay`` is not in ``axis.dead``."""

    code = "submission.dead_letter_not_found"


class DeadLetterNotReplayable(SubmissionError):
    """A dead letter given to ``axis dead replay`` cannot go back to the hub (its routing
    key is not ``edoc``/``status``, or it names no consignment id or submitting system)."""

    code = "submission.dead_letter_not_replayable"


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
