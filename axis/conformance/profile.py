"""The vendor profile: which system the kit tests and how to make it act.

A TOML file (``axis conformance run --profile vendor.toml``)::

    system_id = "000.00.00.G22"          # the system under test: its organ id and broker user
    organ_name = "Văn phòng Chính phủ"
    certificate = "signing-cert.pem"     # the certificate it signs with (subject UID = system_id)
    key = "signing-key.pem"              # optional: given, the kit writes an Axis client profile
    hook_timeout = 60                    # optional: seconds each hook may run

    [hooks]                              # shell commands, run in the profile's folder
    send = "my-connector send --to $AXIS_CONFORMANCE_PEER_ORGAN"
    receive = "my-connector poll-once"

Paths are relative to the profile file. Either hook may be left out: its rules are
then skipped, not failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axis.client.profile import read_toml_file
from axis.errors import InvalidSettings
from axis.registration import check_certificate_organ
from axis.registry import check_organ_id

HOOKS = ("send", "receive")
KEYS = ("system_id", "organ_name", "certificate", "key", "hook_timeout", "peer_organ", "hooks")
DEFAULT_PEER_ORGAN = "000.00.00.Z98"
DEFAULT_HOOK_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class VendorProfile:
    """A parsed vendor profile; paths are absolute."""

    path: Path
    system_id: str
    organ_name: str
    certificate: Path
    key: Path | None
    hooks: dict[str, str]
    hook_timeout: float = DEFAULT_HOOK_TIMEOUT
    peer_organ: str = DEFAULT_PEER_ORGAN

    @property
    def folder(self) -> Path:
        """Where hooks run and relative paths start."""
        return self.path.resolve().parent


def load_vendor_profile(path: Path) -> VendorProfile:
    """Read and check a vendor profile; every problem is ``config.invalid`` naming the key."""
    data = read_toml_file(path, "vendor profile")
    where = f"vendor profile {str(path)!r}"
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise InvalidSettings(f"{where}: unknown key(s) {', '.join(unknown)}; "
                              f"known: {', '.join(KEYS)}")  # fmt: skip
    base = path.resolve().parent
    system_id = check_organ_id(_text(data, "system_id", where))
    certificate = base / _text(data, "certificate", where)
    key = base / data["key"] if isinstance(data.get("key"), str) and data["key"] else None
    profile = VendorProfile(
        path=path,
        system_id=system_id,
        organ_name=str(data.get("organ_name") or system_id),
        certificate=certificate,
        key=key,
        hooks=_hooks(data.get("hooks", {}), where),
        hook_timeout=_timeout(data.get("hook_timeout", DEFAULT_HOOK_TIMEOUT), where),
        peer_organ=check_organ_id(str(data.get("peer_organ", DEFAULT_PEER_ORGAN))),
    )
    if profile.peer_organ == system_id:
        raise InvalidSettings(f"{where}: peer_organ must differ from system_id")
    check_certificate_organ(system_id, read_certificate(profile))
    if key is not None and not key.is_file():
        raise InvalidSettings(f"{where}: key file {str(key)!r} does not exist")
    return profile


def read_certificate(profile: VendorProfile) -> bytes:
    """The PEM of the system's signing certificate."""
    try:
        return profile.certificate.read_bytes()
    except OSError as exc:
        raise InvalidSettings(f"cannot read the certificate {str(profile.certificate)!r}: "
                              f"{exc.strerror}") from None  # fmt: skip


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidSettings(f"{where} lacks {key} (a non-empty string)")
    return value


def _hooks(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidSettings(f"{where}: [hooks] must be a table")
    unknown = sorted(set(value) - set(HOOKS))
    if unknown:
        raise InvalidSettings(f"{where}: unknown hook(s) {', '.join(unknown)}; "
                              f"known: {', '.join(HOOKS)}")  # fmt: skip
    for name, command in value.items():
        if not isinstance(command, str) or not command.strip():
            raise InvalidSettings(f"{where}: hooks.{name} must be a non-empty command")
    if not value:
        raise InvalidSettings(f"{where}: [hooks] names no hook; give send, receive or both")
    return dict(value)


def _timeout(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 3600:
        raise InvalidSettings(f"{where}: hook_timeout must be a number of seconds, 1 to 3600")
    return float(value)
