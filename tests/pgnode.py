"""Fresh databases on the test server, each store engine as a test parameter, and (from
:mod:`bench.pg_nodes`) private PostgreSQL clusters for tests that stop or reconfigure one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bench.pg_nodes import PrivatePostgres, postgres_bin, spare_port

__all__ = ["STORES", "PrivatePostgres", "postgres_bin", "postgres_database", "spare_port"]

# Each store engine once: a test or fixture parametrised with these runs on both.
STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def postgres_database(base_url: str, name: str) -> Iterator[str]:
    """A fresh PostgreSQL database ``name`` beside ``base_url``'s; dropped afterwards."""
    import psycopg

    admin = base_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
