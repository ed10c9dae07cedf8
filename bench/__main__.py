"""``python -m bench [all|verify|hub|refusal|directory|sign|faults] [--quick] [options of it]``.

``all`` (the default) runs :mod:`bench.bench_verify`, :mod:`bench.bench_hub` and
:mod:`bench.bench_refusal` (what refused input costs the hub) with their defaults
(about 1.5 minutes on 2 cores); ``--quick`` shortens the first two
(well under a minute). ``directory`` (:mod:`bench.bench_directory`: the national organ
directory, both code forms, about 30 s), ``sign`` (:mod:`bench.bench_sign`: receipt signing,
signxml against the fixed-shape signer, about 20 s), ``attachments``
(:mod:`bench.bench_attachments`: a 1 GB streamed file A → B through ``axis serve``, with
every process's peak memory, about 1 minute) and ``faults`` (:mod:`bench.faults`, the
fault-injection suite on private RabbitMQ and PostgreSQL nodes, ``make faults``, about ten
minutes) run only when named. Options after the name go
to that benchmark alone, e.g. ``python -m bench hub --count 5000 --workers 1 2 3``.
With ``--json`` standard output is that benchmark's
one JSON object; the headings and tables go to stderr.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import (
    bench_attachments,
    bench_directory,
    bench_hub,
    bench_refusal,
    bench_sign,
    faults,
)

QUICK_VERIFY_SECONDS = "0.4"


def _verify(quick: bool, extra: Sequence[str]) -> None:
    args = ["--seconds", QUICK_VERIFY_SECONDS] if quick else []
    subprocess.run([sys.executable, "-m", "bench.bench_verify", *args, *extra],
                   cwd=Path(__file__).resolve().parents[1], check=True)


def _hub(quick: bool, extra: Sequence[str]) -> None:
    bench_hub.main([*(["--quick"] if quick else []), *extra])


def _refusal(quick: bool, extra: Sequence[str]) -> None:
    bench_refusal.main(list(extra))


def _directory(quick: bool, extra: Sequence[str]) -> None:
    bench_directory.main(list(extra))


def _sign(quick: bool, extra: Sequence[str]) -> None:
    bench_sign.main(list(extra))


def _attachments(quick: bool, extra: Sequence[str]) -> None:
    bench_attachments.main([*(["--size-mb", "100"] if quick else []), *extra])


def _faults(quick: bool, extra: Sequence[str]) -> None:
    if faults.main(list(extra)) != 0:
        raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the chosen benchmarks in order, each under a heading with its wall time."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="all",
                        choices=("all", "verify", "hub", "refusal", "directory", "sign",
                                 "attachments", "faults"))
    parser.add_argument("--quick", action="store_true", help="shorter runs (< 1 minute in all)")
    args, extra = parser.parse_known_args(argv)
    if extra and args.which == "all":
        parser.error(f"options {' '.join(extra)} need a benchmark name (verify or hub)")
    chosen = [("verify", _verify), ("hub", _hub), ("refusal", _refusal),
              ("directory", _directory), ("sign", _sign), ("attachments", _attachments),
             ("faults", _faults)]  # fmt: skip
    only_named = ("directory", "sign", "attachments", "faults")
    for name, run in chosen:
        if args.which != name and (args.which != "all" or name in only_named):
            continue
        # With --json the benchmark's one object is the whole of standard output.
        headings = sys.stderr if "--json" in extra else sys.stdout
        print(f"== bench {name}{' (quick)' if args.quick else ''} ==", flush=True, file=headings)
        started = time.perf_counter()
        run(args.quick, extra)
        print(f"== bench {name}: {time.perf_counter() - started:.0f} s ==\n", flush=True,
              file=headings)


if __name__ == "__main__":
    main()
