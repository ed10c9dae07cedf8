"""Progress bars on stderr for long transfers (streamed attachments).

Shown only to a person: not with ``--json``, not with ``--no-progress``, not when
stderr is not a terminal. rich draws them when it is installed (it comes with typer),
else click's bar (``typer.progressbar``).
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from types import TracebackType
from typing import Any

import typer

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
        self._stack = ExitStack()
        self._rich: Any = None
        self._tasks: dict[str, Any] = {}
        self._done: dict[str, int] = {}

    def __enter__(self) -> Bars:
        if self.enabled:
            self._rich = _rich_progress()
            if self._rich is not None:
                self._stack.enter_context(self._rich)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self._stack.close()

    def update(self, key: str, label: str, done: int, total: int) -> None:
        """Bar ``key`` (titled ``label``) stands at ``done`` of ``total`` bytes."""
        if not self.enabled:
            return
        if self._rich is not None:
            if key not in self._tasks:
                self._tasks[key] = self._rich.add_task(label, total=total)
            self._rich.update(self._tasks[key], completed=done, total=total)
            return
        if key not in self._tasks:
            bar = typer.progressbar(length=total, label=label, file=sys.stderr)
            self._tasks[key] = self._stack.enter_context(bar)
            self._done[key] = 0
        self._tasks[key].update(done - self._done[key])
        self._done[key] = done


def _rich_progress() -> Any:
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
    except ImportError:
        return None
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True))  # fmt: skip


__all__ = ["Bars", "NoProgressOption", "progress_wanted"]
