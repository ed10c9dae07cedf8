"""Bulk import of 111,339 synthetic organs into SQLite and PostgreSQL, snapshot load, lookups."""

from __future__ import annotations

import random
import sys
import tempfile
import time
import uuid

import psycopg

from axis.registry import OrganRow
from axis.store import Store

N = 111_339


def synthetic() -> tuple[list[OrganRow], list[str]]:
    # 63 provinces, ~40 departments each, the rest offices/units below them.
    rows: list[OrganRow] = []
    provinces = [f"000.00.00.P{p:02d}" for p in range(63)]
    rows += [OrganRow(p, f"Province {p}") for p in provinces]
    depts = []
    for p_i, p in enumerate(provinces):
        for d in range(40):
            oid = f"D{p_i:02d}.{d:02d}"
            depts.append(oid)
            rows.append(OrganRow(oid, f"Dept {oid}", p))
    i = 0
    while len(rows) < N:
        parent = depts[i % len(depts)] if i % 3 else rows[-1].organ_id
        oid = f"U{i:06d}"
        rows.append(OrganRow(oid, f"Unit {i}", parent))
        i += 1
    return rows, provinces


def run(url: str, label: str) -> None:
    rows, provinces = synthetic()
    store = Store(url)
    store.create_all()
    for p in provinces:  # one system per province; 200 sub-unit systems of their own
        store.add_system(p, f"system {p}")
    for k in range(200):
        store.add_system(rows[63 + k * 11].organ_id, f"dept system {k}")
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
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        run(f"postgresql://postgres@127.0.0.1:5432/{name}", "PostgreSQL")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    sys.exit(0)
