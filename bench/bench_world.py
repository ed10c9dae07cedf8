"""The private world an end-to-end benchmark runs in: a virtual host on the local broker, a
temporary hub home with its PKI and two registered systems, all removed afterwards."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from axis.pki_files import AgencyPaths, init_pki, issue_agency_files
from axis.provision import Management
from axis.registration import register_system
from axis.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
AMQP_URL = os.environ.get("AXIS_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("AXIS_BENCH_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672/")


def with_vhost(base: str, vhost: str, user: str | None = None, password: str = "") -> str:
    """``base`` pointed at ``vhost`` (and, given ``user``, logging in as that user)."""
    parts = urlsplit(base)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{netloc.rsplit('@', 1)[-1]}"
    return urlunsplit((parts.scheme, netloc, "/" + quote(vhost, safe=""), "", ""))


@dataclass(frozen=True, slots=True)
class System:
    """One registered system: its id, credential files and broker password."""

    organ_id: str
    paths: AgencyPaths
    password: str


@dataclass(frozen=True, slots=True)
class HubWorld:
    """The vhost, the hub home (``settings``) and the sender and recipient systems."""

    tmp: Path
    vhost: str
    settings: Settings
    sender: System
    recipient: System


@contextmanager
def hub_world(label: str, organ_prefix: str) -> Iterator[HubWorld]:
    """Create vhost ``axis-<label>-<tag>``, a hub home in a temporary folder, its PKI and
    systems ``<organ_prefix>S.<tag>`` (sender) and ``<organ_prefix>R.<tag>`` (recipient);
    delete the broker accounts, the vhost and the folder afterwards."""
    tag = uuid.uuid4().hex[:10].upper()
    vhost = f"axis-{label}-{tag.lower()}"
    management = Management(MANAGEMENT_URL)
    tmp = Path(tempfile.mkdtemp(prefix=f"axis-{label}-"))
    management.ensure_vhost(vhost)
    users: list[str] = []
    try:
        management.set_permissions(vhost, urlsplit(AMQP_URL).username or "guest", ".*", ".*", ".*")
        settings = _hub_home(tmp / "hub", with_vhost(AMQP_URL, vhost))
        now = datetime.now(UTC)
        init_pki(settings.pki_dir, now)
        systems = []
        for role in ("S", "R"):
            organ_id = f"{organ_prefix}{role}.{tag}"
            paths = issue_agency_files(settings.pki_dir, organ_id, f"Bench {organ_id}", now)
            users.append(organ_id)
            reg = register_system(settings, organ_id, f"Bench {organ_id}", paths.cert.read_bytes())
            systems.append(System(organ_id, paths, str(reg["amqp_password"])))
        yield HubWorld(tmp, vhost, settings, systems[0], systems[1])
    finally:
        for user in users:
            management.delete_user(user)
        management.delete_vhost(vhost)
        shutil.rmtree(tmp, ignore_errors=True)


def _hub_home(home: Path, amqp_url: str) -> Settings:
    home.mkdir(parents=True)
    (home / "axis.toml").write_text(
        f"amqp_url = {json.dumps(amqp_url)}\n"
        f"db_url = {json.dumps('sqlite:///' + str((home / 'axis.db').resolve()))}\n"
        f"management_url = {json.dumps(MANAGEMENT_URL)}\n"
        "metrics_port = 0\n", encoding="utf-8")
    return load_settings(home, env={})
