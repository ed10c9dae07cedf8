"""The end-to-end hub benchmark's report: the table, the half-load lines and the JSON object.

The peak rows are medians of interleaved rounds (:func:`median_run`); the half-load pair
(:class:`HalfLoad`) is the best hub row's worker count paced at half its peak, beside the
pass-through paced at the same rate. :func:`summary` turns all of it into the one JSON
object of ``python -m bench hub --json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from bench.hub_load import LoadResult

PT_LABEL = "aio-pika pass-through"
NO_LOG_LABEL = "hub, 1 worker, no log"
HALF_LOAD_P99_TARGET_MS = 25.0


def hub_label(workers: int) -> str:
    return f"hub, {workers} worker{'s' if workers > 1 else ''}"


@dataclass(frozen=True, slots=True)
class Row:
    """One kind of run: its median result and every round's throughput."""

    label: str
    workers: int  # 0 for the pass-through
    median: LoadResult
    runs: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class HalfLoad:
    """The hub (``workers`` processes) and the pass-through, both paced at ``rate``."""

    workers: int
    rate: float
    peak: float
    count: int
    hub: LoadResult
    passthrough: LoadResult

    @property
    def met(self) -> bool:
        return self.hub.p99_ms <= HALF_LOAD_P99_TARGET_MS


def median_run(results: Sequence[LoadResult]) -> LoadResult:
    """The run with the median throughput (the lower middle one for an even count)."""
    return sorted(results, key=lambda r: r.per_second)[(len(results) - 1) // 2]


def best_hub(rows: Sequence[Row]) -> Row | None:
    """The hub row (with the evidence log) of the highest median throughput."""
    hubs = [row for row in rows if row.workers and row.label != NO_LOG_LABEL]
    return max(hubs, key=lambda row: row.median.per_second, default=None)


# -- the table -------------------------------------------------------------------------


def _row(label: str, r: LoadResult, base: LoadResult | None) -> str:
    ratio = f"{r.per_second / base.per_second:>7.0%}" if base else f"{'base':>7}"
    return (f"{label:<26} {r.per_second:>7.0f} {ratio} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} "
            f"{r.serial_p50_ms:>8.1f} {r.serial_p99_ms:>8.1f} {r.hub_cpu_ms:>8.2f} "
            f"{r.broker_cpu_ms:>8.2f} {r.load_cpu_ms:>8.2f} {r.machine_busy:>6.0%}")


def print_table(rows: Sequence[Row], out: TextIO) -> None:
    """The peak rows, each against the first (the pass-through)."""
    base = rows[0].median
    print(f"{'':<26} {'msg/s':>7} {'vs pt':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'ser p50':>8} {'ser p99':>8} {'proc CPU':>8} {'broker':>8} {'load':>8} {'box':>6}",
          file=out)
    print(f"{'':<26} {'':>7} {'':>7} {'(loaded)':>8} {'(loaded)':>8} "
          f"{'ms':>8} {'ms':>8} {'ms/msg':>8} {'ms/msg':>8} {'ms/msg':>8} {'busy':>6}", file=out)
    for row in rows:
        print(_row(row.label, row.median, None if row.median is base else base), file=out)


def print_half_load(half: HalfLoad, out: TextIO) -> None:
    """The paced pair and the verdict on the p99 target."""
    print(f"\nhalf load: paced at {half.rate:.0f} msg/s (half the peak of "
          f"{hub_label(half.workers)}, {half.peak:.0f} msg/s), {half.count} messages, "
          f"open loop (one publish every {1000 / half.rate:.2f} ms)", file=out)
    print(f"{'':<26} {'got':>7} {'p50 ms':>8} {'p99 ms':>8} {'lag p99':>8} {'proc CPU':>8} "
          f"{'broker':>8} {'load':>8} {'box':>6}", file=out)
    print(f"{'':<26} {'msg/s':>7} {'':>8} {'':>8} {'ms':>8} {'ms/msg':>8} {'ms/msg':>8} "
          f"{'ms/msg':>8} {'busy':>6}", file=out)
    for label, r in ((PT_LABEL, half.passthrough), (hub_label(half.workers), half.hub)):
        print(f"{label:<26} {r.per_second:>7.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} "
              f"{r.lag_p99_ms:>8.2f} {r.hub_cpu_ms:>8.2f} {r.broker_cpu_ms:>8.2f} "
              f"{r.load_cpu_ms:>8.2f} {r.machine_busy:>6.0%}", file=out)
    print(f"p99 at half load ≤ {HALF_LOAD_P99_TARGET_MS:g} ms: "
          f"{'met' if half.met else 'NOT met'} ({half.hub.p99_ms:.1f} ms; the pass-through "
          f"{half.passthrough.p99_ms:.1f} ms at the same rate)", file=out)


def log_cost_pair(rows: Sequence[Row]) -> tuple[LoadResult, LoadResult] | None:
    """One worker's figures with the evidence log and without it, if both were run."""
    medians = {row.label: row.median for row in rows}
    if NO_LOG_LABEL in medians and hub_label(1) in medians:
        return medians[hub_label(1)], medians[NO_LOG_LABEL]
    return None


def log_cost(with_log: LoadResult, without: LoadResult) -> float:
    """The share of throughput the evidence log costs."""
    return 1 - with_log.per_second / without.per_second


def print_log_cost(rows: Sequence[Row], out: TextIO) -> None:
    """What the evidence log costs one worker, from the rows with and without it."""
    pair = log_cost_pair(rows)
    if pair is not None:
        with_log, without = pair
        print(f"\nevidence log cost (1 worker, same run): "
              f"{log_cost(with_log, without):.1%} of throughput "
              f"({with_log.per_second:.0f} msg/s with the log, "
              f"{without.per_second:.0f} without); hub CPU "
              f"{with_log.hub_cpu_ms:.2f} vs {without.hub_cpu_ms:.2f} ms/msg", file=out)


# -- the JSON object -------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def result_json(r: LoadResult) -> dict[str, Any]:
    """One run's figures under the JSON report's names (no NaN: ``null``)."""
    return {
        "msgs_per_s": r.per_second, "count": r.count, "seconds": r.seconds,
        "p50_ms": _finite(r.p50_ms), "p99_ms": _finite(r.p99_ms),
        "serial_p50_ms": _finite(r.serial_p50_ms), "serial_p99_ms": _finite(r.serial_p99_ms),
        "process_cpu_ms_per_msg": r.hub_cpu_ms, "broker_cpu_ms_per_msg": r.broker_cpu_ms,
        "load_cpu_ms_per_msg": r.load_cpu_ms, "box_busy": r.machine_busy,
        "rate_msgs_per_s": r.rate or None, "publish_lag_p99_ms": r.lag_p99_ms if r.rate else None,
        "publish_lag_max_ms": r.lag_max_ms if r.rate else None,
        "load_event_loop": r.event_loop, "receipts": r.receipts,
    }  # fmt: skip


def _row_json(row: Row, base: LoadResult) -> dict[str, Any]:
    kind = "passthrough" if not row.workers else "hub_no_log" if row.label == NO_LOG_LABEL \
        else "hub"
    return {"label": row.label, "kind": kind, "workers": row.workers,
            "ratio": row.median.per_second / base.per_second,
            **result_json(row.median), "rounds_msgs_per_s": list(row.runs)}  # fmt: skip


def summary(rows: Sequence[Row], half: HalfLoad | None, event_loop: str,
            params: dict[str, Any]) -> dict[str, Any]:
    """The whole report as one JSON object (headline figures first)."""
    base = rows[0].median
    best = best_hub(rows)
    pair = log_cost_pair(rows)
    return {
        "passthrough_msgs_per_s": base.per_second,
        "hub_msgs_per_s": best.median.per_second if best else None,
        "workers": best.workers if best else None,
        "hub_ratio": best.median.per_second / base.per_second if best else None,
        "p50_ms": half.hub.p50_ms if half else None,
        "p99_ms": half.hub.p99_ms if half else None,
        "event_loop": event_loop,
        "half_load": None if half is None else {
            "workers": half.workers, "rate_msgs_per_s": half.rate, "peak_msgs_per_s": half.peak,
            "count": half.count, "p99_target_ms": HALF_LOAD_P99_TARGET_MS,
            "p99_target_met": half.met, "hub": result_json(half.hub),
            "passthrough": result_json(half.passthrough),
            "p99_vs_passthrough": half.hub.p99_ms / half.passthrough.p99_ms,
        },
        "rows": [_row_json(row, base) for row in rows],
        "evidence_log_cost": None if pair is None else log_cost(*pair),
        "params": params,
    }  # fmt: skip
