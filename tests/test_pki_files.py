"""Writing and reading the PKI files: modes, no overwriting, clear errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from axis.errors import PkiExists
from axis.pki_files import init_pki, issue_agency_files, load_credential, write_credential
from envelopes.errors import InvalidOrganId
from signing.errors import InvalidKeyMaterial
from signing.keys import load_certificate, organ_id_of
from signing.pki import new_ca
from signing.sign import sign_package
from signing.verify import VerifyPolicy, verify
from tests.test_signing_helpers import LATER, NOW, SMALL_PACKAGE


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_pki_writes_four_files_with_private_keys_0600(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        paths = init_pki(tmp_path / "pki", NOW)
    finally:
        os.umask(old_umask)
    assert sorted(p.name for p in (tmp_path / "pki").iterdir()) == [
        "ca.key", "ca.pem", "hub.key", "hub.pem"
    ]
    assert _mode(paths.ca_key) == 0o600
    assert _mode(paths.hub_key) == 0o600
    assert _mode(paths.ca_cert) == 0o644
    hub = load_credential(paths.hub_key, paths.hub_cert)
    hub.certificate.verify_directly_issued_by(load_certificate(paths.ca_cert.read_bytes()))


def test_init_pki_refuses_to_overwrite(tmp_path: Path) -> None:
    init_pki(tmp_path, NOW)
    before = (tmp_path / "ca.key").read_bytes()
    with pytest.raises(PkiExists):
        init_pki(tmp_path, NOW)
    assert (tmp_path / "ca.key").read_bytes() == before


def test_init_pki_refuses_if_any_one_file_exists(tmp_path: Path) -> None:
    (tmp_path / "hub.pem").write_bytes(b"already here")
    with pytest.raises(PkiExists):
        init_pki(tmp_path, NOW)
    assert not (tmp_path / "ca.key").exists()


def test_agency_files_sign_packages_trusted_by_the_ca(tmp_path: Path) -> None:
    pki = init_pki(tmp_path, NOW)
    paths = issue_agency_files(tmp_path, "000.00.00.G22", "Văn phòng Chính phủ", NOW)
    assert paths.cert.name == "000.00.00.G22.pem"
    assert _mode(paths.key) == 0o600
    key = load_credential(paths.key, paths.cert)
    assert organ_id_of(key.certificate) == "000.00.00.G22"

    anchor = load_certificate(pki.ca_cert.read_bytes())
    policy = VerifyPolicy(at=LATER, trust_anchors=(anchor,))
    result = verify(sign_package(SMALL_PACKAGE, key), policy)
    assert result.signer == key.certificate

    with pytest.raises(PkiExists):
        issue_agency_files(tmp_path, "000.00.00.G22", "Again", NOW)


@pytest.mark.parametrize("organ_id", ["../escape", "a/b", ""])
def test_agency_files_refuse_bad_organ_ids_before_writing(tmp_path: Path, organ_id: str) -> None:
    init_pki(tmp_path / "pki", NOW)
    with pytest.raises(InvalidOrganId):
        issue_agency_files(tmp_path / "pki", organ_id, "Bad", NOW)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "ca.key", "ca.pem", "hub.key", "hub.pem", "pki"
    ]


def test_agency_files_need_the_ca(tmp_path: Path) -> None:
    with pytest.raises(InvalidKeyMaterial, match="does not exist"):
        issue_agency_files(tmp_path, "000.00.00.G22", "A", NOW)


def test_write_credential_never_overwrites(tmp_path: Path) -> None:
    credential = new_ca("CA", NOW)
    write_credential(credential, cert_path=tmp_path / "c.pem", key_path=tmp_path / "c.key")
    with pytest.raises(PkiExists):
        write_credential(credential, cert_path=tmp_path / "d.pem", key_path=tmp_path / "c.key")
    assert not (tmp_path / "d.pem").exists()


@pytest.mark.parametrize("problem", ["missing-key", "missing-cert", "garbage-key", "directory",
                                     "unreadable"])
def test_load_credential_errors_are_clear(tmp_path: Path, problem: str) -> None:
    pki = init_pki(tmp_path, NOW)
    key_path, cert_path = pki.hub_key, pki.hub_cert
    if problem == "missing-key":
        key_path = tmp_path / "nope.key"
    elif problem == "missing-cert":
        cert_path = tmp_path / "nope.pem"
    elif problem == "garbage-key":
        key_path = tmp_path / "garbage.key"
        key_path.write_bytes(b"not a key")
    elif problem == "directory":
        key_path = tmp_path
    else:
        if os.geteuid() == 0:
            pytest.skip("root reads files whatever their mode")
        key_path.chmod(0)
    with pytest.raises(InvalidKeyMaterial) as caught:
        load_credential(key_path, cert_path)
    assert str(key_path if problem != "missing-cert" else cert_path) in str(caught.value)
