"""Bulk import of 111,339 synthetic organs into SQLite and PostgreSQL, snapshot load, lookups,
and what the hub's registry-change poll costs beside a reload (``python -m bench directory``
measures the directory itself: both code forms, file formats, memory)."""

from __future__ import annotations

import random
import sys
import tempfile
import time
import uuid

import psycopg

from axis.registry import OrganRow
from axis.store import Store
from bench.bench_directory import ADMIN_URL, N, national_directory, roots


def synthetic() -> tuple[list[OrganRow], list[str]]:
    """The national directory of :mod:`bench.bench_directory` (both code forms) and the
    ids of its roots (provinces and ministries)."""
    return list(national_directory(N)), [qcvn for qcvn, _, _ in roots()]


def run(url: str, label: str) -> None:
    rows, provinces = synthetic()
    store = Store(url)
    store.create_all()
    for p in provinces:  # one system per root; 200 departments with systems of their own
        store.add_system(p, f"system {p}")
    for k in range(200):
        store.add_system(rows[len(provinces) + k * 11].organ_id, f"dept system {k}")
    t = time.perf_counter()
    count = store.import_organs(rows)
    t_import = time.perf_counter() - t
    t = time.perf_counter()
    count2 = store.import_organs(rows)  # re-import: every row is an update
    t_reimport = time.perf_counter() - t
    t = time.perf_counter()
    snap = store.load_snapshot()
    t_snap = time.perf_counter() - t
    polls = 200
    t = time.perf_counter()
    for _ in range(polls):
        store.registry_version()
    t_poll = (time.perf_counter() - t) / polls
    ids = [r.organ_id for r in rows]
    random.seed(1)
    probe = [random.choice(ids) for _ in range(1_000_000)]
    t = time.perf_counter()
    served = 0
    for organ in probe:
        if snap.serving_system(organ) is not None:
            served += 1
    t_look = time.perf_counter() - t
    print(
        f"{label}: import {count} organs {t_import:.2f}s; re-import (upsert) {count2} "
        f"{t_reimport:.2f}s; load_snapshot {t_snap:.2f}s "
        f"({len(snap.organ_system)} served / {len(snap.organ_names)} organs, "
        f"{len(snap.systems)} systems); serving_system {len(probe) / t_look:,.0f} lookups/s; "
        f"registry_version (the hub's change poll) {t_poll * 1000:.2f} ms = "
        f"{t_snap / t_poll:,.0f}x cheaper than a reload"
    )
    store.dispose()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "SQLite")
    name = "bench" + uuid.uuid4().hex[:8]
    admin = ADMIN_URL
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        run(admin.rsplit("/", 1)[0] + "/" + name, "PostgreSQL")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    sys.exit(0)
