"""Agency (organ) identifiers: the QCVN 102:2016 form and the QĐ 20/2020 form.

QCVN 102:2016 codes look like ``000.00.00.G22`` (3 digits, 2 digits, 2 digits,
a letter and 2 digits). Decision 20/2020/QĐ-TTg codes are up to 35 characters of
``A-Z``, ``0-9`` and dots; we read that as dot-separated non-empty groups (no
leading, trailing or doubled dot). Both are accepted; anything else is refused.
"""

from __future__ import annotations

import re
from datetime import date

from envelopes.errors import InvalidOrganId

MAX_LENGTH = 35
QCVN_102_FORM = re.compile(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}")
QD_20_2020_FORM = re.compile(r"[A-Z0-9]+(?:\.[A-Z0-9]+)*")


def is_organ_id(value: str) -> bool:
    """Whether ``value`` is an acceptable organ identifier (either form, exactly)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LENGTH:
        return False
    return bool(QCVN_102_FORM.fullmatch(value) or QD_20_2020_FORM.fullmatch(value))


def validate_organ_id(value: str) -> str:
    """Return ``value`` unchanged, or raise :class:`InvalidOrganId` saying why not."""
    if is_organ_id(value):
        return value
    shown = repr(value)[:60]
    raise InvalidOrganId(
        f"{shown} is not an organ identifier: expected the QCVN 102:2016 form "
        f"'000.00.00.G22' or up to {MAX_LENGTH} characters of A-Z, 0-9 and dots "
        "(QĐ 20/2020)",
        organ_id=value if isinstance(value, str) else None,
    )


def new_document_id(sender_organ_id: str, date: date, number: int | str, notation: str) -> str:
    """``{sender OrganId},{yyyy/MM/dd},{number}/{notation}`` (``InvalidOrganId`` if bad).

    ``notation`` may be empty: the id then ends with the number alone.
    """
    organ = validate_organ_id(sender_organ_id)
    suffix = f"{number}/{notation}" if notation else f"{number}"
    return f"{organ},{date_text(date)},{suffix}"


def date_text(value: date) -> str:
    """``yyyy/MM/dd``, the wire's date format."""
    return f"{value.year:04d}/{value.month:02d}/{value.day:02d}"
