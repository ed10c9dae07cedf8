"""Hub settings: the hub home, ``axis.toml`` and the environment overrides.

The hub home (``--home``, else ``$AXIS_HOME``, else ``./.axis``) holds ``axis.toml``,
the SQLite database by default and the PKI (``pki/ca.pem``, ``pki/hub.pem``,
``pki/hub.key``). ``AXIS_AMQP_URL``, ``AXIS_DB_URL`` and ``AXIS_MANAGEMENT_URL``
override the file so containers can inject credentials without editing it.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from axis.errors import HubHomeMissing, InvalidSettings
from axis.event_loop import check_event_loop

CONFIG_NAME = "axis.toml"
DEFAULT_HOME = Path(".axis")
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MANAGEMENT_URL = "http://guest:guest@127.0.0.1:15672/"
DEFAULT_MAX_SUBMISSION_BYTES = 16 * 1024 * 1024
QUEUE_TYPES = frozenset({"quorum", "classic"})

_ENV_OVERRIDES = {
    "AXIS_AMQP_URL": "amqp_url",
    "AXIS_DB_URL": "db_url",
    "AXIS_MANAGEMENT_URL": "management_url",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the hub process needs to start.

    ``vhost`` and ``hub_user`` are derived from ``amqp_url`` when left empty; a
    ``vhost`` that disagrees with the URL is refused rather than silently ignored.
    """

    home: Path
    amqp_url: str
    db_url: str
    management_url: str
    vhost: str = ""
    # More nodes of the broker's cluster ("host:port"), tried in turn when one is down.
    amqp_failover: tuple[str, ...] = ()
    max_submission_bytes: int = DEFAULT_MAX_SUBMISSION_BYTES
    prefetch: int = 64
    metrics_port: int = 9464
    hub_user: str = ""
    queue_type: str = "quorum"
    max_attempts: int = 8
    rate_per_second: int = 0
    rate_burst: int = 200
    log_head_seconds: int = 10
    log_tsa_url: str = ""
    evidence_log: bool = True
    # PostgreSQL connections each hub process keeps, and may open beyond them under load.
    db_pool_size: int = 5
    db_max_overflow: int = 5
    # Revocation of agency certificates by their CA (docs/operator-guide.md, section 4).
    revocation: str = "fail_closed"
    revocation_grace_seconds: int = 3600
    revocation_ca_files: tuple[str, ...] = ()
    revocation_crl_files: tuple[str, ...] = ()
    revocation_ocsp_cas: tuple[str, ...] = ()
    revocation_refresh_seconds: int = 300
    revocation_timeout_seconds: int = 10
    revocation_max_bytes: int = 20 * 1024 * 1024
    # "auto" (uvloop where installed), "asyncio" or "uvloop" (axis/event_loop.py).
    event_loop: str = "auto"
    # Streamed attachments (docs/protocol.md, "Streamed attachments"); "" = <home>/attachments.
    attachments_dir: str = ""
    max_attachment_bytes: int = 2 * 1024**3
    attachment_quota_bytes: int = 20 * 1024**3
    attachment_retention_days: int = 30
    upload_abandon_hours: int = 24

    def __post_init__(self) -> None:
        _check_url("amqp_url", self.amqp_url, {"amqp", "amqps"})
        _check_url("management_url", self.management_url, {"http", "https"})
        object.__setattr__(self, "amqp_failover", check_addresses(self.amqp_failover))
        _check_db_url(self.db_url)
        derived = vhost_from_url(self.amqp_url)
        if not self.vhost:
            object.__setattr__(self, "vhost", derived)
        elif self.vhost != derived:
            raise InvalidSettings(
                f"vhost {self.vhost!r} disagrees with amqp_url (which names {derived!r})"
            )
        if not self.hub_user:
            object.__setattr__(self, "hub_user", unquote(urlsplit(self.amqp_url).username or ""))
        if not self.hub_user:
            raise InvalidSettings("hub_user is empty and amqp_url names no user")
        _check_int("max_submission_bytes", self.max_submission_bytes, 1, 2**31)
        _check_int("prefetch", self.prefetch, 1, 65535)
        _check_int("metrics_port", self.metrics_port, 0, 65535)
        _check_int("max_attempts", self.max_attempts, 1, 100)
        _check_int("rate_per_second", self.rate_per_second, 0, 1_000_000)
        _check_int("rate_burst", self.rate_burst, 1, 1_000_000)
        _check_int("log_head_seconds", self.log_head_seconds, 1, 86_400)
        if self.log_tsa_url:
            _check_url("log_tsa_url", self.log_tsa_url, {"http", "https"})
        _check_int("db_pool_size", self.db_pool_size, 1, 1000)
        _check_int("db_max_overflow", self.db_max_overflow, 0, 1000)
        if not isinstance(self.evidence_log, bool):
            raise InvalidSettings(f"evidence_log must be true or false, not {self.evidence_log!r}")
        if self.queue_type not in QUEUE_TYPES:
            raise InvalidSettings(
                f"queue_type must be one of {sorted(QUEUE_TYPES)}, not {self.queue_type!r}"
            )
        _check_revocation(self)
        check_event_loop(self.event_loop)
        _check_int("max_attachment_bytes", self.max_attachment_bytes, 1, 2**40)
        _check_int("attachment_quota_bytes", self.attachment_quota_bytes, 1, 2**50)
        _check_int("attachment_retention_days", self.attachment_retention_days, 0, 36_500)
        _check_int("upload_abandon_hours", self.upload_abandon_hours, 1, 8_760)

    @property
    def attachments_path(self) -> Path:
        """Where the hub keeps streamed attachments (``attachments_dir``, relative to home)."""
        return self.home / (self.attachments_dir or "attachments")

    @property
    def pki_dir(self) -> Path:
        """Folder of the hub's CA and signing key pair."""
        return self.home / "pki"

    @property
    def ca_cert_path(self) -> Path:
        return self.pki_dir / "ca.pem"

    @property
    def hub_cert_path(self) -> Path:
        return self.pki_dir / "hub.pem"

    @property
    def hub_key_path(self) -> Path:
        return self.pki_dir / "hub.key"

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_NAME


def check_addresses(value: object, name: str = "amqp_failover") -> tuple[str, ...]:
    """A list of broker addresses, each ``host:port`` (IPv6 hosts in brackets)."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidSettings(f'{name} must be a list of "host:port" strings, not {value!r}')
    for address in value:
        try:
            parts = urlsplit(f"amqp://{address}/")
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or parts.username or parts.path != "/":
            raise InvalidSettings(f'{name}: {address!r} is not "host:port"')
    return tuple(value)


def vhost_from_url(amqp_url: str) -> str:
    """The virtual host an AMQP URL names (``/`` when the path is empty or ``/``)."""
    path = urlsplit(amqp_url).path
    if path in ("", "/"):
        return "/"
    return unquote(path[1:])


def default_db_url(home: Path) -> str:
    """``sqlite:///<home>/axis.db`` with an absolute path."""
    return f"sqlite:///{(home / 'axis.db').resolve()}"


def resolve_home(home: Path | None, env: Mapping[str, str]) -> Path:
    """The hub home: the argument, else ``$AXIS_HOME``, else ``./.axis``."""
    if home is not None:
        return home
    if env.get("AXIS_HOME"):
        return Path(env["AXIS_HOME"])
    return DEFAULT_HOME


def load_settings(home: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``<home>/axis.toml`` and apply the environment overrides.

    Raises :class:`HubHomeMissing` when the home or its ``axis.toml`` does not exist
    and :class:`InvalidSettings` for unreadable TOML, unknown keys or bad values.
    """
    env = os.environ if env is None else env
    home = resolve_home(home, env)
    config = home / CONFIG_NAME
    if not home.is_dir():
        raise HubHomeMissing(
            f"hub home {home} does not exist; run `axis init` first", path=str(home)
        )
    if not config.is_file():
        raise HubHomeMissing(
            f"{config} does not exist; run `axis init --home {home}` first", path=str(config)
        )
    values = _read_toml(config)
    for variable, key in _ENV_OVERRIDES.items():
        if env.get(variable):
            values[key] = env[variable]
    return _build(home, values)


def write_default_config(home: Path) -> Path:
    """Create ``home`` and write the default ``axis.toml`` into it; return its path.

    An existing ``axis.toml`` is left untouched (operators edit it), so running
    ``axis init`` twice is harmless. The file holds credentials: mode 0600.
    """
    home.mkdir(parents=True, exist_ok=True)
    config = home / CONFIG_NAME
    if config.exists():
        return config
    # JSON string escaping is valid TOML basic-string escaping.
    text = DEFAULT_CONFIG_TEMPLATE.format(
        amqp_url=json.dumps(DEFAULT_AMQP_URL),
        db_url=json.dumps(default_db_url(home)),
        management_url=json.dumps(DEFAULT_MANAGEMENT_URL),
        max_submission_bytes=DEFAULT_MAX_SUBMISSION_BYTES,
    )
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return config


DEFAULT_CONFIG_TEMPLATE = """\
# Axis hub configuration. Every key is optional; the values below are the defaults.
# AXIS_AMQP_URL, AXIS_DB_URL and AXIS_MANAGEMENT_URL override the first three.

# The hub's AMQP connection; its path is the virtual host ("/" when empty).
amqp_url = {amqp_url}
# Other nodes of the same RabbitMQ cluster, "host:port", tried in turn while one is down.
# amqp_failover = ["127.0.0.1:5673", "127.0.0.1:5674"]
# SQLAlchemy URL: sqlite:///<absolute path> or postgresql://user@host/db.
db_url = {db_url}
# RabbitMQ management API, used to provision system accounts and inboxes.
management_url = {management_url}
# Largest package the hub accepts, in bytes.
max_submission_bytes = {max_submission_bytes}
# Unacknowledged submissions per hub consumer.
prefetch = 64
# Prometheus /metrics port; 0 turns the endpoint off.
metrics_port = 9464
# "quorum" (replicated, the default) or "classic" queues.
queue_type = "quorum"
# The hub's own broker user (defaults to the amqp_url user). Only messages RabbitMQ
# checked as from this user may carry retries and replays for another system.
# hub_user = "axis-hub"
# Attempts at a submission that keeps failing (database or broker trouble), with
# backoff 1, 2, 4 … 60 s between them; then a signed hub.unavailable receipt.
max_attempts = 8
# Submissions per second each system may make, per hub process (0: no limit), and how
# many at once.
rate_per_second = 0
rate_burst = 200
# The evidence log (docs/evidence.md): how often the hub signs a tree head when the log
# grew, and the RFC 3161 time-stamp authority that stamps each head (empty: none; when
# set, a head it cannot stamp is logged as an error and counted in
# axis_log_heads_unstamped_total).
log_head_seconds = 10
log_tsa_url = ""
# PostgreSQL only: connections each hub process keeps open, and how many more it may
# open under load (workers x (both) must stay below the server's max_connections).
# db_pool_size = 5
# db_max_overflow = 5
# Revocation of agency certificates by their CA (CRL, OCSP): "fail_closed" refuses a
# signer whose CA's material is stale or missing, "warn" accepts it and counts it in
# axis_revocation_warnings_total, "off" checks nothing. A certificate that names no CRL
# distribution point, of a CA with no CRL file and no OCSP here, has nothing to check.
# Uncomment and edit to change a default.
# revocation = "fail_closed"
# How long past its nextUpdate a CRL or OCSP response is still relied on.
# revocation_grace_seconds = 3600
# CA certificates (PEM) besides pki/ca.pem whose agency certificates are checked, CRL
# files (DER or PEM) the operator keeps current, and the CAs (SHA-256 fingerprints, or
# "*") whose certificates are checked by OCSP at the responder they name.
# revocation_ca_files = []
# revocation_crl_files = []
# revocation_ocsp_cas = []
# How often due CRLs and OCSP responses are fetched again, the timeout of one fetch, and
# the largest CRL or response accepted.
# revocation_refresh_seconds = 300
# revocation_timeout_seconds = 10
# revocation_max_bytes = 20971520
# The event loop of each hub process: "auto" (uvloop where it is installed, else asyncio's
# own), "asyncio" or "uvloop".
# event_loop = "auto"
# Streamed attachments (files above the senders' inline limit travel in 1 MiB chunks):
# where the hub keeps them, the largest file, each system's storage quota, how long a
# delivered file is kept, and after how long without a chunk an upload is abandoned.
# attachments_dir = "attachments"
# max_attachment_bytes = 2147483648
# attachment_quota_bytes = 21474836480
# attachment_retention_days = 30
# upload_abandon_hours = 24
"""


def _read_toml(config: Path) -> dict[str, Any]:
    try:
        with config.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidSettings(f"{config} is not valid TOML: {exc}", path=str(config)) from exc
    except OSError as exc:
        raise InvalidSettings(f"cannot read {config}: {exc}", path=str(config)) from exc


_KEYS = {f.name for f in fields(Settings)} - {"home"}


def _build(home: Path, values: Mapping[str, Any]) -> Settings:
    unknown = sorted(set(values) - _KEYS)
    if unknown:
        raise InvalidSettings(f"unknown setting(s) {', '.join(unknown)} in {home / CONFIG_NAME}")
    db_url = values.get("db_url", default_db_url(home))
    if isinstance(db_url, str):
        db_url = _anchor_sqlite(db_url, home)
    merged: dict[str, Any] = {
        "amqp_url": values.get("amqp_url", DEFAULT_AMQP_URL),
        "db_url": db_url,
        "management_url": values.get("management_url", DEFAULT_MANAGEMENT_URL),
    }
    merged.update({k: v for k, v in values.items() if k not in merged})
    for name in ("amqp_url", "db_url", "management_url", "vhost", "hub_user", "queue_type",
                 "log_tsa_url", "attachments_dir"):
        if name in merged and not isinstance(merged[name], str):
            raise InvalidSettings(f"{name} must be a string, not {merged[name]!r}")
    return Settings(home=home, **merged)


def _anchor_sqlite(db_url: str, home: Path) -> str:
    """Make a relative SQLite path relative to the hub home, not the working directory."""
    prefix = "sqlite:///"
    if not db_url.startswith(prefix):
        return db_url
    path = db_url[len(prefix) :]
    if not path or path.startswith("/") or path.startswith(":memory:"):
        return db_url
    return prefix + str((home / path).resolve())


def _check_url(name: str, url: str, schemes: set[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise InvalidSettings(f"{name} must be a {'/'.join(sorted(schemes))} URL with a host")
    try:
        _ = parts.port
    except ValueError as exc:
        raise InvalidSettings(f"{name} has an invalid port: {exc}") from exc


def _check_db_url(url: str) -> None:
    scheme = url.split(":", 1)[0]
    if scheme.split("+", 1)[0] not in {"sqlite", "postgresql", "postgres"} or "://" not in url:
        raise InvalidSettings("db_url must be a sqlite:/// or postgresql:// URL")


REVOCATION_MODES = frozenset({"off", "fail_closed", "warn"})
_CA_FINGERPRINT = re.compile(r"[0-9a-f]{64}|\*")


def _check_revocation(settings: Settings) -> None:
    if settings.revocation not in REVOCATION_MODES:
        raise InvalidSettings(f"revocation must be one of {sorted(REVOCATION_MODES)}, "
                              f"not {settings.revocation!r}")  # fmt: skip
    _check_int("revocation_grace_seconds", settings.revocation_grace_seconds, 0, 30 * 86_400)
    _check_int("revocation_refresh_seconds", settings.revocation_refresh_seconds, 1, 86_400)
    _check_int("revocation_timeout_seconds", settings.revocation_timeout_seconds, 1, 300)
    _check_int("revocation_max_bytes", settings.revocation_max_bytes, 1024, 2**31)
    for name in ("revocation_ca_files", "revocation_crl_files", "revocation_ocsp_cas"):
        value = getattr(settings, name)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v
                                                           for v in value):  # fmt: skip
            raise InvalidSettings(f"{name} must be a list of non-empty strings, not {value!r}")
        object.__setattr__(settings, name, tuple(value))
    cas = tuple(v.replace(":", "").lower() for v in settings.revocation_ocsp_cas)
    if bad := [v for v in cas if not _CA_FINGERPRINT.fullmatch(v)]:
        raise InvalidSettings(f"revocation_ocsp_cas holds {bad[0]!r}: give CA certificates' "
                              "SHA-256 fingerprints (64 hex digits), or \"*\" for every CA")
    object.__setattr__(settings, "revocation_ocsp_cas", cas)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidSettings(f"{name} must be an integer in [{low}, {high}], not {value!r}")
