"""The base of every Axis error, and the errors of reading edXML packages.

Every failure a user, an agency or an auditor can see is an :class:`AxisError`
subclass. Its ``code`` (``origin.reason``, e.g. ``signature.untrusted_certificate``)
is a wire contract: it travels into negative receipts, logs, metric labels and
CLI ``--json`` output. Codes are never renamed; ``tests/test_errors.py`` pins the
list and docs/errors.md documents each.

The base lives here, on the ground floor, so that every package can raise coded
errors while imports still run downhill only; each package defines the errors it
raises (``signing.errors``, ``routing.errors``, ``axis.errors``), and
:func:`axis.errors.all_error_classes` lists the whole tree.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AxisError(Exception):
    """Base of every Axis error: a stable ``code`` plus a human ``reason``."""

    code: ClassVar[str] = "axis.error"

    def __init__(self, reason: str, *, path: str | None = None, **detail: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path
        self.detail = detail

    @property
    def origin(self) -> str:
        """The part of the system the code belongs to (``envelope``, ``signature``, …)."""
        return self.code.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data: ``{"code", "reason", "path"?, ...detail}``."""
        data: dict[str, Any] = {"code": self.code, "reason": self.reason}
        if self.path is not None:
            data["path"] = self.path
        data.update({k: v for k, v in self.detail.items() if _is_json_scalar(v)})
        return data

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.code}: {self.reason}{where}"


def _is_json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


# -- envelope: reading and checking edXML packages -----------------------------------------


class EnvelopeError(AxisError):
    """The bytes are not an acceptable edXML package."""

    code = "envelope.error"


class MalformedXml(EnvelopeError):
    code = "envelope.malformed_xml"


class ForbiddenXmlConstruct(EnvelopeError):
    """DOCTYPE, entity declaration or reference, external DTD, processing of network resources."""

    code = "envelope.forbidden_construct"


class EnvelopeTooLarge(EnvelopeError):
    code = "envelope.too_large"


class EnvelopeTooDeep(EnvelopeError):
    code = "envelope.too_deep"


class SchemaViolation(EnvelopeError):
    code = "envelope.schema_violation"


class InvalidAttachment(EnvelopeError):
    """An attachment's payload is not base64, the manifest and the attachments disagree, or a
    streamed file's reference is malformed."""

    code = "envelope.invalid_attachment"


class InvalidMetadata(EnvelopeError):
    """Metadata given to the builder (file, flags) cannot make a package."""

    code = "envelope.invalid_metadata"


# -- agency identifiers --------------------------------------------------------------------


class InvalidOrganId(AxisError):
    """Not an agency identifier of either national form (QCVN 102 or Decision 20/2020)."""

    code = "registry.invalid_organ_id"
