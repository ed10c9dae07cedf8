"""Hub settings: axis.toml, environment overrides, validation."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from axis.errors import HubHomeMissing, InvalidSettings
from axis.settings import (
    DEFAULT_AMQP_URL,
    DEFAULT_MANAGEMENT_URL,
    Settings,
    load_settings,
    vhost_from_url,
    write_default_config,
)

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "axis.toml"


def home_with(tmp_path: Path, text: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "axis.toml").write_text(text, encoding="utf-8")
    return home


def test_default_config_round_trip(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    config = write_default_config(home)
    assert config == home / "axis.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    settings = load_settings(home, env={})
    assert settings.amqp_url == DEFAULT_AMQP_URL
    assert settings.management_url == DEFAULT_MANAGEMENT_URL
    assert settings.db_url == f"sqlite:///{(home / 'axis.db').resolve()}"
    assert (settings.vhost, settings.hub_user, settings.queue_type) == ("/", "guest", "quorum")
    assert (settings.max_submission_bytes, settings.prefetch, settings.metrics_port) == (
        16 * 1024 * 1024, 64, 9464)
    assert settings.ca_cert_path == home / "pki" / "ca.pem"
    assert settings.hub_cert_path == home / "pki" / "hub.pem"
    assert settings.hub_key_path == home / "pki" / "hub.key"


def test_write_default_config_keeps_an_edited_file(tmp_path: Path) -> None:
    config = write_default_config(tmp_path)
    config.write_text('prefetch = 8\n', encoding="utf-8")
    write_default_config(tmp_path)
    assert load_settings(tmp_path, env={}).prefetch == 8


def test_documented_config_file_matches_the_defaults(tmp_path: Path) -> None:
    home = home_with(tmp_path, REPO_CONFIG.read_text(encoding="utf-8"))
    documented = load_settings(home, env={})
    write_default_config(tmp_path / "fresh")
    fresh = load_settings(tmp_path / "fresh", env={})
    assert documented.db_url == f"sqlite:///{(home / 'axis.db').resolve()}"
    for name in ("amqp_url", "management_url", "vhost", "max_submission_bytes", "prefetch",
                 "metrics_port", "hub_user", "queue_type"):
        assert getattr(documented, name) == getattr(fresh, name), name


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    home = home_with(tmp_path, 'amqp_url = "amqp://a:b@file:5672/"\n')
    env = {
        "AXIS_AMQP_URL": "amqps://hub:secret@broker.example:5671/axis",
        "AXIS_DB_URL": "postgresql://axis@db.example/axis",
        "AXIS_MANAGEMENT_URL": "https://hub:secret@broker.example:15671/",
    }
    settings = load_settings(home, env=env)
    assert settings.amqp_url == env["AXIS_AMQP_URL"]
    assert settings.db_url == env["AXIS_DB_URL"]
    assert settings.management_url == env["AXIS_MANAGEMENT_URL"]
    assert (settings.vhost, settings.hub_user) == ("axis", "hub")


def test_home_from_environment(tmp_path: Path) -> None:
    home = home_with(tmp_path, "prefetch = 3\n")
    assert load_settings(env={"AXIS_HOME": str(home)}).prefetch == 3
    assert load_settings(home, env={"AXIS_HOME": "/nonexistent"}).home == home


def test_relative_sqlite_path_is_relative_to_home(tmp_path: Path) -> None:
    home = home_with(tmp_path, 'db_url = "sqlite:///data/hub.db"\n')
    assert load_settings(home, env={}).db_url == f"sqlite:///{(home / 'data/hub.db').resolve()}"


@pytest.mark.parametrize("with_dir", [False, True])
def test_missing_home_says_to_run_init(tmp_path: Path, with_dir: bool) -> None:
    home = tmp_path / "nowhere"
    if with_dir:
        home.mkdir()
    with pytest.raises(HubHomeMissing, match="axis init"):
        load_settings(home, env={})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("prefetch = [", "not valid TOML"),
        ("prefetsh = 3\n", "unknown setting(s) prefetsh"),
        ("prefetch = 0\n", "prefetch"),
        ('prefetch = "64"\n', "prefetch"),
        ("prefetch = true\n", "prefetch"),
        ("metrics_port = 70000\n", "metrics_port"),
        ("max_submission_bytes = -1\n", "max_submission_bytes"),
        ('queue_type = "stream"\n', "queue_type"),
        ('amqp_url = "http://x/"\n', "amqp_url"),
        ('amqp_url = "amqp://x:notaport/"\n', "port"),
        ("amqp_url = 5\n", "amqp_url must be a string"),
        ('management_url = "amqp://x/"\n', "management_url"),
        ('db_url = "mysql://x/y"\n', "db_url"),
        ('vhost = "other"\n', "disagrees"),
        ('amqp_url = "amqp://host/"\n', "hub_user"),
        ("log_head_seconds = 0\n", "log_head_seconds"),
        ('log_tsa_url = "ftp://tsa/"\n', "log_tsa_url"),
        ("log_tsa_url = 5\n", "log_tsa_url must be a string"),
        ('evidence_log = "no"\n', "evidence_log"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, text: str, fragment: str) -> None:
    home = home_with(tmp_path, text)
    with pytest.raises(InvalidSettings) as caught:
        load_settings(home, env={})
    assert fragment in caught.value.reason
    assert caught.value.code == "config.invalid"


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://h", "/"),
        ("amqp://h/", "/"),
        ("amqp://h/%2F", "/"),
        ("amqp://h/axis", "axis"),
        ("amqp://h/a%20b", "a b"),
    ],
)
def test_vhost_from_url(url: str, vhost: str) -> None:
    assert vhost_from_url(url) == vhost


def test_settings_is_frozen_and_validates_directly(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, amqp_url=DEFAULT_AMQP_URL, db_url="sqlite://",
                        management_url=DEFAULT_MANAGEMENT_URL, hub_user="axis-hub")
    assert settings.hub_user == "axis-hub"
    with pytest.raises(AttributeError):
        settings.prefetch = 1  # type: ignore[misc]
    with pytest.raises(InvalidSettings):
        Settings(home=tmp_path, amqp_url=DEFAULT_AMQP_URL, db_url="sqlite://",
                 management_url=DEFAULT_MANAGEMENT_URL, prefetch=0)


def test_written_config_is_valid_toml_with_every_key(tmp_path: Path) -> None:
    data = tomllib.loads(write_default_config(tmp_path).read_text(encoding="utf-8"))
    assert set(data) == {"amqp_url", "db_url", "management_url", "max_submission_bytes",
                         "prefetch", "metrics_port", "queue_type", "max_attempts",
                         "rate_per_second", "rate_burst", "log_head_seconds",
                         "log_tsa_url"}  # fmt: skip
