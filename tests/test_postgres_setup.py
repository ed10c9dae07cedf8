"""PostgreSQL as a stock Debian server has it: the bootstrap's provisioning
(.ci/postgres-test-db) on a private cluster whose pg_hba.conf trusts nobody (peer for the
socket, scram-sha-256 for 127.0.0.1), and a coded error when the database is unreachable.
The machine's own cluster is never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from axis.errors import StoreUnavailable
from axis.settings import write_default_config
from axis.store import Store
from tests.pgnode import PrivatePostgres, postgres_bin, postgres_database, spare_port

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / ".ci" / "postgres-test-db"
ROLE, PASSWORD = "axis_test", "axis-test-only"  # the script's test-only role
STOCK_HBA = ("local all postgres peer\n"
             "local all all peer\n"
             "host all all 127.0.0.1/32 scram-sha-256\n")  # fmt: skip


@pytest.fixture(scope="module")
def stock() -> Iterator[PrivatePostgres]:
    """A private cluster with a stock Debian pg_hba.conf, owned by the postgres OS user."""
    if postgres_bin() is None or os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root, runuser and the PostgreSQL server binaries")
    folder = Path(tempfile.mkdtemp(prefix="axis-pg-stock-"))
    node = PrivatePostgres.create(folder, stock_auth=True)
    node.start()
    try:
        yield node
    finally:
        node.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def provision(node: PrivatePostgres) -> subprocess.CompletedProcess[str]:
    """The bootstrap's PostgreSQL provisioning, pointed at ``node``."""
    assert node.bin is not None
    return subprocess.run(
        ["bash", str(SCRIPT), "--port", str(node.port), "--socket-dir", str(node.socket_dir),
         "--psql", str(node.bin / "psql"), "--quiet"],
        capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def url(node: PrivatePostgres, password: str = PASSWORD, database: str = ROLE) -> str:
    return f"postgresql://{ROLE}:{password}@127.0.0.1:{node.port}/{database}"


def test_the_bootstrap_gives_the_tests_a_password_role_on_a_stock_server(
    stock: PrivatePostgres,
) -> None:
    # Nobody is trusted: the superuser over TCP without a password is turned away.
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{stock.port}/postgres").close()
    for _ in range(2):  # idempotent: a second run changes nothing and still succeeds
        done = provision(stock)
        assert done.returncode == 0, done.stderr
    store = Store(url(stock))
    try:
        store.create_all()
        store.add_system("000.00.00.G22", "Văn phòng Chính phủ")
        assert [s.system_id for s in store.list_systems()] == ["000.00.00.G22"]
    finally:
        store.dispose()
    with psycopg.connect(url(stock)) as conn:
        powers = conn.execute(
            "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()
    assert powers == (False, True)  # not a superuser; may create databases of its own
    # What the tests' fixtures do with it: a fresh database per test, dropped after.
    with postgres_database(url(stock), "axis_setup_probe") as fresh:
        Store(fresh).create_all()
    with pytest.raises(StoreUnavailable, match="password authentication failed"):
        Store(url(stock, password="not-the-password")).create_all()


@pytest.mark.parametrize(
    ("host_line", "said"),
    [
        ("host all all 127.0.0.1/32 reject\n", "rejects"),
        ("", "no host line"),
        ("host postgres all 127.0.0.1/32 scram-sha-256\n", "no host line"),
    ],
    ids=["reject", "missing", "other-database"],
)
def test_a_pg_hba_that_keeps_the_role_out_is_reported_and_left_alone(
    stock: PrivatePostgres, host_line: str, said: str
) -> None:
    hba = "local all postgres peer\n" + host_line
    stock.set_hba(hba)
    try:
        done = provision(stock)
        assert done.returncode == 1, done
        assert said in done.stderr and f"host    all    {ROLE}    127.0.0.1/32" in done.stderr
        assert (stock.data / "pg_hba.conf").read_text() == hba  # not rewritten
    finally:
        stock.set_hba(STOCK_HBA)
    assert provision(stock).returncode == 0


@pytest.mark.parametrize("command", [["agency", "list", "--json"], ["serve"]])
def test_an_unreachable_database_is_a_coded_error(tmp_path: Path, command: list[str]) -> None:
    home = tmp_path / "hub"
    write_default_config(home)
    env = {**os.environ, "AXIS_DB_URL": f"postgresql://axis:secret@127.0.0.1:{spare_port()}/axis"}
    done = subprocess.run([sys.executable, "-m", "cli", *command, "--home", str(home)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "store.unavailable" in output and "cannot connect to the database at 127.0.0.1" in output
    assert "secret" not in output
