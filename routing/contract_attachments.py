"""The wire contract of streamed attachments (docs/protocol.md, "Streamed attachments").

A system uploads a file in chunks to queue ``axis.attachment`` through exchange
``axis.query`` (routing key ``attachment.put``; no broker permission beyond the
one it has for queries), asks which chunks the hub holds (``attachment.state``)
and, as a recipient, downloads chunks (``attachment.get``). Every request carries
``user_id`` and is answered on RabbitMQ direct reply-to: a ``put`` or ``state`` with
JSON, a ``get`` with the chunk's bytes (or a JSON refusal). Files are named by
(uploading system, SHA-256): re-sending a chunk is harmless, and an interrupted
upload resumes from the chunks the hub answered for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envelopes.attachment_refs import chunk_count, chunk_length, valid_sha256
from envelopes.errors import AxisError
from routing.contract import (
    DIRECT_REPLY_TO,
    JSON,
    QUERY_EXCHANGE,
    WireMessage,
    answer_message,
    answer_ok,
    answer_refused,
    header_text,
)
from routing.errors import AttachmentDigestMismatch, InvalidChunk

ATTACHMENT_QUEUE = "axis.attachment"
PUT_KEY = "attachment.put"
GET_KEY = "attachment.get"
STATE_KEY = "attachment.state"
ATTACHMENT_KEYS = (PUT_KEY, GET_KEY, STATE_KEY)
ATTACHMENT_EXCHANGE = QUERY_EXCHANGE
OCTETS = "application/octet-stream"

H_SHA256 = "axis-attachment-sha256"  # the whole file's SHA-256 (hex)
H_SIZE = "axis-attachment-size"  # the whole file's size in bytes
H_OWNER = "axis-attachment-sender"  # get: the system that uploaded the file
H_INDEX = "axis-chunk-index"  # 0-based
H_CHUNK_SHA256 = "axis-chunk-sha256"  # this chunk's SHA-256 (hex)


@dataclass(frozen=True, slots=True)
class ChunkAddress:
    """Which chunk of which file a request is about."""

    sha256: str
    size: int
    index: int
    owner: str = ""  # get only: the uploading system


def put_message(*, system_id: str, sha256: str, size: int, index: int, data: bytes,
                correlation_id: str) -> WireMessage:  # fmt: skip
    """Chunk ``index`` of a file, for the hub to store."""
    headers = {H_SHA256: sha256, H_SIZE: str(size), H_INDEX: str(index),
               H_CHUNK_SHA256: hashlib.sha256(data).hexdigest()}  # fmt: skip
    return _request(PUT_KEY, data, headers, system_id, correlation_id, OCTETS)


def state_message(*, system_id: str, sha256: str, size: int,
                  correlation_id: str) -> WireMessage:  # fmt: skip
    """Ask which chunks of a file the hub holds."""
    headers = {H_SHA256: sha256, H_SIZE: str(size)}
    return _request(STATE_KEY, b"", headers, system_id, correlation_id, JSON)


def get_message(*, system_id: str, owner: str, sha256: str, size: int, index: int,
                correlation_id: str) -> WireMessage:  # fmt: skip
    """Ask for chunk ``index`` of a file ``owner`` sent to this system."""
    headers = {H_SHA256: sha256, H_SIZE: str(size), H_INDEX: str(index), H_OWNER: owner}
    return _request(GET_KEY, b"", headers, system_id, correlation_id, JSON)


def _request(key: str, body: bytes, headers: dict[str, str], system_id: str,
             correlation_id: str, content_type: str) -> WireMessage:  # fmt: skip
    return WireMessage(body=body, content_type=content_type, type=key, user_id=system_id,
                       reply_to=DIRECT_REPLY_TO, correlation_id=correlation_id,
                       persistent=False, headers=headers)  # fmt: skip


def read_address(headers: Mapping[str, Any], *, with_index: bool) -> ChunkAddress:
    """The file and chunk a request names; :class:`InvalidChunk` when malformed."""
    sha = header_text(headers.get(H_SHA256)).lower()
    if not valid_sha256(sha):
        raise InvalidChunk(f"header {H_SHA256} must be 64 hexadecimal digits")
    size = _integer(headers, H_SIZE)
    if size < 1:
        raise InvalidChunk(f"header {H_SIZE} must be a positive integer")
    index = _integer(headers, H_INDEX) if with_index else 0
    if not 0 <= index < chunk_count(size):
        raise InvalidChunk(f"chunk {index} is outside 0..{chunk_count(size) - 1}", index=index)
    return ChunkAddress(sha, size, index, header_text(headers.get(H_OWNER)))


def check_chunk(address: ChunkAddress, data: bytes, headers: Mapping[str, Any]) -> None:
    """A chunk has its exact length and its declared SHA-256, or a coded error is raised."""
    expected = chunk_length(address.size, address.index)
    if len(data) != expected:
        raise InvalidChunk(f"chunk {address.index} holds {len(data)} bytes, not {expected}",
                           index=address.index)  # fmt: skip
    declared = header_text(headers.get(H_CHUNK_SHA256)).lower()
    if declared != hashlib.sha256(data).hexdigest():
        raise AttachmentDigestMismatch(
            f"chunk {address.index} does not match its {H_CHUNK_SHA256}", index=address.index)


def _integer(headers: Mapping[str, Any], name: str) -> int:
    text = header_text(headers.get(name))
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise InvalidChunk(f"header {name} must be a decimal integer")
    return int(text)


# -- answers ------------------------------------------------------------------------------


def held_ranges(indices: Sequence[int]) -> list[list[int]]:
    """Sorted chunk indices as inclusive ``[first, last]`` ranges (compact on the wire)."""
    ranges: list[list[int]] = []
    for index in sorted(set(indices)):
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    return ranges


def expand_ranges(ranges: Sequence[Sequence[int]]) -> set[int]:
    """The chunk indices inclusive ranges cover."""
    return {i for first, last in ranges for i in range(int(first), int(last) + 1)}


def state_answer(*, sha256: str, size: int, held: Sequence[int], complete: bool) -> dict[str, Any]:
    """What the hub holds of a file: ``held`` as ranges, ``complete`` once it is whole
    and its SHA-256 checked."""
    return answer_ok({"sha256": sha256, "size": size, "chunks": chunk_count(size),
                      "held": held_ranges(held), "complete": complete})  # fmt: skip


def refusal_answer(error: AxisError, correlation_id: str | None,
                   receipt: bytes | None = None) -> WireMessage:  # fmt: skip
    """``{"ok": false, "error": {...}}`` for the asker; with ``receipt`` (a refused chunk),
    also ``"receipt"``: the hub-signed receipt of the refusal, as text."""
    answer = answer_refused(error)
    if receipt is not None:
        answer["receipt"] = receipt.decode("utf-8")
    return answer_message(answer, correlation_id=correlation_id)


def chunk_message_id(address: ChunkAddress) -> str:
    """What a chunk's refusal receipt names as its ``MessageId``: ``<sha256>/<index>``."""
    return f"{address.sha256}/{address.index}"


def chunk_answer(address: ChunkAddress, data: bytes, correlation_id: str | None) -> WireMessage:
    """A downloaded chunk: the bytes, with its index and SHA-256 in headers."""
    headers = {H_SHA256: address.sha256, H_INDEX: str(address.index),
               H_CHUNK_SHA256: hashlib.sha256(data).hexdigest()}  # fmt: skip
    return WireMessage(body=data, content_type=OCTETS, correlation_id=correlation_id,
                       persistent=False, headers=headers)  # fmt: skip
