"""The national organ directory at scale: ``python -m bench directory [--json] [--postgres]``.

Generates a synthetic national directory of 111,339 organs with both code forms (a
tree: 63 provinces and 30 ministries → 40 departments each → units; every organ has
a QCVN 102 ``organ_id`` and a QĐ 20/2020 ``d20_code``, one in twenty an old code it
``replaces``; parents given in either form), writes it as CSV and as JSON Lines, and
imports each into a fresh SQLite store (and PostgreSQL with ``--postgres``) through
``axis directory import``'s path (check pass, then one transaction), each import in a
child process of its own so its peak RSS (VmHWM) is its own. Then it loads the registry
snapshot (time, and the memory it holds, by tracemalloc) and measures
``serving_system`` lookups per second by each form against a same-run baseline:
lookups by the primary id, and a plain ``dict.get`` of primary id → system.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from axis.registry import OrganRow, RegistrySnapshot

N = 111_339
PROVINCES, MINISTRIES, DEPARTMENTS = 63, 30, 40
PROBES = 500_000
DEPT_SYSTEMS = 200
# A role that may create databases: by default the test suite's own (.ci/postgres-test-db),
# reached with its password as on a stock Debian server.
ADMIN_URL = os.environ.get("AXIS_BENCH_POSTGRES_URL",
                           "postgresql://axis_test:axis-test-only@127.0.0.1:5432/axis_test")


def roots() -> list[tuple[str, str, str]]:
    """(QCVN 102 code, QĐ 20 code, name) of the provinces and ministries."""
    provinces = [(f"000.00.00.H{p:02d}", f"H{p:02d}", f"UBND tỉnh số {p}")
                 for p in range(1, PROVINCES + 1)]  # fmt: skip
    ministries = [(f"000.00.00.G{m:02d}", f"G{m:02d}", f"Bộ số {m}")
                  for m in range(1, MINISTRIES + 1)]  # fmt: skip
    return provinces + ministries


def national_directory(count: int = N) -> Iterator[OrganRow]:
    """``count`` organs, roots first, then departments, then units (streamed)."""
    top = roots()
    departments: list[tuple[str, str]] = []
    made = 0
    for qcvn, d20, name in top:
        if made == count:
            return
        made += 1
        yield OrganRow(qcvn, name, None, d20_code=d20)
    for qcvn, d20, name in top:
        for d in range(1, DEPARTMENTS + 1):
            if made == count:
                return
            made += 1
            departments.append((f"000.00.{d:02d}.{d20}", f"{d20}.{d:02d}"))
            # Departments name their parent by its QCVN 102 code.
            yield OrganRow(departments[-1][0], f"Sở {d} thuộc {name}", qcvn,
                           d20_code=departments[-1][1])  # fmt: skip
    k = 0
    while made < count:
        dept_qcvn, dept_d20 = departments[k % len(departments)]
        unit = k // len(departments) + 1
        qcvn = f"{unit:03d}.00.{dept_qcvn[7:]}"
        old = (f"{unit:03d}.99.{dept_qcvn[7:]}",) if k % 20 == 0 else ()
        # Units name their parent by its QĐ 20 code.
        yield OrganRow(qcvn, f"Phòng {unit} thuộc {dept_d20}", dept_d20,
                       d20_code=f"{dept_d20}.{unit:03d}", replaces=old)  # fmt: skip
        made += 1
        k += 1


def write_files(folder: Path, count: int) -> dict[str, Path]:
    """The directory as ``organs.csv`` and ``organs.jsonl`` in ``folder``."""
    import csv

    paths = {"csv": folder / "organs.csv", "jsonl": folder / "organs.jsonl"}
    with paths["csv"].open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["organ_id", "name", "parent_id", "d20_code", "replaces"])
        for row in national_directory(count):
            writer.writerow([row.organ_id, row.name, row.parent_id or "", row.d20_code,
                             ";".join(row.replaces)])  # fmt: skip
    with paths["jsonl"].open("w", encoding="utf-8") as out:
        for row in national_directory(count):
            item = {"organ_id": row.organ_id, "name": row.name, "parent_id": row.parent_id,
                    "d20_code": row.d20_code, **({"replaces": list(row.replaces)}
                                                 if row.replaces else {})}  # fmt: skip
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
    return paths


def register_systems(url: str) -> None:
    """One system per province (by its QCVN 102 code) and per ministry (by its QĐ 20
    code: the import merges its placeholder organ), and ``DEPT_SYSTEMS`` departments."""
    from axis.store import Store

    store = Store(url)
    store.create_all()
    for qcvn, d20, _ in roots():
        store.add_system(qcvn if qcvn[-3] == "H" else d20, f"system {d20}")
    for k in range(DEPT_SYSTEMS):
        root = roots()[k % len(roots())][1]
        store.add_system(f"000.00.{k // len(roots()) + 1:02d}.{root}", f"dept system {k}")
    store.dispose()


def peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def import_child(url: str, path: Path, fmt: str) -> dict[str, Any]:
    """One import as ``axis directory import`` does it (run in a child process)."""
    from axis.directory import read_directory
    from axis.store import Store

    store = Store(url)
    store.create_all()
    rss_before = peak_rss_bytes()
    started = time.perf_counter()
    rows = read_directory(path, fmt)
    checked = time.perf_counter()
    counts = store.import_directory(rows)
    done = time.perf_counter()
    store.dispose()
    return {"format": fmt, "file_bytes": path.stat().st_size, "rows": counts.rows,
            "aliases": counts.aliases, "merged": len(counts.merged),
            "check_s": checked - started, "insert_s": done - checked, "total_s": done - started,
            "rss_before_import_bytes": rss_before, "rss_peak_bytes": peak_rss_bytes()}  # fmt: skip


def _run_child(url: str, path: Path, fmt: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.bench_directory", "--child", url,
                          str(path), fmt], cwd=Path(__file__).resolve().parents[1],
                         check=True, capture_output=True, text=True)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def snapshot_figures(url: str) -> tuple[RegistrySnapshot, dict[str, Any]]:
    """Load the snapshot twice: timed, then under tracemalloc for the memory it holds."""
    from axis.store import Store

    store = Store(url)
    started = time.perf_counter()
    snapshot = store.load_snapshot()
    load_s = time.perf_counter() - started
    del snapshot
    tracemalloc.start()
    snapshot = store.load_snapshot()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    store.dispose()
    return snapshot, {"load_s": load_s, "held_bytes": held, "organs": len(snapshot.organ_names),
                      "aliases": len(snapshot.organ_aliases),
                      "served": len(snapshot.organ_system), "systems": len(snapshot.systems)}


def lookup_figures(snapshot: RegistrySnapshot, count: int) -> dict[str, float]:
    """Lookups per second by each form, and of the same-run baselines."""
    rows = list(national_directory(count))
    rng = random.Random(1)
    picks = [rows[rng.randrange(len(rows))] for _ in range(PROBES)]
    olds = [r for r in rows if r.replaces]
    plain = {organ: snapshot.organ_system.get(organ) for organ in snapshot.organ_names}
    probes: dict[str, tuple[list[str], Callable[[str], object]]] = {
        "dict_get_baseline": ([r.organ_id for r in picks], plain.get),
        "primary_qcvn": ([r.organ_id for r in picks], snapshot.serving_system),
        "d20_form": ([r.d20_code or "" for r in picks], snapshot.serving_system),
        "old_code": ([olds[rng.randrange(len(olds))].replaces[0] for _ in range(PROBES)],
                     snapshot.serving_system),
    }  # fmt: skip
    rates: dict[str, float] = {}
    for label, (codes, lookup) in probes.items():
        started = time.perf_counter()
        for code in codes:
            lookup(code)
        rates[label] = len(codes) / (time.perf_counter() - started)
    assert all(snapshot.serving_system(r.d20_code or "") == snapshot.serving_system(r.organ_id)
               for r in picks[:1000])  # fmt: skip
    return rates


def run_backend(label: str, url_for: Callable[[str], str], files: dict[str, Path],
                count: int) -> dict[str, Any]:  # fmt: skip
    """Import both files (each into a fresh database, then the CSV again), measure."""
    imports = []
    for fmt, path in files.items():
        url = url_for(fmt)
        register_systems(url)
        imports.append(_run_child(url, path, fmt))
    again = _run_child(url_for("csv"), files["csv"], "csv")
    snapshot, snap = snapshot_figures(url_for("csv"))
    return {"backend": label, "imports": imports, "reimport_csv": again, "snapshot": snap,
            "lookups_per_s": lookup_figures(snapshot, count)}


def _postgres(files: dict[str, Path], count: int) -> dict[str, Any]:
    import psycopg

    names = {fmt: "benchdir" + uuid.uuid4().hex[:8] for fmt in files}
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        return run_backend("PostgreSQL", lambda f: ADMIN_URL.rsplit("/", 1)[0] + "/" + names[f],
                           files, count)  # fmt: skip
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            for name in names.values():
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _print(report: dict[str, Any]) -> None:
    mb = 1_000_000
    for backend in report["backends"]:
        print(f"{backend['backend']}:")
        for imp in [*backend["imports"], backend["reimport_csv"]]:
            again = " (re-import)" if imp is backend["reimport_csv"] else ""
            print(f"  import {imp['format']}{again}: {imp['rows']:,} organs, "
                  f"{imp['aliases']:,} other codes, {imp['merged']} merged, "
                  f"{imp['file_bytes'] / mb:.1f} MB file; check {imp['check_s']:.2f} s + "
                  f"insert {imp['insert_s']:.2f} s = {imp['total_s']:.2f} s; peak RSS "
                  f"{imp['rss_peak_bytes'] / mb:.0f} MB ({imp['rss_before_import_bytes'] / mb:.0f}"
                  " MB before)")  # fmt: skip
        snap = backend["snapshot"]
        print(f"  snapshot: load {snap['load_s']:.2f} s, holds {snap['held_bytes'] / mb:.0f} MB "
              f"({snap['organs']:,} organs, {snap['aliases']:,} aliases, {snap['served']:,} "
              f"served, {snap['systems']} systems)")  # fmt: skip
        rates = backend["lookups_per_s"]
        print("  lookups/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items()))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench directory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=N, help=f"organs (default {N:,})")
    parser.add_argument("--postgres", action="store_true",
                        help="also import into PostgreSQL (127.0.0.1:5432, user postgres)")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument("--child", nargs=3, metavar=("URL", "FILE", "FORMAT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(import_child(args.child[0], Path(args.child[1]), args.child[2])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), args.count)
        backends = [run_backend("SQLite", lambda f: f"sqlite:///{tmp}/{f}.db", files,
                                args.count)]  # fmt: skip
        if args.postgres:
            backends.append(_postgres(files, args.count))
    report = {"count": args.count, "probes": PROBES, "backends": backends}
    if args.json:
        print(json.dumps(report))
    else:
        _print(report)


if __name__ == "__main__":
    main()
