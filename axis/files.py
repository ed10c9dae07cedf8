"""Small file-system steps shared by the hub's and the SDK's file writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename or a new file in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file of any size, read in steps: memory stays flat."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def temporary_of(path: Path) -> Path:
    """Where :func:`write_atomic` writes before the rename (hidden beside ``path``)."""
    return path.with_name(f".{path.name}.tmp")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename: a reader sees the old file or the new
    (atomic, not synced: a crash may keep the old one)."""
    temporary = temporary_of(path)
    temporary.write_bytes(data)
    os.replace(temporary, path)
