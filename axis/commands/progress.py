"""Progress bars on stderr for long transfers (streamed attachments), drawn by rich.

Shown only to a person: not with ``--json``, not with ``--no-progress``, not when
stderr is not a terminal.
"""

from __future__ import annotations

import sys
from types import TracebackType

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

NoProgressOption = typer.Option(
    False, "--no-progress", help="No progress bars on stderr (none with --json or off a terminal)."
)


def progress_wanted(as_json: bool, no_progress: bool) -> bool:
    """Whether bars are drawn: a person watches stderr and asked for words, not JSON."""
    return not as_json and not no_progress and sys.stderr.isatty()


class Bars:
    """One bar per key, made on its first report; does nothing when not ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Bars:
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        if self._progress is not None:
            self._progress.stop()

    def update(self, key: str, label: str, done: int, total: int) -> None:
        """Bar ``key`` (titled ``label``) stands at ``done`` of ``total`` bytes."""
        if self._progress is None:
            return
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(label, total=total)
        self._progress.update(self._tasks[key], completed=done, total=total)


__all__ = ["Bars", "NoProgressOption", "progress_wanted"]
