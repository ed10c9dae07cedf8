"""Read the profiles :mod:`bench.hub_worker` wrote: CPU per submission, stage by stage.

Times are thread CPU time (the profiler's timer is ``time.thread_time``) divided
by the number of submissions decided, so they add up to the hub process's CPU
per message; cProfile's own overhead inflates small, frequently called
functions more than large native calls (treat shares, not absolute values, as the
result).
"""

from __future__ import annotations

import pstats
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

TOTAL, REST = "*", "-"
# (indent, label, thread file, module path suffix, function name, show calls per submission).
# TOTAL: the thread's whole CPU; REST: the thread total minus the line just above.
STAGES: tuple[tuple[int, str, str, str, str, bool], ...] = (
    (0, "axis-cpu thread", "cpu", "", TOTAL, False),
    (1, "decide()", "cpu", "routing/decide.py", "decide", False),
    (2, "parse_tree (hardened parse)", "cpu", "envelopes/xmlsafe.py", "parse_tree", True),
    (2, "validate_tree (XSD, every call)", "cpu", "envelopes/schema.py", "validate_tree", True),
    (2, "verify (XMLDSig, fixed profile)", "cpu", "signing/verify.py", "verify", True),
    (2, "read_package (model + its XSD)", "cpu", "envelopes/parser.py", "read_package", True),
    (1, "records_for (receipt, rows)", "cpu", "routing/records.py", "records_for", False),
    (2, "sign_receipt", "cpu", "axis/receipts.py", "sign_receipt", True),
    (0, "event-loop thread", "main", "", TOTAL, False),
    (1, "Hub._on_submit (the handler)", "main", "routing/hub.py", "_on_submit", False),
    (2, "Outbox.deliveries", "main", "routing/outbox.py", "deliveries", False),
    (2, "Outbox.receipt", "main", "routing/outbox.py", "receipt", False),
    (2, "IncomingMessage.ack", "main", "aio_pika/message.py", "ack", False),
    (1, "rest: aiormq frames, confirms, loop", "main", "", REST, False),
    (0, "axis-db threads (store)", "db", "", TOTAL, False),
    (1, "Store.find_submission", "db", "axis/store.py", "find_submission", True),
    (1, "Store.record_submissions (batched)", "db", "axis/store.py", "record_submissions", True),
    (2, "evidence log appends", "db", "axis/evidence/log.py", "append", True),
)


@dataclass(frozen=True, slots=True)
class StageTime:
    """One line of the breakdown: CPU milliseconds per submission and calls per submission."""

    indent: int
    label: str
    ms: float
    calls: float


def _load(folder: Path) -> dict[str, pstats.Stats]:
    return {name: pstats.Stats(str(folder / f"{name}.prof"))
            for name in ("main", "cpu", "db") if (folder / f"{name}.prof").exists()}


def _find(stats: pstats.Stats, suffix: str, name: str) -> tuple[int, float]:
    """(calls, cumulative seconds) of the function ``name`` in a file ending with ``suffix``.

    When the file has several functions of that name (``verify`` and
    ``Verifier.verify``), the outermost one (largest cumulative time) counts:
    adding them up would count the inner one twice.
    """
    best = (0, 0.0)
    table = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, nc, _tt, ct, _callers) in table.items():
        if function == name and filename.replace("\\", "/").endswith(suffix) and ct > best[1]:
            best = (nc, ct)
    return best


def breakdown(folder: Path) -> tuple[int, list[StageTime]]:
    """(submissions decided, stage lines) from the profiles in ``folder``."""
    profiles = _load(folder)
    submissions, _ = _find(profiles["cpu"], "routing/decide.py", "decide")
    lines: list[StageTime] = []
    for indent, label, thread, suffix, name, show_calls in STAGES:
        stats = profiles.get(thread)
        if stats is None or submissions == 0:
            continue
        total: float = stats.total_tt  # type: ignore[attr-defined]
        if name == TOTAL:
            calls, seconds = 0, total
        elif name == REST:
            calls, seconds = 0, total - _find(stats, "routing/hub.py", "_on_submit")[1]
        else:
            calls, seconds = _find(stats, suffix, name)
        shown = calls / submissions if show_calls else 0.0
        lines.append(StageTime(indent, label, seconds * 1000 / submissions, shown))
    return submissions, lines


def top_functions(folder: Path, limit: int = 15) -> list[tuple[str, float, float]]:
    """(function, own ms per submission, cumulative ms per submission), heaviest own time first."""
    profiles = _load(folder)
    submissions, _ = _find(profiles["cpu"], "routing/decide.py", "decide")
    merged: dict[str, tuple[float, float]] = {}
    for thread, stats in profiles.items():
        table = stats.stats  # type: ignore[attr-defined]
        for (filename, line, function), (_cc, _nc, tt, ct, _callers) in table.items():
            where = f"{_short(filename)}:{line}({function}) [{thread}]"
            merged[where] = (tt * 1000 / submissions, ct * 1000 / submissions)
    ranked = sorted(merged.items(), key=lambda item: item[1][0], reverse=True)[:limit]
    return [(where, own, cumulative) for where, (own, cumulative) in ranked]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def report_profile(folder: Path, out: TextIO) -> None:
    """Print the stage breakdown and the heaviest functions."""
    submissions, lines = breakdown(folder)
    total = sum(line.ms for line in lines if line.indent == 0)
    out.write(f"CPU per submission ({submissions} submissions profiled; "
              f"all threads {total:.2f} ms):\n")
    for line in lines:
        calls = f"  x{line.calls:.1f}" if line.calls else ""
        share = line.ms / total if total else 0.0
        out.write(f"  {'  ' * line.indent}{line.label:<{40 - 2 * line.indent}} "
                  f"{line.ms:>7.2f} ms {share:>5.0%}{calls}\n")
    out.write("\nheaviest functions (own CPU ms per submission, cumulative):\n")
    out.writelines(f"  {own:>6.3f} {cumulative:>7.3f}  {where}\n"
                   for where, own, cumulative in top_functions(folder))
