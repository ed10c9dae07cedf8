"""A process's peak resident memory, as Linux reports it."""

from __future__ import annotations

from pathlib import Path


def peak_rss_bytes(pid: int) -> int:
    """Peak resident memory so far (``VmHWM`` in ``/proc/<pid>/status``) of a running
    process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")
