"""The conformance rules and how each is judged: plain functions over what the kit observed.

Every rule names the page of the wire contract it comes from. A rule passes, fails
(with the evidence: the hub's error code, the property seen, the status sent), or is
skipped (its exchange was not driven, or an earlier failure leaves nothing to judge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from envelopes.errors import AxisError
from envelopes.model import StatusPackage
from envelopes.parser import parse_package
from envelopes.status_codes import StatusCode
from routing.decide import valid_message_id
from routing.values import SubmissionRecord

Result = Literal["pass", "fail", "skip"]
PERSISTENT = 2
XML = "application/xml"
SEEN_GRACE = 5.0  # seconds a submission may take to reach the broker after its hook ended


@dataclass(frozen=True, slots=True)
class Rule:
    """One checked requirement of the wire contract."""

    id: str
    title: str
    doc: str
    hook: Literal["send", "receive"]


RULES: tuple[Rule, ...] = (
    Rule("send.hook", "The send hook submits a document and exits 0",
         "conformance.md#the-profile", "send"),
    Rule("submit.published", "A document package arrives on exchange axis.submit, key edoc",
         "protocol.md#submitting-a-package", "send"),
    Rule("submit.user_id", "user_id is the system id (the broker account)",
         "protocol.md#submitting-a-package", "send"),
    Rule("submit.message_id", "message_id is the consignment id: 1-128 printable ASCII, no spaces",
         "protocol.md#submitting-a-package", "send"),
    Rule("submit.persistent", "delivery_mode is 2 (persistent)",
         "protocol.md#submitting-a-package", "send"),
    Rule("submit.content_type", "content_type is application/xml",
         "protocol.md#submitting-a-package", "send"),
    Rule("submit.schema", "The package is safe, well-formed edXML valid against the QCVN 102 XSD",
         "edxml.md", "send"),
    Rule("submit.sender", "From/OrganId is an organ the submitting system serves",
         "protocol.md#what-the-hub-checks-in-order", "send"),
    Rule("submit.signature", "One enveloped XMLDSig over the whole package, documented "
         "algorithms, signed by the registered certificate", "signing.md", "send"),
    Rule("submit.recipients", "Every To/OrganId is served by a registered system",
         "protocol.md#what-the-hub-checks-in-order", "send"),
    Rule("submit.accepted", "The hub accepts the package (receipt event accepted)",
         "protocol.md#receipts", "send"),
    Rule("receive.hook", "The receive hook takes the inbox and exits 0",
         "conformance.md#the-profile", "receive"),
    Rule("deliver.arrived", "A delivered document is answered with status 01, accepted by the hub",
         "protocol.md#status-packages", "receive"),
    Rule("deliver.once", "A copy re-published with the same message_id is not answered again",
         "protocol.md#deliveries", "receive"),
    Rule("deliver.tampered", "A document whose signed content was altered is not taken as arrived",
         "signing.md#for-implementers-in-any-language", "receive"),
    Rule("deliver.wrong_signer", "A document signed by another organ's certificate than its "
         "sender's is not taken as arrived", "protocol.md#deliveries", "receive"),
    Rule("inbox.settled", "Nothing is left waiting or unacknowledged in the system's inbox",
         "protocol.md#deliveries", "receive"),
)  # fmt: skip
RULE_IDS = tuple(rule.id for rule in RULES)

# The hub's checks in its order (protocol.md), each with the error-code families it answers.
_HUB_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("submit.schema", ("envelope.", "submission.unknown_kind", "submission.too_large",
                       "submission.invalid_message_id")),
    ("submit.sender", ("sender.",)),
    ("submit.signature", ("signature.",)),
    ("submit.recipients", ("recipient.",)),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judgement of one rule."""

    rule: str
    result: Result
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Seen:
    """A message the kit saw on exchange ``axis.submit``, as the broker delivered it."""

    kind: str
    message_id: str | None
    user_id: str | None
    delivery_mode: int | None
    content_type: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class HookRun:
    """How a profile hook ended: ``exit_code`` None when it was killed at the timeout."""

    command: str
    exit_code: int | None
    seconds: float
    output_tail: str = ""

    def verdict(self, rule: str, timeout: float) -> Verdict:
        """``rule`` passes when the hook exited 0."""
        if self.exit_code == 0:
            return Verdict(rule, "pass", f"exited 0 after {self.seconds:.1f} s")
        ended = (f"killed after the {timeout:g} s timeout" if self.exit_code is None
                 else f"exited {self.exit_code}")  # fmt: skip
        return Verdict(rule, "fail", f"{ended}; output ends: {self.output_tail[-300:]!r}")


@dataclass(frozen=True, slots=True)
class Plan:
    """The documents the kit delivered to the system under test, by their DocumentId."""

    valid: str
    tampered: str
    wrong_signer: str


@dataclass(slots=True)
class Answers:
    """What the system under test sent during the receive exchange."""

    statuses: list[Seen] = field(default_factory=list)
    records: dict[str, SubmissionRecord] = field(default_factory=dict)  # by message_id
    inbox_left: int = 0


def judge_sending(
    system_id: str, hook: HookRun | None, timeout: float, seen: Seen | None,
    record: SubmissionRecord | None,
) -> list[Verdict]:  # fmt: skip
    """The send exchange: the hook, the message's properties, then the hub's own verdict."""
    ids = [rule.id for rule in RULES if rule.hook == "send"]
    if hook is None:
        return [Verdict(rule, "skip", "the profile has no send hook") for rule in ids]
    verdicts = [hook.verdict("send.hook", timeout)]
    if seen is None:
        verdicts.append(Verdict("submit.published", "fail", "no document package arrived on "
                                f"axis.submit within {SEEN_GRACE:g} s of the hook's end"))
        return verdicts + [Verdict(r, "skip", "nothing was submitted") for r in ids[2:]]
    verdicts.append(Verdict("submit.published", "pass", f"{len(seen.body)} bytes"))
    verdicts += _properties(system_id, seen)
    return verdicts + _hub_verdicts(record)


def _properties(system_id: str, seen: Seen) -> list[Verdict]:
    def check(rule: str, ok: bool, shown: object) -> Verdict:
        return Verdict(rule, "pass" if ok else "fail", f"{shown!r}")

    return [
        check("submit.user_id", seen.user_id == system_id, seen.user_id),
        check("submit.message_id", valid_message_id(seen.message_id), seen.message_id),
        check("submit.persistent", seen.delivery_mode == PERSISTENT, seen.delivery_mode),
        check("submit.content_type", seen.content_type == XML, seen.content_type),
    ]


def _hub_verdicts(record: SubmissionRecord | None) -> list[Verdict]:
    hub_rules = [rule for rule, _ in _HUB_RULES] + ["submit.accepted"]
    if record is None:
        why = "the hub kept no receipt for it (no user_id, or none within the timeout)"
        return [Verdict(rule, "skip", why) for rule in hub_rules]
    if record.outcome == "accepted":
        return [Verdict(rule, "pass", f"consignment {record.message_id}") for rule in hub_rules]
    code = record.error_code or ""
    failed = next((rule for rule, prefixes in _HUB_RULES if code.startswith(prefixes)), None)
    verdicts: list[Verdict] = []
    reached = True
    for rule, _ in _HUB_RULES:
        if rule == failed:
            verdicts.append(Verdict(rule, "fail", f"{code}: {record.reason or ''}"))
            reached = False
        elif reached and failed is not None:
            verdicts.append(Verdict(rule, "pass", "checked before the failing step"))
        else:
            verdicts.append(Verdict(rule, "skip", f"not reached: the hub answered {code}"))
    verdicts.append(Verdict("submit.accepted", "fail", f"rejected: {code}: {record.reason or ''}"))
    return verdicts


def judge_receiving(
    hook: HookRun | None, timeout: float, plan: Plan, answers: Answers
) -> list[Verdict]:
    """The receive exchange: one valid delivery, its duplicate, and two forgeries."""
    ids = [rule.id for rule in RULES if rule.hook == "receive"]
    if hook is None:
        return [Verdict(rule, "skip", "the profile has no receive hook") for rule in ids]
    statuses = [(seen, status) for seen in answers.statuses
                if (status := _status_of(seen)) is not None]  # fmt: skip
    arrived = _arrived(plan.valid, statuses, answers.records)
    verdicts = [hook.verdict("receive.hook", timeout), arrived]
    if arrived.result != "pass":
        why = "not judged: the system answered no delivered document, so its silence proves nothing"
        verdicts += [Verdict(r, "skip", why) for r in ("deliver.once", "deliver.tampered",
                                                       "deliver.wrong_signer")]  # fmt: skip
    else:
        verdicts.append(_once(plan.valid, statuses))
        verdicts.append(_not_taken("deliver.tampered", plan.tampered, statuses))
        verdicts.append(_not_taken("deliver.wrong_signer", plan.wrong_signer, statuses))
    left = answers.inbox_left
    verdicts.append(Verdict("inbox.settled", "pass" if left == 0 else "fail",
                            f"{left} message(s) left in the inbox"))  # fmt: skip
    return verdicts


Answered = Sequence[tuple[Seen, StatusPackage]]


def _status_of(seen: Seen) -> StatusPackage | None:
    try:
        package = parse_package(seen.body)
    except AxisError:
        return None
    return package if isinstance(package, StatusPackage) else None


def _about(document_id: str, statuses: Answered) -> list[tuple[Seen, StatusPackage]]:
    return [(s, p) for s, p in statuses if p.response_for.document_id == document_id]


def _arrived(
    document_id: str, statuses: Answered, records: dict[str, SubmissionRecord]
) -> Verdict:
    sent = [(s, p) for s, p in _about(document_id, statuses) if p.status_code == StatusCode.ARRIVED]
    if not sent:
        codes = sorted({p.status_code.value for _, p in _about(document_id, statuses)})
        return Verdict("deliver.arrived", "fail", f"no status 01 about {document_id} "
                       f"(statuses sent about it: {', '.join(codes) or 'none'})")  # fmt: skip
    for seen, _ in sent:
        record = records.get(seen.message_id or "")
        if record is not None and record.outcome == "accepted":
            return Verdict("deliver.arrived", "pass", f"status 01 as consignment {seen.message_id}")
    record = records.get(sent[0][0].message_id or "")
    why = (f"{record.error_code}: {record.reason}" if record is not None
           else "the hub kept no receipt for it")  # fmt: skip
    return Verdict("deliver.arrived", "fail", f"status 01 sent but not accepted: {why}")


def _once(document_id: str, statuses: Answered) -> Verdict:
    by_code: dict[str, set[str]] = {}
    for seen, package in _about(document_id, statuses):
        by_code.setdefault(package.status_code.value, set()).add(seen.message_id or "")
    twice = {code: ids for code, ids in by_code.items() if len(ids) > 1}
    if twice:
        shown = "; ".join(f"status {code} as {len(ids)} consignments"
                          for code, ids in twice.items())  # fmt: skip
        return Verdict("deliver.once", "fail", f"the repeated copy was answered again: {shown}")
    return Verdict("deliver.once", "pass", "one answer per status code")


def _not_taken(rule: str, document_id: str, statuses: Answered) -> Verdict:
    codes = sorted({p.status_code.value for _, p in _about(document_id, statuses)
                    if p.status_code != StatusCode.REJECTED})  # fmt: skip
    if codes:
        return Verdict(rule, "fail", f"answered {document_id} with status {', '.join(codes)}")
    return Verdict(rule, "pass", "not answered (or refused with status 02)")
