"""The error codes are a wire contract: pinned here, documented in docs/errors.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import axis.errors
import axis.evidence.errors
import envelopes.errors
import routing.errors
import signing.errors
from axis.errors import all_error_classes, error_codes, error_for_code
from envelopes.errors import AxisError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"

# Every code, exactly. Renaming or removing one fails this test; a new code must be
# appended here (and to docs/errors.md) on purpose.
PINNED_CODES = frozenset(
    {
        "axis.error",
        "envelope.error",
        "envelope.malformed_xml",
        "envelope.forbidden_construct",
        "envelope.too_large",
        "envelope.too_deep",
        "envelope.schema_violation",
        "envelope.invalid_attachment",
        "attachment.error",
        "attachment.too_large",
        "attachment.digest_mismatch",
        "attachment.incomplete",
        "attachment.quota_exceeded",
        "attachment.invalid_chunk",
        "attachment.not_found",
        "attachment.unavailable",
        "envelope.invalid_metadata",
        "signature.error",
        "signature.missing",
        "signature.invalid",
        "signature.multiple_signatures",
        "signature.unexpected_content",
        "signature.reference_not_whole_document",
        "signature.algorithm_refused",
        "signature.untrusted_certificate",
        "signature.certificate_mismatch",
        "signature.expired_certificate",
        "signature.certificate_not_yet_valid",
        "signature.certificate_not_registered",
        "signature.revoked_certificate",
        "signature.revocation_stale",
        "signature.revocation_unavailable",
        "signature.revocation_invalid",
        "signature.invalid_key_material",
        "signature.sender_mismatch",
        "sender.error",
        "sender.missing_user_id",
        "sender.unknown_system",
        "sender.system_suspended",
        "sender.organ_not_served",
        "recipient.error",
        "recipient.unknown",
        "recipient.suspended",
        "submission.error",
        "submission.too_large",
        "submission.duplicate_conflict",
        "submission.invalid_message_id",
        "submission.unknown_kind",
        "submission.dead_letter_not_found",
        "submission.dead_letter_not_replayable",
        "status.error",
        "status.unknown_document",
        "status.not_a_party",
        "status.code_refused",
        "status.side_unknown",
        "submission.document_id_reused",
        "submission.rate_limited",
        "hub.unavailable",
        "store.unavailable",
        "receipt.not_ours",
        "receipt.error",
        "receipt.malformed",
        "receipt.package_mismatch",
        "registry.error",
        "registry.unknown_agency",
        "registry.agency_exists",
        "registry.invalid_organ_id",
        "registry.import_failed",
        "registry.organ_already_served",
        "registry.certificate_in_use",
        "registry.unknown_organ",
        "config.error",
        "config.home_missing",
        "config.profile_not_found",
        "config.invalid",
        "pki.error",
        "pki.exists",
        "transport.error",
        "transport.unreachable",
        "transport.authentication_failed",
        "transport.access_refused",
        "transport.not_confirmed",
        "transport.receipt_timeout",
        "transport.management_api",
        "transport.query_refused",
        "transport.hub_not_ready",
        "log.error",
        "log.tampered",
        "log.not_found",
        "timestamp.error",
        "timestamp.unavailable",
        "timestamp.invalid",
        "audit.error",
        "audit.bundle_malformed",
        "audit.head_invalid",
        "audit.receipt_invalid",
        "audit.proof_invalid",
        "audit.subject_mismatch",
        "audit.registration_unproven",
        "audit.inconsistent",
        "audit.revocation_invalid",
        "audit.signer_revoked",
    }
)

CODE_SHAPE = re.compile(r"^[a-z]+\.[a-z]+(_[a-z]+)*$")
ORIGINS = frozenset(
    {
        "axis", "envelope", "signature", "sender", "recipient", "submission", "status",
        "receipt", "registry", "config", "pki", "transport", "hub", "log", "timestamp",
        "audit", "store", "attachment",
    }
)  # fmt: skip


def test_no_code_was_renamed_or_removed() -> None:
    missing = PINNED_CODES - set(error_codes())
    assert not missing, f"error codes renamed or removed (they are a wire contract): {missing}"


def test_new_codes_are_added_to_the_pin() -> None:
    added = set(error_codes()) - PINNED_CODES
    assert not added, f"new error codes: add them to PINNED_CODES and docs/errors.md: {added}"


def test_codes_are_unique_per_class() -> None:
    codes = [cls.code for cls in all_error_classes()]
    duplicated = sorted({c for c in codes if codes.count(c) > 1})
    assert duplicated == [], duplicated


ERROR_MODULES = (envelopes.errors, signing.errors, routing.errors, axis.errors,
                 axis.evidence.errors)


def test_every_error_class_of_the_error_modules_is_in_the_tree() -> None:
    declared = {
        obj
        for module in ERROR_MODULES
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, AxisError)
    }
    assert declared == set(all_error_classes())


def test_each_error_is_defined_on_the_floor_that_raises_it() -> None:
    # The base on the ground floor; a floor's module defines, never re-exports, its errors.
    assert AxisError.__module__ == "envelopes.errors"
    for module in ERROR_MODULES:
        own = [obj for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, AxisError)
               and obj.__module__ == module.__name__]  # fmt: skip
        assert own, module.__name__
    assert {cls.__module__ for cls in all_error_classes()} == {m.__name__ for m in ERROR_MODULES}


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_code_is_origin_dot_reason_in_lower_case(cls: type[AxisError]) -> None:
    assert CODE_SHAPE.match(cls.code), cls.code
    origin = cls.code.split(".", 1)[0]
    assert origin in ORIGINS, cls.code
    assert cls("x").origin == origin


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_subclass_shares_the_origin_of_its_family(cls: type[AxisError]) -> None:
    parent = cls.__mro__[1]
    if parent is AxisError or cls is AxisError:
        return
    assert issubclass(parent, AxisError)
    assert cls.code.split(".")[0] == parent.code.split(".")[0], (cls.code, parent.code)


@pytest.mark.parametrize("code", sorted(PINNED_CODES))
def test_error_for_code_round_trips(code: str) -> None:
    cls = error_for_code(code)
    assert cls.code == code
    assert cls(f"reason for {code}").code == code


def test_unknown_code_maps_to_the_base() -> None:
    assert error_for_code("no.such_code") is AxisError
    assert error_for_code("") is AxisError


@pytest.mark.parametrize("code", sorted(PINNED_CODES))
def test_every_code_is_documented(code: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert f"`{code}`" in text, f"{code} is missing from docs/errors.md"


def test_documented_codes_all_exist() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", text, flags=re.MULTILINE)
    assert sorted(rows) == sorted(PINNED_CODES)


def test_to_dict_shape_without_path() -> None:
    error = routing.errors.SubmissionTooLarge("too big", size=20, limit=10)
    assert error.to_dict() == {
        "code": "submission.too_large",
        "reason": "too big",
        "size": 20,
        "limit": 10,
    }


def test_to_dict_keeps_path_and_scalars_but_drops_structures() -> None:
    error = axis.errors.DirectoryImportError(
        "2 bad lines", path="dir.csv", problems=[(2, "bad id")], count=2, flag=True, none=None
    )
    assert error.to_dict() == {
        "code": "registry.import_failed",
        "reason": "2 bad lines",
        "path": "dir.csv",
        "count": 2,
        "flag": True,
        "none": None,
    }
    assert error.detail["problems"] == [(2, "bad id")]


def test_str_names_code_reason_and_path() -> None:
    assert str(envelopes.errors.SchemaViolation("bad", path="/edXML/x")) == (
        "envelope.schema_violation: bad at /edXML/x"
    )
    assert str(routing.errors.MissingUserId("none")) == "sender.missing_user_id: none"


@given(
    reason=st.text(max_size=50),
    detail=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: k not in {"code", "reason", "path"}),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
        max_size=4,
    ),
    cls=st.sampled_from(all_error_classes()),
)
def test_to_dict_round_trips_any_scalar_detail(
    reason: str, detail: dict[str, Any], cls: type[AxisError]
) -> None:
    data = cls(reason, **detail).to_dict()
    assert data["code"] == cls.code
    assert data["reason"] == reason
    assert "path" not in data
    assert {k: v for k, v in data.items() if k not in {"code", "reason"}} == detail
    assert error_for_code(data["code"]) is cls
