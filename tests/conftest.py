"""Shared fixtures: the real services, the shared conformance corpus, a test PKI.

Integration tests talk to the real RabbitMQ and PostgreSQL. Outside CI a missing
service skips those tests with the reason; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.pgnode import STORES, postgres_database
from tests.test_signing_helpers import SigningPki, make_pki

if TYPE_CHECKING:
    from axis.store import Store
    from tests.clikit import CliWorld
    from tests.hubkit import HubKit
    from tests.tsa import LocalTsa

RABBITMQ_URL = os.environ.get("AXIS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("AXIS_TEST_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672/")
# The test suite's own role and database, with a fixed test-only password: made by
# `.ci/bootstrap --postgres` (.ci/postgres-test-db), reached over 127.0.0.1 with the
# password, as a stock Debian server's pg_hba.conf allows (scram-sha-256).
POSTGRES_URL = os.environ.get(
    "AXIS_TEST_POSTGRES_URL",
    "postgresql+psycopg://axis_test:axis-test-only@127.0.0.1:5432/axis_test",
)
SHARED_DIR = Path(
    os.environ.get("AXIS_SHARED_DIR", Path(__file__).resolve().parents[1] / ".." / "shared")
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (minutes: the 1 GB attachment) run only with AXIS_SLOW_TESTS=1;
    ``make test`` runs their everyday sizes instead."""
    if os.environ.get("AXIS_SLOW_TESTS", "") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set AXIS_SLOW_TESTS=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    """Skip (or, under CI, fail) when a real service the test needs is not reachable."""
    if _reachable(url, default_port):
        return
    message = f"{name} is not reachable at {urlsplit(url).netloc}"
    if _in_ci():
        pytest.fail(f"{message} (CI=true: services must be running)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The vendor edXML corpus (``$AXIS_SHARED_DIR/conformance/edxml-vendor-samples``)."""
    folder = SHARED_DIR / "conformance" / "edxml-vendor-samples"
    if not folder.is_dir():
        pytest.skip(f"conformance corpus not present at {folder}")
    return folder


@pytest.fixture(scope="session")
def amqp_base_url() -> str:
    require_service("RabbitMQ", RABBITMQ_URL, 5672)
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def management_base_url() -> str:
    require_service("RabbitMQ management API", MANAGEMENT_URL, 15672)
    return MANAGEMENT_URL


@pytest.fixture(scope="session")
def postgres_base_url() -> str:
    import psycopg

    admin = POSTGRES_URL.replace("postgresql+psycopg", "postgresql")
    require_service("PostgreSQL", admin, 5432)
    try:
        psycopg.connect(admin, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL refuses the test role ({str(exc).strip().splitlines()[-1]}): "
                    "run .ci/bootstrap --postgres, which creates it (.ci/postgres-test-db)")
    return POSTGRES_URL


@pytest.fixture(scope="module")
def pki() -> SigningPki:
    """A fresh test PKI per test module (RSA keys take a moment to generate)."""
    return make_pki()


@pytest.fixture(params=STORES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh hub database URL: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/axis.db"
    url: str = request.getfixturevalue("postgres_db_url")
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A created store on each engine of ``db_url``."""
    from axis.store import Store

    s = Store(db_url)
    s.create_all()
    yield s
    s.dispose()


@pytest.fixture(scope="module")
def tsa() -> Iterator[LocalTsa]:
    """A real RFC 3161 time-stamp authority on loopback (``openssl ts -reply``)."""
    from tests.tsa import LocalTsa, openssl_binary

    if openssl_binary() is None:
        pytest.skip("the openssl binary is not installed (needed for the local TSA)")
    with LocalTsa() as local:
        yield local


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses (vhosts, databases, queues)."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def private_vhost(management_base_url: str, unique_name: str) -> Iterator[str]:
    """A RabbitMQ vhost of this test's own (guest may do anything there), deleted afterwards."""
    from axis.provision import Management

    management = Management(management_base_url)
    management.ensure_vhost(unique_name)
    management.set_permissions(unique_name, "guest", ".*", ".*", ".*")
    try:
        yield unique_name
    finally:
        management.delete_vhost(unique_name)


@pytest.fixture
def postgres_db_url(postgres_base_url: str, unique_name: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with postgres_database(postgres_base_url, unique_name) as url:
        yield url


@pytest.fixture(params=STORES)
def kit_db_url(request: pytest.FixtureRequest) -> str | None:
    """The store under ``kit``: the hub home's SQLite file (None), then a fresh PostgreSQL
    database. A module whose tests do not depend on the store overrides this fixture
    with one returning None, to run on SQLite only."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_db_url")
    return url


@pytest.fixture
async def idle_kit(
    tmp_path: Path, amqp_base_url: str, management_base_url: str, private_vhost: str,
    kit_db_url: str | None,
) -> AsyncIterator[HubKit]:  # fmt: skip
    """A hub home on a private vhost, on each store of ``kit_db_url``, no hub running yet."""
    from tests.hubkit import close_kit, make_kit

    kit = await make_kit(tmp_path, amqp_base_url, management_base_url, private_vhost,
                         kit_db_url)  # fmt: skip
    try:
        yield kit
    finally:
        await close_kit(kit)


@pytest.fixture
async def kit(idle_kit: HubKit) -> HubKit:
    """A running hub on a private vhost, on each store of ``kit_db_url`` (agencies via
    ``kit.agency``)."""
    await idle_kit.start_hub()
    return idle_kit


@pytest.fixture
def world(
    tmp_path: Path, amqp_base_url: str, management_base_url: str, unique_name: str
) -> Iterator[CliWorld]:
    """An initialised hub home for CLI tests (``axis init`` run), cleaned up afterwards."""
    from tests.clikit import cli_world

    with cli_world(tmp_path, amqp_base_url, management_base_url, unique_name) as w:
        w.init()
        yield w
