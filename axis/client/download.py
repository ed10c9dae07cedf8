"""Download the files a delivered document references, resumably, with bounded memory.

A document whose verified package names streamed files
(:func:`envelopes.attachment_refs.references`) is handed over only once every file
is here whole: each file's chunks are fetched from the hub (``attachment.get``,
``window`` requests outstanding) and written at their offsets into
``<folder>/<sha256>.part``. A chunk is checked (index, length, its SHA-256 header
and the bytes), written and synced before its index is appended to the sidecar
``<sha256>.held`` (synced too), so a download cut short resumes with the chunks not
yet recorded. Once all are there, the whole file is hashed as a stream and compared
with the SHA-256 the sender signed; a mismatch deletes the part
(``attachment.digest_mismatch``); a match is synced and renamed to
``<folder>/<sha256>``, which :class:`~axis.client.inbox_store.InboxStore` moves into
the item's folder. A file found at ``<folder>/<sha256>`` already is used only when it
hashes to the signed SHA-256 too; otherwise it is downloaded again over it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from axis.client.chunk_rpc import (
    ChunkRpc,
    HubLink,
    Reply,
    in_thread,
    read_json_reply,
    run_window,
)
from axis.client.upload import DEFAULT_WINDOW, bytes_of, missing_chunks
from axis.files import file_sha256, sync_dir
from envelopes.attachment_refs import CHUNK_BYTES, AttachmentRef, chunk_length, references
from envelopes.errors import AxisError
from envelopes.model import DocumentPackage, Package
from routing.contract import JSON, header_text
from routing.contract_attachments import GET_KEY, H_CHUNK_SHA256, H_INDEX, get_message
from routing.errors import (
    AttachmentDigestMismatch,
    AttachmentError,
    AttachmentNotFound,
    InvalidChunk,
)

PART_SUFFIX = ".part"
HELD_SUFFIX = ".held"
CHUNK_ATTEMPTS = 3  # a chunk that arrives damaged is asked for again this many times
# What the hub or the bytes say for good: the item is handed over marked with it (and not
# answered with status 01) rather than left in the inbox to fail again forever.
PERMANENT = (AttachmentNotFound, AttachmentDigestMismatch, InvalidChunk)

DownloadProgress = Callable[[AttachmentRef, int, int], None]  # (file, bytes done, total)


class Delivered(Protocol):
    """What :func:`fetch_item_files` reads and sets of an inbox item
    (:class:`~axis.client.agency.InboxItem`)."""

    error: AxisError | None
    package: Package | None
    files: dict[str, Path]

    @property
    def sender_system(self) -> str: ...


# -- pure parts ---------------------------------------------------------------------------


def read_sidecar(data: bytes, chunks: int) -> set[int]:
    """The chunk indices a sidecar records: one decimal index per line. Text after the
    last newline (a write cut short) and indices outside ``0..chunks-1`` are ignored."""
    held: set[int] = set()
    for line in data.split(b"\n")[:-1]:
        text = line.strip()
        if text.isdigit() and len(text) <= 15 and int(text) < chunks:
            held.add(int(text))
    return held


def chunk_problem(ref: AttachmentRef, index: int, reply: Reply) -> AttachmentError | None:
    """Why a chunk answer cannot be chunk ``index`` of ``ref``, or None if it is."""
    told = header_text(reply.headers.get(H_INDEX))
    if told != str(index):
        return InvalidChunk(f"asked for chunk {index} of {ref.name!r}, the answer is {told!r}",
                            index=index, sha256=ref.sha256)  # fmt: skip
    expected = chunk_length(ref.size, index)
    if len(reply.body) != expected:
        return InvalidChunk(f"chunk {index} of {ref.name!r} holds {len(reply.body)} bytes, "
                            f"not {expected}", index=index, sha256=ref.sha256)  # fmt: skip
    declared = header_text(reply.headers.get(H_CHUNK_SHA256)).lower()
    if declared != hashlib.sha256(reply.body).hexdigest():
        return AttachmentDigestMismatch(f"chunk {index} of {ref.name!r} does not match its "
                                        f"{H_CHUNK_SHA256}", index=index,
                                        sha256=ref.sha256)  # fmt: skip
    return None


def holds_signed_file(path: Path, ref: AttachmentRef) -> bool:
    """Whether ``path`` already is the file ``ref`` names: its size and the SHA-256 its
    sender signed. A file found there (left by an earlier run, or put there by anyone who
    can write to the folder) is handed over only once checked, as a download is."""
    try:
        whole = path.is_file() and path.stat().st_size == ref.size
    except OSError:  # removed meanwhile
        return False
    return whole and file_sha256(path) == ref.sha256


# -- one file on disk ---------------------------------------------------------------------


class PartFile:
    """``<sha256>.part`` and its sidecar of the chunks written and synced."""

    def __init__(self, folder: Path, ref: AttachmentRef) -> None:
        self.ref = ref
        self.folder = folder
        self.final = folder / ref.sha256
        self.part = folder / f"{ref.sha256}{PART_SUFFIX}"
        self.sidecar = folder / f"{ref.sha256}{HELD_SUFFIX}"
        self._fd = -1
        self._held_fd = -1

    def open(self) -> set[int]:
        """Open (or create) the part; the chunks it already holds."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # received files: private
        held: set[int] = set()
        if self.part.exists() and self.sidecar.exists():
            held = read_sidecar(self.sidecar.read_bytes(), self.ref.chunks)
        else:  # a sidecar without its part (or the reverse) records nothing usable
            self.sidecar.unlink(missing_ok=True)
        self._fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o666)  # as inline ones: umask
        os.ftruncate(self._fd, self.ref.size)
        self._held_fd = os.open(self.sidecar, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return held

    def write(self, index: int, data: bytes) -> None:
        """Write chunk ``index`` at its offset, sync it, then record it (synced)."""
        os.pwrite(self._fd, data, index * CHUNK_BYTES)
        os.fdatasync(self._fd)
        os.write(self._held_fd, f"{index}\n".encode())  # one short O_APPEND write per line
        os.fsync(self._held_fd)

    def finish(self) -> Path:
        """Hash the whole part; on a match sync it and rename it to ``<sha256>``."""
        if file_sha256(self.part) != self.ref.sha256:
            self.close()
            self.discard()
            raise AttachmentDigestMismatch(
                f"the downloaded {self.ref.name!r} does not have the SHA-256 its sender "
                "signed; the partial file was deleted", sha256=self.ref.sha256)  # fmt: skip
        os.fsync(self._fd)
        os.replace(self.part, self.final)
        self.close()
        self.sidecar.unlink(missing_ok=True)
        sync_dir(self.folder)
        return self.final

    def close(self) -> None:
        for fd in (self._fd, self._held_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._held_fd = -1

    def discard(self) -> None:
        self.part.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)


# -- downloading --------------------------------------------------------------------------


class FileDownload:
    """One file's download. After :meth:`run`: ``held_before`` chunks already on disk,
    ``fetched`` chunks fetched by this run."""

    def __init__(self, rpc: ChunkRpc, system_id: str, owner: str, ref: AttachmentRef,
                 folder: Path, *, progress: DownloadProgress | None = None,
                 window: int = DEFAULT_WINDOW) -> None:  # fmt: skip
        self.rpc, self.system_id, self.owner, self.ref = rpc, system_id, owner, ref
        self.folder, self.progress, self.window = folder, progress, window
        self.held_before = 0
        self.fetched = 0
        self._done = 0

    async def run(self) -> Path:
        """The file, whole and checked, at ``<folder>/<sha256>``."""
        ref = self.ref
        final = self.folder / ref.sha256
        if await in_thread(holds_signed_file, final, ref):
            self._report(ref.size)
            return final
        part = PartFile(self.folder, ref)
        held = await in_thread(part.open)
        try:
            self.held_before = len(held)
            self._report(bytes_of(ref.size, held))
            todo = missing_chunks(ref.chunks, held)
            await run_window(self.window, todo, lambda i: self._fetch(part, i))
            return await in_thread(part.finish)
        finally:
            part.close()

    async def _fetch(self, part: PartFile, index: int) -> None:
        ref = self.ref
        problem: AttachmentError | None = None
        for _ in range(CHUNK_ATTEMPTS):
            reply = await self.rpc.call(lambda cid: get_message(
                system_id=self.system_id, owner=self.owner, sha256=ref.sha256, size=ref.size,
                index=index, correlation_id=cid), GET_KEY)  # fmt: skip
            if reply.content_type.startswith(JSON):
                read_json_reply(reply, name=ref.name, sha256=ref.sha256, index=index)
                raise InvalidChunk(f"the hub answered chunk {index} of {ref.name!r} without "
                                   "its bytes", index=index, sha256=ref.sha256)  # fmt: skip
            problem = await in_thread(_check_and_write, part, index, reply)
            if problem is None:
                self.fetched += 1
                self._report(self._done + len(reply.body))
                return
        assert problem is not None
        raise problem

    def _report(self, done: int) -> None:
        self._done = done
        if self.progress is not None:
            self.progress(self.ref, min(done, self.ref.size), self.ref.size)


def _check_and_write(part: PartFile, index: int, reply: Reply) -> AttachmentError | None:
    problem = chunk_problem(part.ref, index, reply)
    if problem is None:
        part.write(index, reply.body)
    return problem


async def download_files(client: HubLink, refs: Sequence[AttachmentRef], owner: str,
                         folder: Path, *, progress: DownloadProgress | None = None,
                         window: int = DEFAULT_WINDOW,
                         timeout: float | None = None) -> dict[str, Path]:  # fmt: skip
    """Each distinct file of ``refs`` (sent by system ``owner``) downloaded whole into
    ``folder``, keyed by SHA-256."""
    files: dict[str, Path] = {}
    async with ChunkRpc(client.connection, timeout=timeout) as rpc:
        for ref in refs:
            if ref.sha256 not in files:
                download = FileDownload(rpc, client.config.system_id, owner, ref, folder,
                                        progress=progress, window=window)  # fmt: skip
                files[ref.sha256] = await download.run()
    return files


def default_download_dir(system_id: str) -> Path:
    """Where a client downloads streamed files unless told otherwise: in the user's own
    cache (``$XDG_CACHE_HOME``, else ``~/.cache``), not the shared temporary directory,
    where other local users could read or replace them. Stable, so a download resumes."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "axis" / "downloads" / "".join(c if c.isalnum() else "_" for c in system_id)


async def fetch_item_files(client: HubLink, item: Delivered, folder: Path, *,
                           progress: DownloadProgress | None = None,
                           window: int = DEFAULT_WINDOW) -> None:  # fmt: skip
    """Download the files ``item``'s verified document references into ``item.files``.

    A refusal for good (``attachment.not_found``, a damaged chunk or file) becomes the
    item's ``error``: it is handed over and stored marked with it. Anything else (the
    broker, a timeout) is raised: the item stays in the inbox and comes again, and its
    download resumes from the chunks already on disk.
    """
    if item.error is not None or not isinstance(item.package, DocumentPackage):
        return
    try:
        refs = references(item.package)
    except AxisError as error:
        item.error = error
        return
    if not refs:
        return
    try:
        item.files = await download_files(client, refs, item.sender_system, folder,
                                          progress=progress, window=window)  # fmt: skip
    except PERMANENT as error:
        item.error = error


__all__ = [
    "DownloadProgress",
    "FileDownload",
    "PartFile",
    "chunk_problem",
    "download_files",
    "fetch_item_files",
    "holds_signed_file",
    "read_sidecar",
]
