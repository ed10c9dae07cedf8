"""The hub's streamed attachments on disk: chunks in, checked files out, old ones swept.

One folder per uploading system; a file is named by its SHA-256::

    <root>/<system>/<sha256>.meta     the declared size; its mtime is the upload's last activity
    <root>/<system>/<sha256>.part     chunks written at their offsets (os.pwrite)
    <root>/<system>/<sha256>.held     the indices written, one per line (append-only)
    <root>/<system>/<sha256>.bin      the whole file, once its SHA-256 matched
    <root>/<system>/<sha256>.grants   systems that may download it, one per line
    <root>/<system>/<sha256>.kept     when it was last granted (retention counts from it)
    <root>/<system>/<sha256>.mismatch the whole file did not match: the upload was dropped

Memory does not grow with the file: a chunk is written and forgotten, the whole file
is hashed in 1 MiB reads. Several hub processes may share the folder: every change to
one file happens under an exclusive ``flock`` on ``<sha256>.lock``, and a system's
new uploads are counted against its quota under an exclusive ``flock`` on ``<system>/quota``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from axis.files import file_sha256, sync_dir, temporary_of, write_atomic
from axis.settings import Settings
from envelopes.attachment_refs import CHUNK_BYTES, chunk_count, chunk_length
from routing.contract_attachments import ChunkAddress
from routing.errors import (
    AttachmentDigestMismatch,
    AttachmentIncomplete,
    AttachmentNotFound,
    AttachmentQuotaExceeded,
    AttachmentTooLarge,
    InvalidChunk,
)
from routing.ports import PutOutcome

_N = TypeVar("_N", int, float)
_SUFFIXES = ("meta", "part", "held", "bin", "grants", "kept", "mismatch", "lock")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep removed."""

    abandoned: int = 0
    expired: int = 0
    bytes_freed: int = 0


class AttachmentStore:
    """Streamed attachments in a local folder (a :class:`routing.ports.AttachmentKeeper`)."""

    def __init__(self, root: Path, *, max_bytes: int, quota_bytes: int,
                 retention_seconds: float, abandon_seconds: float) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.quota_bytes = quota_bytes
        self.retention_seconds = retention_seconds
        self.abandon_seconds = abandon_seconds

    # -- uploads -------------------------------------------------------------------------

    def put(self, owner: str, address: ChunkAddress, data: bytes) -> PutOutcome:
        """Store one chunk (already checked against its own digest); idempotent."""
        if address.size > self.max_bytes:
            raise AttachmentTooLarge(
                f"a file of {address.size} bytes exceeds the hub's limit of {self.max_bytes}",
                size=address.size, limit=self.max_bytes)  # fmt: skip
        files = _Files(self._own_folder(owner), address.sha256)
        chunks = chunk_count(address.size)
        with files.locked():
            if files.done.exists():
                return PutOutcome(held=chunks, complete=True)
            self._begin(owner, files, address.size)
            fd = os.open(files.part, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.pwrite(fd, data, address.index * CHUNK_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
            _append_line(files.held, str(address.index))
            held = _read_held(files.held)
            if len(held) < chunks:
                return PutOutcome(held=len(held), complete=False)
            self._finish(files, address)
            return PutOutcome(held=chunks, complete=True)

    def held(self, owner: str, sha256: str, size: int) -> tuple[list[int], bool]:
        """The chunk indices held of a file, and whether it is whole and checked."""
        files = _Files(self._folder(owner), sha256)
        if _size_of(files.done) == size:
            return list(range(chunk_count(size))), True
        if _declared_size(files.meta) != size:
            return [], False
        return sorted(_read_held(files.held)), False

    def state_of(self, owner: str, sha256: str, size: int) -> str:
        """``complete``, ``mismatch``, ``partial`` or ``missing`` (for the hub's decision)."""
        files = _Files(self._folder(owner), sha256)
        if _size_of(files.done) == size:
            return "complete"
        if files.mismatch.exists():
            return "mismatch"
        return "partial" if files.meta.exists() else "missing"

    def _begin(self, owner: str, files: _Files, size: int) -> None:
        declared = _declared_size(files.meta)
        if declared is not None and declared != size:
            raise InvalidChunk(f"this file was begun with size {declared}, not {size}")
        if declared is not None:
            os.utime(files.meta)  # activity: not abandoned
            return
        with _locked(files.folder / "quota"):  # concurrent new uploads: one at a time
            used = self.used_bytes(owner)
            if used + size > self.quota_bytes:
                raise AttachmentQuotaExceeded(
                    f"system {owner} holds {used} bytes of attachments; {size} more exceed "
                    f"its quota of {self.quota_bytes}", used=used, quota=self.quota_bytes)
            files.mismatch.unlink(missing_ok=True)  # a fresh attempt after a mismatch
            write_atomic(files.meta, str(size).encode())

    def _finish(self, files: _Files, address: ChunkAddress) -> None:
        if file_sha256(files.part) != address.sha256:
            for path in (files.part, files.held, files.meta):
                path.unlink(missing_ok=True)
            write_atomic(files.mismatch, b"")
            raise AttachmentDigestMismatch(
                f"the file's chunks do not make a file with SHA-256 {address.sha256}; "
                "the upload was discarded", sha256=address.sha256)  # fmt: skip
        os.replace(files.part, files.done)
        files.held.unlink(missing_ok=True)
        sync_dir(files.folder)

    def used_bytes(self, owner: str) -> int:
        """Bytes of files begun or held for ``owner`` (what its quota counts)."""
        return sum(_declared_size(meta) or 0 for meta in self._folder(owner).glob("*.meta"))

    def usage(self) -> dict[str, int]:
        """What the folder holds: whole files and uploads in progress, counted and in bytes
        (their declared sizes)."""
        counts = {"files": 0, "file_bytes": 0, "uploads": 0, "upload_bytes": 0}
        for meta in self.root.glob("*/*.meta"):
            whole = meta.with_suffix(".bin").exists()
            kind = "file" if whole else "upload"
            counts[f"{kind}s"] += 1
            counts[f"{kind}_bytes"] += _declared_size(meta) or 0
        return counts

    # -- downloads -----------------------------------------------------------------------

    def grant(self, owner: str, sha256: str, recipients: Sequence[str]) -> None:
        """Let ``recipients`` download ``owner``'s file; retention restarts now."""
        files = _Files(self._own_folder(owner), sha256)
        with files.locked():
            if not files.done.exists():  # swept since the decision looked: refuse, not grant
                raise AttachmentIncomplete(f"the hub no longer holds the whole file {sha256}",
                                           sha256=sha256)  # fmt: skip
            known = set(_lines(files.grants))
            for system in recipients:
                if system not in known:
                    _append_line(files.grants, system)
            write_atomic(files.kept, str(time.time()).encode())

    def read_chunk(self, requester: str, address: ChunkAddress) -> bytes:
        """Chunk ``address.index`` of a file ``address.owner`` sent ``requester`` (or its own)."""
        files = _Files(self._folder(address.owner), address.sha256)
        if not address.owner or _size_of(files.done) != address.size or not (
                requester == address.owner or requester in _lines(files.grants)):
            raise AttachmentNotFound(
                f"no attachment {address.sha256} from {address.owner!r} for system {requester}")
        with files.done.open("rb") as handle:
            handle.seek(address.index * CHUNK_BYTES)
            return handle.read(chunk_length(address.size, address.index))

    # -- retention -----------------------------------------------------------------------

    def sweep(self, now: datetime | None = None) -> SweepResult:
        """Drop uploads idle past ``abandon_seconds`` and files kept past ``retention_seconds``
        (a whole file never granted counts as an idle upload)."""
        moment = now.timestamp() if now is not None else time.time()
        abandoned = expired = freed = 0
        # Every file has its lock: one left by a refused or discarded upload goes too.
        for lock in self.root.glob("*/*.lock"):
            files = _Files(lock.parent, lock.name.removesuffix(".lock"))
            with files.locked():
                kind, size = self._due(files, moment)
                if kind is None:
                    continue
                for path in files.all():
                    path.unlink(missing_ok=True)
            freed += size
            abandoned += kind == "abandoned"
            expired += kind == "expired"
        return SweepResult(abandoned=abandoned, expired=expired, bytes_freed=freed)

    def _due(self, files: _Files, moment: float) -> tuple[str | None, int]:
        """Whether ``files`` go (``expired``, ``abandoned``, ``""`` for no upload at all),
        and the bytes that frees."""
        kept, done = _number(files.kept, float), _size_of(files.done)
        if done is not None and kept is not None:
            return ("expired", done) if moment - kept > self.retention_seconds else (None, 0)
        last = _mtime(files.meta)
        if last is None:  # a discarded upload's tombstone, or a lock and nothing else
            tomb = _mtime(files.mismatch)
            return ("", 0) if tomb is None or moment - tomb > self.abandon_seconds else (None, 0)
        if moment - last > self.abandon_seconds:
            return "abandoned", done if done is not None else (_size_of(files.part) or 0)
        return None, 0

    def _folder(self, owner: str) -> Path:
        """``owner``'s folder (which may not exist yet)."""
        return self.root / (owner if _SAFE_NAME.fullmatch(owner) else _hashed_name(owner))

    def _own_folder(self, owner: str) -> Path:
        """``owner``'s folder, created if need be."""
        folder = self._folder(owner)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


@dataclass(frozen=True, slots=True)
class _Files:
    folder: Path
    sha256: str

    def _path(self, suffix: str) -> Path:
        return self.folder / f"{self.sha256}.{suffix}"

    @property
    def meta(self) -> Path:
        return self._path("meta")

    @property
    def part(self) -> Path:
        return self._path("part")

    @property
    def held(self) -> Path:
        return self._path("held")

    @property
    def done(self) -> Path:
        return self._path("bin")

    @property
    def grants(self) -> Path:
        return self._path("grants")

    @property
    def kept(self) -> Path:
        return self._path("kept")

    @property
    def mismatch(self) -> Path:
        return self._path("mismatch")

    @property
    def lock(self) -> Path:
        return self._path("lock")

    def all(self) -> tuple[Path, ...]:
        """Every file of this upload, with the temporaries an atomic write may leave."""
        paths = tuple(self._path(suffix) for suffix in _SUFFIXES)
        return paths + tuple(temporary_of(path) for path in paths)

    def locked(self) -> AbstractContextManager[None]:
        return _locked(self.lock)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; a lock file the sweep removed while this
    waited is not the lock any more: take the new one."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)  # closing releases the lock


def attachment_store_for(settings: Settings) -> AttachmentStore:
    """The attachment store a hub home's settings describe."""
    return AttachmentStore(
        settings.attachments_path,
        max_bytes=settings.max_attachment_bytes,
        quota_bytes=settings.attachment_quota_bytes,
        retention_seconds=settings.attachment_retention_days * 86_400.0,
        abandon_seconds=settings.upload_abandon_hours * 3_600.0,
    )


def _hashed_name(owner: str) -> str:
    """A folder name for any other system name: its digest, after a prefix no safe name
    starts with (no collision with a system of that name)."""
    return "_" + hashlib.sha256(owner.encode()).hexdigest()


def _read_held(path: Path) -> set[int]:
    return {int(line) for line in _lines(path) if line.isdigit()}


def _lines(path: Path) -> list[str]:
    try:  # one entry per line: a system id is never split at a space
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _append_line(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _declared_size(meta: Path) -> int | None:
    return _number(meta, int)


def _number(path: Path, kind: Callable[[str], _N]) -> _N | None:
    try:
        return kind(path.read_text(encoding="ascii"))
    except (FileNotFoundError, ValueError):
        return None


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None
