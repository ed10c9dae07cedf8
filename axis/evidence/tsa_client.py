"""Asking an RFC 3161 time-stamp authority for a token over a signed tree head (one HTTP
POST; see docs/evidence.md, "Tree heads").

Kept apart from :mod:`axis.evidence.timestamps`, which verifies tokens and does no I/O, so
that the offline auditor imports no network code. ``rfc3161_client`` builds the request
and parses the answer (no ASN.1 of our own).
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    decode_timestamp_response,
)

from axis.evidence.errors import TimestampUnavailable
from axis.evidence.timestamps import SHA256_OID

_GRANTED = (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS)
_MAX_RESPONSE = 1024 * 1024


def request_timestamp(url: str, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Ask the TSA at ``url`` for a time-stamp over SHA-256 of ``data`` (with a nonce, and
    the TSA certificate requested); return the DER ``TimeStampResp`` (a ``.tsr``).

    The answer must be HTTP 200, a granted TimeStampResp whose imprint is SHA-256(data)
    and whose nonce is ours; its signature is not verified here (see
    :func:`verify_timestamp`). Any failure raises :class:`TimestampUnavailable` (detail
    ``url``). ``data`` must not be empty (ValueError).
    """
    if not data:
        raise ValueError("cannot time-stamp empty data")
    if urlsplit(url).scheme not in {"http", "https"}:
        raise TimestampUnavailable("the TSA URL is not an http(s) URL", url=url)
    query = (
        TimestampRequestBuilder()
        .data(data)
        .hash_algorithm(HashAlgorithm.SHA256)  # the library's default is SHA-512
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    request = urllib.request.Request(
        url,
        data=query.as_bytes(),
        method="POST",
        headers={
            "Content-Type": "application/timestamp-query",
            "Accept": "application/timestamp-reply",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status = answer.status
            body: bytes = answer.read(_MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        raise TimestampUnavailable(
            f"the TSA answered HTTP {exc.code}", url=url, http_status=exc.code
        ) from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TimestampUnavailable(f"the TSA is unreachable: {reason}", url=url) from exc
    if status != 200:
        raise TimestampUnavailable(f"the TSA answered HTTP {status}", url=url, http_status=status)
    if len(body) > _MAX_RESPONSE:
        raise TimestampUnavailable("the TSA's answer is too large", url=url)
    try:
        response = decode_timestamp_response(body)
        granted = response.status in _GRANTED
    except ValueError as exc:
        raise TimestampUnavailable(
            f"the TSA's answer is not a TimeStampResp: {exc}", url=url
        ) from exc
    if not granted:
        text = "; ".join(response.status_string) or "no status text"
        raise TimestampUnavailable(
            f"the TSA refused: status {response.status} ({text})",
            url=url,
            tsa_status=response.status,
        )
    try:
        info = response.tst_info
        imprint, algorithm, nonce = (
            info.message_imprint.message,
            info.message_imprint.hash_algorithm,
            info.nonce,
        )
    except ValueError as exc:
        raise TimestampUnavailable(f"the TSA's token does not parse: {exc}", url=url) from exc
    if algorithm != SHA256_OID or imprint != hashlib.sha256(data).digest():
        raise TimestampUnavailable("the TSA stamped another imprint than SHA-256(data)", url=url)
    if nonce != query.nonce:
        raise TimestampUnavailable("the TSA's token does not carry our nonce", url=url)
    return body
