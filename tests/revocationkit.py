"""Revocation material for tests: CRLs and OCSP responses made with ``cryptography``, a CRL
server (``http.server`` on loopback) and a real OCSP responder (``openssl ocsp``).

Keys are generated in the test (``signing.pki``); nothing here is stored elsewhere.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing.keys import PrivateKey
from signing.pki import Credential

Revoked = tuple[int, datetime, x509.ReasonFlags | None]  # serial, date, reason


def private_key(credential: Credential) -> PrivateKey:
    key = serialization.load_pem_private_key(credential.key_pem, password=None)
    assert isinstance(key, PrivateKey)
    return key


def make_crl(
    ca: Credential, this_update: datetime, revoked: Sequence[Revoked] = (), *,
    next_update: datetime | None = None, number: int = 1, signer: Credential | None = None,
    delta: bool = False,
) -> bytes:  # fmt: skip
    """A DER CRL of ``ca`` (signed by ``signer``'s key when given: a forgery)."""
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.certificate.subject)
               .last_update(this_update)
               .next_update(next_update or this_update + timedelta(days=1))
               .add_extension(x509.CRLNumber(number), critical=False))  # fmt: skip
    if delta:
        builder = builder.add_extension(x509.DeltaCRLIndicator(number - 1), critical=True)
    for serial, when, reason in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    key = private_key(signer or ca)
    crl = builder.sign(key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


def ocsp_responder(ca: Credential, now: datetime, *, for_ocsp: bool = True) -> Credential:
    """A delegated responder certificate issued by ``ca`` (with id-kp-OCSPSigning or not)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OCSP")]))
               .issuer_name(ca.certificate.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(hours=1))
               .not_valid_after(now + timedelta(days=30)))  # fmt: skip
    if for_ocsp:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    cert = builder.sign(private_key(ca), hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return Credential(key_pem, cert.public_bytes(serialization.Encoding.PEM))


def make_ocsp(
    cert: x509.Certificate, ca: Credential, status: ocsp.OCSPCertStatus, this_update: datetime,
    *, next_update: datetime | None = None, revoked_at: datetime | None = None,
    reason: x509.ReasonFlags | None = None, responder: Credential | None = None,
) -> bytes:  # fmt: skip
    """A DER OCSP response about ``cert`` signed by ``ca`` (or a delegated ``responder``,
    carried in the response)."""
    signer = responder or ca
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=ca.certificate, algorithm=hashes.SHA1(), cert_status=status,
        this_update=this_update, next_update=next_update or this_update + timedelta(hours=1),
        revocation_time=revoked_at, revocation_reason=reason,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer.certificate)  # fmt: skip
    if responder is not None:
        builder = builder.certificates([responder.certificate])
    key = private_key(signer)
    response = builder.sign(key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


def spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class CrlServer:
    """Serves ``files[path]`` over HTTP on loopback; counts the requests per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: dict[str, int] = {}
        files, requests = self.files, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests[self.path] = requests.get(self.path, 0) + 1
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> CrlServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class OpensslOcsp:
    """``openssl ocsp`` answering for ``ca`` from an index of issued certificates, signed
    by the CA itself, on a spare loopback port; stopped (killed) on exit."""

    def __init__(self, directory: Path, ca: Credential) -> None:
        self.directory, self.port = directory, spare_port()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ca.pem").write_bytes(ca.cert_pem)
        key = directory / "ca.key"
        key.touch(mode=0o600)
        key.write_bytes(ca.key_pem)
        self.index = directory / "index.txt"
        self.index.write_text("")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def add(self, cert: x509.Certificate, revoked_at: datetime | None = None,
            reason: str = "keyCompromise") -> None:  # fmt: skip
        """List ``cert`` as valid, or revoked at ``revoked_at`` for ``reason``."""
        expiry = _openssl_time(cert.not_valid_after_utc)
        revoked = f"{_openssl_time(revoked_at)},{reason}" if revoked_at else ""
        line = "\t".join(["R" if revoked_at else "V", expiry, revoked,
                          f"{cert.serial_number:X}", "unknown",
                          "/" + cert.subject.rfc4514_string().replace(",", "/")])  # fmt: skip
        with self.index.open("a") as index:
            index.write(line + "\n")

    def __enter__(self) -> OpensslOcsp:
        d = self.directory
        log = d / "ocsp.log"
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                ["openssl", "ocsp", "-index", str(self.index), "-port", str(self.port),
                 "-rsigner", str(d / "ca.pem"), "-rkey", str(d / "ca.key"),
                 "-CA", str(d / "ca.pem"), "-ndays", "1"],
                stdout=out, stderr=out)  # fmt: skip
        # Not a probe connection: openssl serves one connection at a time and would wait
        # for the probe's request.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if b"waiting for OCSP client connections" in log.read_bytes():
                return self
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError(f"openssl ocsp did not start: {log.read_text(errors='replace')}")

    def __exit__(self, _type: type[BaseException] | None, _value: BaseException | None,
                 _tb: TracebackType | None) -> None:  # fmt: skip
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            self._process = None


def _openssl_time(moment: datetime) -> str:
    return moment.strftime("%y%m%d%H%M%SZ")
