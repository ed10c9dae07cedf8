"""RFC 3161 time-stamps of tree heads, against a real local TSA (``openssl ts -reply``)."""

from __future__ import annotations

import datetime
import socket
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from axis.evidence.errors import TimestampInvalid, TimestampUnavailable
from axis.evidence.timestamps import VerifiedTimestamp, timestamp_time, verify_timestamp
from axis.evidence.tsa_client import request_timestamp
from tests.tsa import LocalTsa, Mode, make_tsa_pki, openssl_binary

HEAD = b'<log:TreeHead xmlns:log="urn:axis:log:1" version="1">...</log:TreeHead>\n'


@pytest.fixture(scope="module")
def token(tsa: LocalTsa) -> bytes:
    return request_timestamp(tsa.url, HEAD)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> x509.Certificate:
    """A CA with the very same name as the TSA CA, but another key."""
    ca, _ = make_tsa_pki(tmp_path_factory.mktemp("other-tsa"))
    return ca


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_token_verifies_anchored(tsa: LocalTsa, token: bytes) -> None:
    verified = verify_timestamp(token, HEAD, [tsa.ca_certificate])
    assert isinstance(verified, VerifiedTimestamp)
    assert verified.anchored is True
    assert "CN=Axis Test TSA" in verified.tsa_subject
    assert verified.gen_time == timestamp_time(token)


def test_token_verifies_unanchored(token: bytes) -> None:
    verified = verify_timestamp(token, HEAD, None)
    assert verified.anchored is False
    assert "CN=Axis Test TSA" in verified.tsa_subject


def test_duplicate_roots_are_fine(tsa: LocalTsa, other_ca: x509.Certificate, token: bytes) -> None:
    roots = [other_ca, tsa.ca_certificate, tsa.ca_certificate]
    assert verify_timestamp(token, HEAD, roots).anchored


def test_openssl_ts_verify_agrees(tsa: LocalTsa, token: bytes, tmp_path: Path) -> None:
    (tmp_path / "head.xml").write_bytes(HEAD)
    (tmp_path / "head.tsr").write_bytes(token)
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(tmp_path / "head.xml"),
         "-in", str(tmp_path / "head.tsr"), "-CAfile", str(tsa.ca_pem_path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stdout


def test_other_data_fails(tsa: LocalTsa, token: bytes) -> None:
    for roots in ([tsa.ca_certificate], None):
        with pytest.raises(TimestampInvalid, match="imprint") as caught:
            verify_timestamp(token, HEAD + b" ", roots)
        assert caught.value.code == "timestamp.invalid"


def test_altered_signature_fails(tsa: LocalTsa, token: bytes) -> None:
    # The token ends with the SignerInfo's signature (no unsigned attributes): flip its
    # last byte. The response still parses and the imprint still matches.
    tampered = _flip(token, len(token) - 1)
    assert timestamp_time(tampered) == timestamp_time(token)
    for roots in ([tsa.ca_certificate], None):
        with pytest.raises(TimestampInvalid, match="signature does not verify") as caught:
            verify_timestamp(tampered, HEAD, roots)
        assert caught.value.code == "timestamp.invalid"


def test_altered_gen_time_fails(tsa: LocalTsa, token: bytes) -> None:
    # genTime is signed content: change its last seconds digit (still within the TSA
    # certificate's validity), so the signed message digest no longer matches.
    stamp = timestamp_time(token).strftime("%Y%m%d%H%M%S").encode()
    at = token.index(stamp) + len(stamp) - 1
    tampered = token[:at] + str((int(token[at : at + 1]) + 1) % 10).encode() + token[at + 1 :]
    assert timestamp_time(tampered) != timestamp_time(token)
    for roots in ([tsa.ca_certificate], None):
        with pytest.raises(TimestampInvalid, match="signature does not verify"):
            verify_timestamp(tampered, HEAD, roots)


def test_gen_time_outside_tsa_certificate_fails(tsa: LocalTsa, token: bytes) -> None:
    stamp = timestamp_time(token).strftime("%Y%m%d%H%M%S").encode()
    at = token.index(stamp)
    tampered = token[:at] + str(int(stamp[:4]) + 5).encode() + token[at + 4 :]
    for roots in ([tsa.ca_certificate], None):
        with pytest.raises(TimestampInvalid, match="TSA certificate does not verify"):
            verify_timestamp(tampered, HEAD, roots)


def test_roots_of_another_ca_fail(other_ca: x509.Certificate, token: bytes) -> None:
    with pytest.raises(
        TimestampInvalid, match="TSA certificate does not verify against the TSA trust anchors"
    ) as caught:
        verify_timestamp(token, HEAD, [other_ca])
    assert caught.value.code == "timestamp.invalid"


def test_no_roots_at_all_fails(token: bytes) -> None:
    with pytest.raises(TimestampInvalid):
        verify_timestamp(token, HEAD, [])


@pytest.mark.parametrize("junk", [b"", b"not DER", b"\x30\x03abc"])
def test_garbage_tokens_are_invalid(junk: bytes) -> None:
    with pytest.raises(TimestampInvalid):
        timestamp_time(junk)
    with pytest.raises(TimestampInvalid):
        verify_timestamp(junk, HEAD, None)


def test_timestamp_time_is_now(token: bytes) -> None:
    at = timestamp_time(token)
    assert at.tzinfo is not None and at.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.UTC) - at) < datetime.timedelta(minutes=1)


def test_each_request_gets_a_fresh_token(tsa: LocalTsa, token: bytes) -> None:
    again = request_timestamp(tsa.url, HEAD)
    assert again != token  # another nonce and serial number
    assert verify_timestamp(again, HEAD, [tsa.ca_certificate]).anchored


def test_tsa_down_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/tsa"
    with pytest.raises(TimestampUnavailable, match="unreachable") as caught:
        request_timestamp(url, HEAD, timeout=2)
    assert caught.value.code == "timestamp.unavailable"
    assert caught.value.detail["url"] == url


def test_tsa_silent_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/tsa"
        with pytest.raises(TimestampUnavailable) as caught:
            request_timestamp(url, HEAD, timeout=0.5)
    assert caught.value.detail["url"] == url


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("http500", "HTTP 500"), ("garbage", "not a TimeStampResp"), ("reject", "refused")],
)
def test_misbehaving_tsa_is_unavailable(tsa: LocalTsa, mode: Mode, reason: str) -> None:
    with tsa.answering(mode), pytest.raises(TimestampUnavailable, match=reason) as caught:
        request_timestamp(tsa.url, HEAD)
    assert caught.value.code == "timestamp.unavailable"
    assert caught.value.detail["url"] == tsa.url


def test_not_an_http_url_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TimestampUnavailable, match="http"):
        request_timestamp((tmp_path / "x").as_uri(), HEAD)


def test_local_tsa_cleans_up() -> None:
    if openssl_binary() is None:
        pytest.skip("the openssl binary is not installed (needed for the local TSA)")
    local = LocalTsa()
    directory, url = local.directory, local.url
    assert request_timestamp(url, b"x")
    local.stop()
    local.stop()
    assert not directory.exists()
    with pytest.raises(TimestampUnavailable):
        request_timestamp(url, b"x", timeout=2)
