"""A real RFC 3161 time-stamp authority on loopback, for tests: ``openssl ts -reply`` behind
a small HTTP server.

On start, :class:`LocalTsa` makes a throw-away PKI in a temporary directory (a TSA CA and a
TSA certificate with a critical ``extendedKeyUsage = timeStamping``; keys generated now,
never stored anywhere else), writes an ``openssl ts`` configuration, and serves HTTP on
``127.0.0.1`` on an ephemeral port. Each POST body (a DER ``TimeStampReq``) is written to a
file and answered with what ``openssl ts -reply`` makes of it. ``mode`` makes it misbehave
for negative tests::

    with LocalTsa() as tsa:
        tsr = request_timestamp(tsa.url, b"head bytes")
        verify_timestamp(tsr, b"head bytes", [tsa.ca_certificate])
        with tsa.answering("http500"):
            ...  # request_timestamp raises TimestampUnavailable

Needs the ``openssl`` binary (see :func:`openssl_binary`).
"""

from __future__ import annotations

import datetime
import itertools
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Mode = Literal["ok", "garbage", "http500", "reject"]
"""``ok``: a granted token; ``garbage``: HTTP 200 with bytes that are no TimeStampResp;
``http500``: an HTTP error; ``reject``: a real ``openssl ts`` refusal (status rejection,
badAlg: this TSA then accepts only SHA-512 imprints)."""

TSA_POLICY = "1.3.6.1.4.1.99999.3161.1"
_MAX_BODY = 64 * 1024


def openssl_binary() -> str | None:
    """The path of the ``openssl`` CLI, or None when it is not installed."""
    return shutil.which("openssl")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Axis test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_tsa_pki(
    directory: Path, *, ca_name: str = "Axis Test TSA CA"
) -> tuple[x509.Certificate, x509.Certificate]:
    """Write ``tsa-ca.pem``, ``tsa.pem`` and ``tsa.key`` (P-256) into ``directory``; return
    (CA certificate, TSA certificate)."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Axis Test TSA"))
        .issuer_name(ca_cert.subject)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "tsa-ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (directory / "tsa.pem").write_bytes(tsa_cert.public_bytes(pem))
    key = directory / "tsa.key"
    key.touch(mode=0o600)
    key.write_bytes(
        tsa_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_cert, tsa_cert


def _ts_config(directory: Path) -> str:
    def section(name: str, digests: str) -> str:
        return (
            f"[ {name} ]\n"
            f"dir = {directory}\n"
            "serial = $dir/serial\n"
            "crypto_device = builtin\n"
            "signer_cert = $dir/tsa.pem\n"
            "signer_key = $dir/tsa.key\n"
            "signer_digest = sha256\n"
            f"default_policy = {TSA_POLICY}\n"
            f"digests = {digests}\n"
            "accuracy = secs:1\n"
            "ordering = no\n"
            "tsa_name = yes\n"
            "ess_cert_id_chain = no\n"
            "ess_cert_id_alg = sha256\n\n"
        )

    return (
        "[ tsa ]\ndefault_tsa = tsa_ok\n\n"
        + section("tsa_ok", "sha256, sha384, sha512")
        + section("tsa_reject", "sha512")
    )


class LocalTsa:
    """A running loopback TSA (started by the constructor; :meth:`stop` or ``with``)."""

    def __init__(self, mode: Mode = "ok") -> None:
        openssl = openssl_binary()
        if openssl is None:
            raise RuntimeError("the openssl binary is not installed")
        self._openssl = openssl
        self.mode: Mode = mode
        self.requests = 0
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self.directory = Path(tempfile.mkdtemp(prefix="axis-tsa-"))
        try:
            self.ca_certificate, self.tsa_certificate = make_tsa_pki(self.directory)
            (self.directory / "serial").write_text("01\n")
            self.config_path = self.directory / "tsa.cnf"
            self.config_path.write_text(_ts_config(self.directory))
            self._server = HTTPServer(("127.0.0.1", 0), self._handler_class())
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/tsa"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"local-tsa-{self.port}", daemon=True
        )
        self._thread.start()
        self._stopped = False

    @property
    def ca_pem_path(self) -> Path:
        """The TSA CA certificate, PEM (what ``openssl ts -verify -CAfile`` takes)."""
        return self.directory / "tsa-ca.pem"

    def stop(self) -> None:
        """Stop serving, join the thread, remove the temporary directory (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    @contextmanager
    def answering(self, mode: Mode) -> Iterator[LocalTsa]:
        """Answer in ``mode`` for the duration of the ``with`` block, then as before."""
        previous, self.mode = self.mode, mode
        try:
            yield self
        finally:
            self.mode = previous

    def __enter__(self) -> LocalTsa:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reply(self, query: bytes) -> bytes:
        """What ``openssl ts -reply`` answers to the DER ``query`` (in the current mode)."""
        section = "tsa_reject" if self.mode == "reject" else "tsa_ok"
        with self._lock:  # openssl ts updates the serial file
            n = next(self._counter)
            query_file = self.directory / f"query-{n}.tsq"
            reply_file = self.directory / f"reply-{n}.tsr"
            query_file.write_bytes(query)
            subprocess.run(
                [self._openssl, "ts", "-reply", "-config", str(self.config_path),
                 "-section", section, "-queryfile", str(query_file), "-out", str(reply_file)],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            return reply_file.read_bytes()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                tsa.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, _MAX_BODY))
                if tsa.mode == "http500":
                    self._answer(500, b"internal error", "text/plain")
                elif tsa.mode == "garbage":
                    self._answer(200, b"\x30\x03garbage, not DER", "application/timestamp-reply")
                else:
                    try:
                        reply = tsa.reply(body)
                    except subprocess.SubprocessError:
                        self._answer(400, b"openssl ts -reply failed", "text/plain")
                        return
                    self._answer(200, reply, "application/timestamp-reply")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest output quiet

        return Handler
