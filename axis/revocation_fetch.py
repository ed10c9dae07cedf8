"""Getting revocation material: a CRL from a distribution point (HTTP GET) or a file, an
OCSP response from a responder (HTTP POST). Bounded in time and size.

Failures become :class:`~signing.errors.RevocationUnavailable` naming the source, so the
revocation service can tell the hub and the operator which CA and which URL failed.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from signing.errors import RevocationUnavailable

FETCHABLE_SCHEMES = frozenset({"http", "https"})


def http_source(url: str) -> bool:
    """True for a URL the hub fetches (http or https; an LDAP distribution point is not)."""
    return urlsplit(url).scheme in FETCHABLE_SCHEMES and bool(urlsplit(url).hostname)


def get_crl(url: str, *, timeout: float, max_bytes: int) -> bytes:
    """The body of ``GET url`` (a CRL, DER or PEM)."""
    return _exchange(urllib.request.Request(url, headers={"Accept": "application/pkix-crl"}),
                     timeout, max_bytes)  # fmt: skip


def post_ocsp(url: str, request: bytes, *, timeout: float, max_bytes: int) -> bytes:
    """The body of the responder's answer to the DER OCSP ``request`` (RFC 6960 A.1)."""
    return _exchange(urllib.request.Request(
        url, data=request, method="POST",
        headers={"Content-Type": "application/ocsp-request",
                 "Accept": "application/ocsp-response"}), timeout, max_bytes)  # fmt: skip


def read_crl_file(path: Path, *, max_bytes: int) -> bytes:
    """The bytes of a CRL file the operator configured."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise RevocationUnavailable(f"the CRL file {path} cannot be read: {exc.strerror or exc}",
                                    source=str(path)) from None  # fmt: skip
    if len(data) > max_bytes:
        raise RevocationUnavailable(f"the CRL file {path} is larger than {max_bytes} bytes",
                                    source=str(path))  # fmt: skip
    return data


def _exchange(request: urllib.request.Request, timeout: float, max_bytes: int) -> bytes:
    url = request.full_url
    if not http_source(url):
        raise RevocationUnavailable(f"{url} is not an http(s) URL", source=url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status = answer.status
            body: bytes = answer.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise RevocationUnavailable(f"{url} answered HTTP {exc.code}", source=url) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise RevocationUnavailable(f"{url} is unreachable: {reason}", source=url) from None
    if status != 200:
        raise RevocationUnavailable(f"{url} answered HTTP {status}", source=url)
    if len(body) > max_bytes:
        raise RevocationUnavailable(f"{url} answered more than {max_bytes} bytes", source=url)
    return body
