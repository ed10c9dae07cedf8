"""The file edge of the PKI: writing and reading keys and certificates.

``signing.pki`` makes credentials in memory; this module puts them on disk and
reads them back. Private keys are created with mode 0600 from the start
(``os.open`` with ``O_EXCL``), never chmod-ed afterwards, and nothing is ever
overwritten: an existing file is a :class:`PkiExists` error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from axis.errors import PkiExists
from envelopes.ids import validate_organ_id
from signing.errors import InvalidKeyMaterial
from signing.keys import SigningKey, load_signing_key
from signing.pki import Credential, issue_agency, issue_hub, new_ca

KEY_MODE = 0o600
CERT_MODE = 0o644


@dataclass(frozen=True, slots=True)
class PkiPaths:
    """Where :func:`init_pki` wrote the CA and the hub credentials."""

    ca_cert: Path
    ca_key: Path
    hub_cert: Path
    hub_key: Path


@dataclass(frozen=True, slots=True)
class AgencyPaths:
    """Where :func:`issue_agency_files` wrote one agency's credential."""

    cert: Path
    key: Path


def init_pki(directory: Path, now: datetime, *, ca_name: str = "Axis test CA") -> PkiPaths:
    """Create ``ca.pem``/``ca.key`` and ``hub.pem``/``hub.key`` in ``directory``.

    Refuses (:class:`PkiExists`) if any of the four files already exists.
    """
    paths = PkiPaths(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca.key",
        hub_cert=directory / "hub.pem",
        hub_key=directory / "hub.key",
    )
    _refuse_existing(paths.ca_cert, paths.ca_key, paths.hub_cert, paths.hub_key)
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_ca(ca_name, now)
    hub = issue_hub(ca, now)
    write_credential(ca, cert_path=paths.ca_cert, key_path=paths.ca_key)
    write_credential(hub, cert_path=paths.hub_cert, key_path=paths.hub_key)
    return paths


def issue_agency_files(
    directory: Path, organ_id: str, name: str, now: datetime, *,
    crl_urls: Sequence[str] = (), ocsp_url: str | None = None,
) -> AgencyPaths:  # fmt: skip
    """Issue an agency certificate with the CA in ``directory``; write ``<organ_id>.pem/.key``
    (``crl_urls`` and ``ocsp_url``: where it says its revocation is published)."""
    validate_organ_id(organ_id)  # before it becomes a file name
    paths = AgencyPaths(cert=directory / f"{organ_id}.pem", key=directory / f"{organ_id}.key")
    _refuse_existing(paths.cert, paths.key)
    ca = Credential(
        key_pem=_read(directory / "ca.key", "CA private key"),
        cert_pem=_read(directory / "ca.pem", "CA certificate"),
    )
    credential = issue_agency(ca, organ_id, name, now, crl_urls=crl_urls, ocsp_url=ocsp_url)
    write_credential(credential, cert_path=paths.cert, key_path=paths.key)
    return paths


def write_credential(credential: Credential, *, cert_path: Path, key_path: Path) -> None:
    """Write the key (mode 0600) and the certificate (0644); never overwrite either."""
    _refuse_existing(cert_path, key_path)
    _write_new(key_path, credential.key_pem, KEY_MODE)
    _write_new(cert_path, credential.cert_pem, CERT_MODE)


def load_credential(key_path: Path, cert_path: Path) -> SigningKey:
    """Read a PEM key and certificate into a :class:`SigningKey` (load once, reuse).

    Missing or unreadable files, or unusable contents, raise :class:`InvalidKeyMaterial`.
    """
    key_pem = _read(key_path, "private key")
    cert_pem = _read(cert_path, "certificate")
    try:
        return load_signing_key(key_pem, cert_pem)
    except InvalidKeyMaterial as exc:
        raise InvalidKeyMaterial(
            f"{exc.reason} ({key_path}, {cert_path})", path=str(key_path)
        ) from None


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise PkiExists(f"{path} already exists; refusing to overwrite it", path=str(path))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        message = f"{path} already exists; refusing to overwrite it"
        raise PkiExists(message, path=str(path)) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidKeyMaterial(f"{what} file {path} does not exist", path=str(path)) from None
    except OSError as exc:
        raise InvalidKeyMaterial(
            f"cannot read {what} file {path}: {exc.strerror or exc}", path=str(path)
        ) from None
