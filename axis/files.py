"""Small file-system steps shared by the hub's and the SDK's durable writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

HASH_READ = 1024 * 1024  # bytes read per step when hashing a file: memory stays flat


def sync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename or a new file in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file of any size, read in :data:`HASH_READ` steps."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_READ):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename: a reader sees the old file or the new."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
