"""Upload a file as a streamed attachment, in chunks, with bounded memory.

:class:`FileUpload` hashes the file as a stream (size and SHA-256, never the whole
file in memory), asks the hub which chunks it already holds (``attachment.state``),
and puts only the others (``attachment.put``), ``window`` requests outstanding at a
time, each awaited through its answer. It ends when an answer says the hub has the
whole file and checked its SHA-256. An interrupted upload resumes by running it
again: the hub's state says which chunks it holds, and those are not sent again.

:func:`attach_files` is what a sender calls: files up to the inline limit become
ordinary (zipped, inline) attachments, larger ones are uploaded and stand in the
package as a signed reference (:func:`envelopes.attachment_refs.reference_attachment`).
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from axis.client.chunk_rpc import ChunkRpc, HubLink, in_thread, read_json_reply, run_window
from envelopes.attachment_refs import (
    CHUNK_BYTES,
    AttachmentRef,
    chunk_length,
    reference_attachment,
    usable_name,
)
from envelopes.builder import attachment_from_bytes
from envelopes.errors import InvalidAttachment, InvalidMetadata
from envelopes.model import Attachment
from routing.contract_attachments import (
    PUT_KEY,
    STATE_KEY,
    expand_ranges,
    put_message,
    state_message,
)
from routing.errors import AttachmentIncomplete, AttachmentNotFound, AttachmentTooLarge

DEFAULT_WINDOW = 8  # chunk requests outstanding at once: memory ~ window x CHUNK_BYTES
HASH_BLOCK = 4 * 1024 * 1024
STATE_POLLS = 5  # state asked again, when every chunk is held but not yet checked whole
ROUNDS = 3  # passes over chunks the state still says are missing

Progress = Callable[[int, int], None]  # (bytes done, bytes total)
NamedProgress = Callable[[str, int, int], None]  # (file name, bytes done, bytes total)


# -- pure planning ------------------------------------------------------------------------


def missing_chunks(chunks: int, held: Iterable[int]) -> list[int]:
    """The indices of ``chunks`` not in ``held``, ascending."""
    have = set(held)
    return [i for i in range(chunks) if i not in have]


def bytes_of(size: int, indices: Iterable[int]) -> int:
    """How many bytes of a ``size``-byte file the chunks ``indices`` hold."""
    return sum(chunk_length(size, i) for i in set(indices))


def held_in_state(answer: dict[str, Any]) -> set[int]:
    """The chunk indices a state answer says the hub holds."""
    held = answer.get("held") or []
    return expand_ranges(held) if isinstance(held, list) else set()


# -- files --------------------------------------------------------------------------------


def file_size(path: Path) -> int:
    """The size of a regular, readable file, or ``envelope.invalid_metadata`` naming it."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise InvalidMetadata(f"attachment {str(path)!r} does not exist") from None
    except OSError as exc:
        raise InvalidMetadata(f"cannot read attachment {str(path)!r}: {exc.strerror}") from None
    if not path.is_file():
        raise InvalidMetadata(f"attachment {str(path)!r} is not a regular file")
    if not os.access(path, os.R_OK):
        raise InvalidMetadata(f"cannot read attachment {str(path)!r}: permission denied")
    return stat.st_size


def check_files(paths: Sequence[Path], max_bytes: int) -> list[int]:
    """Each file's size; a missing or unreadable file, or one above ``max_bytes``
    (``attachment.too_large``), raises before anything is read or sent."""
    sizes = [file_size(path) for path in paths]
    for path, size in zip(paths, sizes, strict=True):
        if size > max_bytes:
            raise AttachmentTooLarge(
                f"attachment {str(path)!r} holds {size} bytes, above the limit of {max_bytes} "
                "(max_attachment_bytes)", size=size, limit=max_bytes)  # fmt: skip
    return sizes


def check_streamable(path: Path) -> None:
    """Refuse, before anything is read, a file whose name a reference cannot carry."""
    if not usable_name(path.name):
        raise InvalidAttachment(f"attachment {path.name!r} cannot be streamed under that "
                                "name (at most 255 characters, no backslash): rename it")


async def file_digest(path: Path, progress: Progress | None = None) -> tuple[int, str]:
    """``(size, sha256 hex)`` of a file, read block by block off the event loop."""
    digest = hashlib.sha256()
    total = file_size(path)
    done = 0

    def step(handle: Any) -> int:
        block = handle.read(HASH_BLOCK)
        digest.update(block)
        return len(block)

    with path.open("rb") as handle:
        while read := await in_thread(step, handle):
            done += read
            if progress is not None:
                progress(done, max(total, done))
    return done, digest.hexdigest()


def _read_chunk(fd: int, size: int, index: int) -> bytes:
    length = chunk_length(size, index)
    data = os.pread(fd, length, index * CHUNK_BYTES)
    if len(data) != length:
        raise InvalidAttachment(f"the file shrank while it was uploaded (chunk {index})")
    return data


# -- the upload ---------------------------------------------------------------------------


class FileUpload:
    """One file's upload. After :meth:`run`: ``held_before`` chunks the hub already had,
    ``sent`` chunks put (answered) by this run, ``ref`` the file's reference."""

    def __init__(self, client: HubLink, path: Path, *, progress: Progress | None = None,
                 hash_progress: Progress | None = None, window: int = DEFAULT_WINDOW,
                 max_bytes: int | None = None, timeout: float | None = None) -> None:  # fmt: skip
        if window < 1:
            raise ValueError("window must be at least 1")
        self.client = client
        self.path = path
        self.progress = progress
        self.hash_progress = hash_progress
        self.window = window
        self.max_bytes = client.config.max_attachment_bytes if max_bytes is None else max_bytes
        self.timeout = timeout
        self.ref: AttachmentRef | None = None
        self.held_before = 0
        self.sent = 0
        self._done = 0
        self._complete = False

    async def run(self) -> AttachmentRef:
        """Upload whatever the hub lacks; returns the reference once the hub holds it whole."""
        check_files([self.path], self.max_bytes)
        check_streamable(self.path)
        size, sha256 = await file_digest(self.path, self.hash_progress)
        if size < 1:
            raise InvalidAttachment(f"attachment {self.path.name!r} is empty: attach it inline")
        content_type = mimetypes.guess_type(self.path.name)[0] or "application/octet-stream"
        ref = AttachmentRef(self.path.name, size, sha256, content_type)
        self.ref = ref
        async with ChunkRpc(self.client.connection, timeout=self.timeout) as rpc:
            await self._upload(rpc, ref)
        return ref

    async def _upload(self, rpc: ChunkRpc, ref: AttachmentRef) -> None:
        state = await self._state(rpc, ref)
        held = held_in_state(state)
        self.held_before = len(held)
        self._complete = bool(state.get("complete"))
        self._done = bytes_of(ref.size, held)
        self._report(ref)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for _ in range(ROUNDS):
                if self._complete:
                    return
                todo = missing_chunks(ref.chunks, held)
                if todo:
                    await run_window(self.window, todo, lambda i: self._put(rpc, ref, fd, i))
                if self._complete:
                    return
                held = await self._held_after(rpc, ref)
        finally:
            os.close(fd)
        raise AttachmentIncomplete(f"the hub does not hold {ref.name!r} whole after "
                                   f"{ROUNDS} passes", sha256=ref.sha256)  # fmt: skip

    async def _held_after(self, rpc: ChunkRpc, ref: AttachmentRef) -> set[int]:
        """What the hub holds once every chunk was answered; polled a little while every
        chunk is there but the whole file's check has not been answered yet."""
        for attempt in range(STATE_POLLS):
            state = await self._state(rpc, ref)
            held = held_in_state(state)
            self._complete = bool(state.get("complete"))
            if self._complete or len(held) < ref.chunks:
                return held
            await asyncio.sleep(0.2 * (attempt + 1))
        return held

    async def _state(self, rpc: ChunkRpc, ref: AttachmentRef) -> dict[str, Any]:
        system_id = self.client.config.system_id
        reply = await rpc.call(lambda cid: state_message(
            system_id=system_id, sha256=ref.sha256, size=ref.size, correlation_id=cid),
            STATE_KEY)  # fmt: skip
        try:
            return read_json_reply(reply, name=ref.name, sha256=ref.sha256)
        except AttachmentNotFound:
            return {"held": [], "complete": False}  # nothing of it uploaded yet

    async def _put(self, rpc: ChunkRpc, ref: AttachmentRef, fd: int, index: int) -> None:
        data = await in_thread(_read_chunk, fd, ref.size, index)
        system_id = self.client.config.system_id
        reply = await rpc.call(lambda cid: put_message(
            system_id=system_id, sha256=ref.sha256, size=ref.size, index=index, data=data,
            correlation_id=cid), PUT_KEY)  # fmt: skip
        answer = read_json_reply(reply, name=ref.name, sha256=ref.sha256, index=index)
        self.sent += 1
        self._done += len(data)
        self._complete = self._complete or bool(answer.get("complete"))
        self._report(ref)

    def _report(self, ref: AttachmentRef) -> None:
        if self.progress is not None:
            self.progress(min(self._done, ref.size), ref.size)


async def attach_files(client: HubLink, paths: Sequence[Path], *,
                       inline_max: int | None = None, max_bytes: int | None = None,
                       progress: NamedProgress | None = None,
                       hashing: NamedProgress | None = None,
                       window: int = DEFAULT_WINDOW,
                       uploads: list[FileUpload] | None = None) -> list[Attachment]:  # fmt: skip
    """The attachments for ``paths``, in order: inline up to ``inline_max`` bytes, else
    uploaded and referenced. Every file is checked (exists, readable, at most
    ``max_bytes``, a name a reference can carry) before the first is uploaded.
    ``progress(name, done, total)`` reports each upload, ``hashing(name, done, total)``
    the reading that precedes it; each finished :class:`FileUpload` is appended to
    ``uploads`` (how many chunks it sent)."""
    inline_max = client.config.inline_attachment_max if inline_max is None else inline_max
    max_bytes = client.config.max_attachment_bytes if max_bytes is None else max_bytes
    sizes = check_files(paths, max_bytes)
    for path, size in zip(paths, sizes, strict=True):
        if size > inline_max:
            check_streamable(path)
    attachments = []
    for path, size in zip(paths, sizes, strict=True):
        if size <= inline_max:
            attachments.append(attachment_from_bytes(path.name, path.read_bytes()))
            continue
        upload = FileUpload(client, path, progress=_named(progress, path.name),
                            hash_progress=_named(hashing, path.name), window=window,
                            max_bytes=max_bytes)  # fmt: skip
        attachments.append(reference_attachment(await upload.run()))
        if uploads is not None:
            uploads.append(upload)
    return attachments


def _named(progress: NamedProgress | None, name: str) -> Progress | None:
    if progress is None:
        return None
    return lambda done, total: progress(name, done, total)


__all__ = [
    "DEFAULT_WINDOW",
    "FileUpload",
    "attach_files",
    "bytes_of",
    "check_files",
    "check_streamable",
    "file_digest",
    "missing_chunks",
]
