"""The in-memory registry snapshot routing reads: organ → serving system, certificates.

Pure: no I/O, no clock. The store builds a :class:`RegistrySnapshot` once (and again
after a registry change); routing then answers every message from dictionaries,
never with a database query.

Serving rule: a system serves its own organ, the organs explicitly assigned to it
(``--serves``), and every descendant of those not itself assigned to another
system. The nearest assigned ancestor wins.

Aliases: an organ has one primary id and may have other codes (its QCVN 102:2016 or
QĐ 20/2020 form, old codes it replaced). Every lookup first maps a code to the primary
id (one dictionary read), so either form of an organ is served by the same system.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from envelopes.ids import QCVN_102_FORM, validate_organ_id

QCVN_FORM, D20_FORM, OLD_FORM = "qcvn102", "d20", "old"
"""The forms of an organ's alias: its QCVN 102 code, its QĐ 20/2020 code, a replaced code."""

_HEX = re.compile(r"[0-9a-f]{64}")


def check_organ_id(value: str) -> str:
    """Return ``value`` when it is an agency identifier, else raise ``InvalidOrganId``.

    Delegates to :func:`envelopes.ids.validate_organ_id` (both national forms).
    """
    return validate_organ_id(value)


def normalize_fingerprint(fingerprint: str) -> str:
    """Lower-case hex without separators: ``AB:CD:...`` and ``abcd...`` name the same key."""
    return fingerprint.replace(":", "").replace(" ", "").lower()


def is_fingerprint(value: str) -> bool:
    """True for a normalized SHA-256 fingerprint (64 lower-case hex digits)."""
    return bool(_HEX.fullmatch(value))


@dataclass(frozen=True, slots=True)
class OrganRow:
    """One organ of the national directory (``parent_id`` None for a root).

    ``organ_id`` is the organ's primary id (either form); ``qcvn_code``, ``d20_code``
    and ``replaces`` are its other codes, which resolve to it. ``parent_id`` may be any
    code of the parent.
    """

    organ_id: str
    name: str
    parent_id: str | None = None
    qcvn_code: str | None = None
    d20_code: str | None = None
    replaces: tuple[str, ...] = ()

    def forms(self) -> dict[str, str]:
        """The organ's current code per form: the primary id counts for its own form."""
        own = QCVN_FORM if is_qcvn_code(self.organ_id) else D20_FORM
        found = {QCVN_FORM: self.qcvn_code, D20_FORM: self.d20_code, own: self.organ_id}
        return {form: code for form, code in found.items() if code}

    def aliases(self) -> dict[str, str]:
        """Every code of the organ but its primary id, with its form (a code listed twice:
        its first form)."""
        found: dict[str, str] = {}
        listed = [(self.qcvn_code, QCVN_FORM), (self.d20_code, D20_FORM),
                  *((code, OLD_FORM) for code in self.replaces)]  # fmt: skip
        for code, form in listed:
            if code and code != self.organ_id:
                found.setdefault(code, form)
        return found


def is_qcvn_code(code: str) -> bool:
    """True for a code in the QCVN 102:2016 form (``000.00.00.G22``)."""
    return QCVN_102_FORM.fullmatch(code) is not None


@dataclass(frozen=True, slots=True)
class CertInfo:
    """A signing certificate registered to a system."""

    fingerprint: str
    pem: bytes
    not_before: datetime
    not_after: datetime
    revoked: bool


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """A connected document-management system (its id is its operator organ's id)."""

    system_id: str
    name: str
    active: bool
    certificates: Mapping[str, CertInfo]


@dataclass(frozen=True)
class RegistrySnapshot:
    """Immutable view of systems, certificates and the organ → system resolution.

    ``organ_system`` and ``organ_names`` are keyed by primary ids; ``organ_aliases``
    maps every other code of an organ to its primary id.
    """

    systems: Mapping[str, SystemInfo]
    organ_system: Mapping[str, str]
    organ_names: Mapping[str, str]
    organ_aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def empty(cls) -> RegistrySnapshot:
        """A snapshot with nothing registered."""
        return cls(MappingProxyType({}), MappingProxyType({}), MappingProxyType({}))

    def system(self, system_id: str) -> SystemInfo | None:
        """The system registered under ``system_id``, if any."""
        return self.systems.get(system_id)

    def canonical_organ(self, code: str) -> str:
        """The primary id of the organ ``code`` names: ``code`` itself unless an alias."""
        return self.organ_aliases.get(code, code)

    def serving_system(self, organ_id: str) -> str | None:
        """The id of the system that serves ``organ_id``, in any of its forms (None:
        unknown or unserved)."""
        return self.organ_system.get(self.organ_aliases.get(organ_id, organ_id))

    def serves(self, system_id: str, organ_id: str) -> bool:
        """True when ``system_id`` is the system serving ``organ_id`` (any of its forms)."""
        return self.organ_system.get(self.organ_aliases.get(organ_id, organ_id)) == system_id

    def certificate(self, system_id: str, fingerprint: str) -> CertInfo | None:
        """The certificate ``fingerprint`` (any hex spelling) registered to ``system_id``."""
        system = self.systems.get(system_id)
        if system is None:
            return None
        return system.certificates.get(normalize_fingerprint(fingerprint))

    def organ_known(self, organ_id: str) -> bool:
        """True when ``organ_id`` (any of its forms) is in the directory (served or not)."""
        return self.organ_aliases.get(organ_id, organ_id) in self.organ_names


def build_snapshot(
    systems: Iterable[SystemInfo],
    organs: Iterable[OrganRow],
    assigned: Mapping[str, str],
    aliases: Mapping[str, str] | None = None,
) -> RegistrySnapshot:
    """Assemble a snapshot; ``assigned`` maps organ id → system explicitly serving it,
    ``aliases`` maps other codes → primary organ id (parents, assignments and system ids
    may use either).

    Every system implicitly serves its own organ. Runs in O(organs).
    """
    alias_map = dict(aliases or {})
    canonical = alias_map.get
    system_map = {s.system_id: s for s in systems}
    parents: dict[str, str | None] = {}
    names: dict[str, str] = {}
    for row in organs:
        parent = row.parent_id
        parents[row.organ_id] = canonical(parent, parent) if parent is not None else None
        names[row.organ_id] = row.name
    explicit = {canonical(organ, organ): system for organ, system in assigned.items()
                if system in system_map}  # fmt: skip
    for system_id in system_map:
        explicit.setdefault(canonical(system_id, system_id), system_id)
    resolved = resolve_serving(parents, explicit)
    return RegistrySnapshot(
        systems=MappingProxyType(system_map),
        organ_system=MappingProxyType(resolved),
        organ_names=MappingProxyType(names),
        organ_aliases=MappingProxyType(alias_map),
    )


def resolve_serving(
    parents: Mapping[str, str | None], explicit: Mapping[str, str]
) -> dict[str, str]:
    """Map every organ to its nearest explicitly assigned ancestor-or-self's system.

    Each organ is visited once: a walk up the parent chain stops at an organ already
    resolved, and assigns its answer to the whole path. Organs on a parent cycle with
    no assignment (and unknown parents) resolve to nothing.
    """
    done: dict[str, str | None] = {}
    for start in parents:
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        answer: str | None = None
        while node is not None:
            if node in explicit:
                answer = explicit[node]
                break
            if node in done:
                answer = done[node]
                break
            if node in on_path or node not in parents:
                break
            path.append(node)
            on_path.add(node)
            node = parents[node]
        for organ in path:
            done[organ] = answer
    result = {organ: system for organ, system in done.items() if system is not None}
    for organ, system in explicit.items():
        result[organ] = system
    return result
