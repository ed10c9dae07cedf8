"""The in-memory registry snapshot routing reads: organ → serving system, certificates.

Pure: no I/O, no clock. The store builds a :class:`RegistrySnapshot` once (and again
after a registry change); routing then answers every message from dictionaries,
never with a database query.

Serving rule: a system serves its own organ, the organs explicitly assigned to it
(``--serves``), and every descendant of those not itself assigned to another
system. The nearest assigned ancestor wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from envelopes.ids import validate_organ_id

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
    """One organ of the national directory (``parent_id`` None for a root)."""

    organ_id: str
    name: str
    parent_id: str | None = None


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
    """Immutable view of systems, certificates and the organ → system resolution."""

    systems: Mapping[str, SystemInfo]
    organ_system: Mapping[str, str]
    organ_names: Mapping[str, str]

    @classmethod
    def empty(cls) -> RegistrySnapshot:
        """A snapshot with nothing registered."""
        return cls(MappingProxyType({}), MappingProxyType({}), MappingProxyType({}))

    def system(self, system_id: str) -> SystemInfo | None:
        """The system registered under ``system_id``, if any."""
        return self.systems.get(system_id)

    def serving_system(self, organ_id: str) -> str | None:
        """The id of the system that serves ``organ_id`` (None: unknown or unserved)."""
        return self.organ_system.get(organ_id)

    def serves(self, system_id: str, organ_id: str) -> bool:
        """True when ``system_id`` is the system serving ``organ_id``."""
        return self.organ_system.get(organ_id) == system_id

    def certificate(self, system_id: str, fingerprint: str) -> CertInfo | None:
        """The certificate ``fingerprint`` (any hex spelling) registered to ``system_id``."""
        system = self.systems.get(system_id)
        if system is None:
            return None
        return system.certificates.get(normalize_fingerprint(fingerprint))

    def organ_known(self, organ_id: str) -> bool:
        """True when ``organ_id`` is in the directory (served or not)."""
        return organ_id in self.organ_names


def build_snapshot(
    systems: Iterable[SystemInfo],
    organs: Iterable[OrganRow],
    assigned: Mapping[str, str],
) -> RegistrySnapshot:
    """Assemble a snapshot; ``assigned`` maps organ id → system explicitly serving it.

    Every system implicitly serves its own organ. Runs in O(organs).
    """
    system_map = {s.system_id: s for s in systems}
    parents: dict[str, str | None] = {}
    names: dict[str, str] = {}
    for row in organs:
        parents[row.organ_id] = row.parent_id
        names[row.organ_id] = row.name
    explicit = {organ: system for organ, system in assigned.items() if system in system_map}
    for system_id in system_map:
        explicit.setdefault(system_id, system_id)
    resolved = resolve_serving(parents, explicit)
    return RegistrySnapshot(
        systems=MappingProxyType(system_map),
        organ_system=MappingProxyType(resolved),
        organ_names=MappingProxyType(names),
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
